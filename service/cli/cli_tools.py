"""The users' subcommands of ``tbptt-online``: ``feed`` a CSV into a server, print a ``forecast``.

Both talk to a running server through :class:`tbptt_online.client.Client` (``--url``,
default ``$TBPTT_URL`` or http://127.0.0.1:8000; ``--api-key``, default ``$TBPTT_API_KEY``).
Each ``add_*_command`` adds its parser with a ``handler(args) -> int`` (see ``tbptt_service.cli.main``).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tbptt-online")
>>> commands = parser.add_subparsers(dest="command")
>>> add_feed_command(commands); add_forecast_command(commands)
>>> args = parser.parse_args(["forecast", "default", "web-1", "--horizon", "6"])
>>> args.model, args.series, args.horizon, args.level
('default', 'web-1', 6, None)
>>> args = parser.parse_args(["feed", "data/server_metrics.csv", "--series-column", "host",
...                           "--time-column", "timestamp", "--value-column", "cpu_percent"])
>>> args.model, args.value_column, args.batch_size
('default', ['cpu_percent'], 500)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from datetime import UTC, datetime
from typing import Any

import httpx

from tbptt_online.client import Client, ClientError, NotFound, TransportFailure
from tbptt_online.client.base_url import base_url_problem
from tbptt_service.cli.csv_feed import FeedError, FeedInterrupted, feed, format_report, format_table
from tbptt_service.cli.csv_source import CsvSource
from tbptt_service.plain_numbers import plain_float

DEFAULT_URL = "http://127.0.0.1:8000"

FEED_EXAMPLE = """\
example (the sample file that ships with the repository):
  tbptt-online feed data/server_metrics.csv --series-column host \\
      --time-column timestamp --value-column cpu_percent

Rows the server already holds are skipped (by timestamp, or by count when the
file has no time column), so after an interruption (Ctrl-C, a lost connection)
running the same command again sends only the rest: nothing is fed twice.
"""

FORECAST_EXAMPLE = """\
example:
  tbptt-online forecast default web-1 --horizon 12 --level 0.8
"""


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    server = parser.add_argument_group("server")
    server.add_argument(
        "--url",
        type=server_url,  # (argparse checks a default given as text too: $TBPTT_URL's value)
        default=os.environ.get("TBPTT_URL", DEFAULT_URL),
        # the fallback named as it is: %(default)s printed $TBPTT_URL's value as "$TBPTT_URL or <it>" (a new user)
        help=f"base URL of the running service (default: $TBPTT_URL, or {DEFAULT_URL} when unset)",
    )
    server.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("TBPTT_API_KEY"),
        help="bearer API key, if the server needs one (default: $TBPTT_API_KEY)",
    )
    server.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=seconds,
        default=30.0,
        help="seconds each try of a request may take, its whole answer read (default: %(default)s)",
    )


def server_url(text: str) -> str:
    """``--url``'s value when a client can be made with it, else argparse's error (exit 2) naming it, and
    ``TBPTT_URL`` when it is that variable's: ``http://[::1`` ended ``feed`` in httpx's ``InvalidURL`` and its
    traceback (a hostile test, session 51).

    >>> server_url("http://127.0.0.1:8000")
    'http://127.0.0.1:8000'
    >>> server_url("localhost:8000")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: 'localhost:8000' is invalid: must start with http:// or https:// and name a host, ...
    """
    problem = base_url_problem(text)
    if problem is not None:
        where = " (the value of TBPTT_URL, --url's default)" if text == os.environ.get("TBPTT_URL") else ""
        raise argparse.ArgumentTypeError(f"{text!r:.200} is invalid: {problem}{where}")
    return text


MAY_HAVE_APPLIED = "the server may have applied it"  # a lost answer of a request that changes something


def explained(error: BaseException, url: str, lost: str = MAY_HAVE_APPLIED, model_hint: bool = True) -> str:
    """An error's message with what to do where the cause is a common first-day one (a new user's, session
    48): no server at ``url`` (a ``TransportFailure`` from httpx's connect error or timeout: "ConnectError ...
    refused" said nothing of ``serve`` or ``--url``); an answer lost on the way back (any other one: what
    ``lost`` says, the request may have been applied); a model that does not exist yet (with ``model_hint``).

    >>> explained(NotFound(404, "model 'web' is unknown"), "http://x")
    "404: model 'web' is unknown (create it with `tbptt-online models create NAME`)"
    >>> explained(TransportFailure("POST http://x/v1: ReadError('reset')"), "http://x")
    "POST http://x/v1: ReadError('reset') (no answer came back: the server may have applied it)"
    """
    told = printable(str(error))  # a server's message as text, never as the terminal's commands
    if isinstance(error, TransportFailure) and isinstance(error.__cause__, httpx.ConnectError | httpx.ConnectTimeout):
        return (
            f"{told} (is a server running at {url}? start one with `tbptt-online serve`, or give its address with "
            "--url or TBPTT_URL)"
        )
    if isinstance(error, TransportFailure):
        return f"{told} (no answer came back: {lost})"
    detail = error.detail if isinstance(error, NotFound) else ""
    if model_hint and detail.startswith("model ") and detail.endswith(" is unknown"):
        return f"{told} (create it with `tbptt-online models create NAME`)"
    return told


def printable(text: str) -> str:
    """``text`` with every character that is not printable written as its escape (``\\x1b``, ``\\r``):
    a server's error message reached the terminal as it came, and one holding escape sequences set
    the window's title, cleared the screen and overwrote the line (a hostile test, session 49).

    >>> printable("model \\x1b]0;PWNED\\x07 unknown\\rX, naïve")
    'model \\\\x1b]0;PWNED\\\\x07 unknown\\\\rX, naïve'
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def level_fraction(text: str) -> float:
    """``--level``: a fraction in (0, 1), checked before any request (a new user's "90" was sent, and
    the server's 422 read only "must be <= 0.999999999").

    >>> level_fraction("0.95")
    0.95
    >>> level_fraction("90")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '90' is invalid: a level is a fraction in (0, 1): 0.9 for 90 %
    """
    try:
        level = float(text)
    except ValueError:
        level = math.nan
    if not 0.0 < level < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: a level is a fraction in (0, 1): 0.9 for 90 %")
    return level


def seconds(text: str) -> float:
    """``--timeout``: a finite number of seconds > 0, checked before any request (0 and -1 reached
    httpx and read "ConnectError: Operation now in progress" and "Timeout value out of range", naming no
    option: a hostile test, session 35).

    >>> seconds("2.5")
    2.5
    >>> seconds("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '0' is invalid: seconds must be a finite number > 0
    """
    try:
        number = plain_float(text)  # (float() takes "5_0" as 50, a review)
    except ValueError:
        number = math.nan
    if not 1e-3 <= number < math.inf:  # (1e-320 s was taken, a review)
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: seconds must be a finite number > 0")
    return number


def positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: must be an integer >= 1")
    return number


def json_object(text: str) -> dict[str, Any]:
    """An argument holding one JSON object (``--config``), or a message naming what it is instead.

    >>> json_object('{"hidden_size": 32}')
    {'hidden_size': 32}
    >>> json_object("[1]")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: '[1]' is invalid: must be a JSON object, e.g. '{"hidden_size": 32}'
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: not JSON ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: must be a JSON object, e.g. '{{\"hidden_size\": 32}}'")
    return value


def add_csv_columns(parser: argparse.ArgumentParser, time_help: str) -> None:
    """The CSV's columns, as ``feed`` and ``advise`` read them (``csv_source`` opens the file)."""
    columns = parser.add_argument_group("columns")
    which = columns.add_mutually_exclusive_group(required=True)
    which.add_argument("--series-column", metavar="COLUMN", help="column holding each row's series name")
    which.add_argument("--series", metavar="NAME", help="one series name for every row (a file of one series)")
    columns.add_argument(
        "--value-column",
        metavar="COLUMN",
        action="append",
        required=True,
        help="column holding the value; repeat it for a multi-feature value",
    )
    columns.add_argument("--time-column", metavar="COLUMN", help=time_help)


def csv_source(args: argparse.Namespace) -> CsvSource:
    """The CSV named by ``args`` (``file`` and the arguments of ``add_csv_columns``)."""
    return CsvSource.from_path(
        args.file,
        value_columns=args.value_column,
        series_column=args.series_column,
        series_name=args.series,
        time_column=args.time_column,
    )


def add_feed_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "feed",
        help="stream a CSV file into a running server, with progress, resumable",
        description="Stream the rows of a CSV file into a running server as batches of observations,\n"
        "merged across series in time order (each series' rows in their file order); at the end\n"
        "print each series' prequential error (model vs naive).",
        epilog=FEED_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE.csv", help="CSV file with a header row")
    parser.add_argument("--model", default="default", help="model to feed (default: the model named 'default')")
    add_csv_columns(
        parser,
        "column of unix seconds or ISO-8601 times, increasing per series "
        "(recommended: it makes batches idempotent, so they are retried safely)",
    )
    sending = parser.add_argument_group("sending")
    sending.add_argument(
        "--batch-size",
        metavar="N",
        type=positive_int,
        default=500,
        help="rows per request, at most the server's TBPTT_MAX_BATCH_OBSERVATIONS (default: %(default)s)",
    )
    sending.add_argument(
        "--in-file-order",
        action="store_true",
        help="send the rows in the file's order, streamed, instead of merged across series by time, which "
        "holds the file's rows in memory (a file sorted by series is then one tick per row: slower)",
    )
    sending.add_argument("--no-progress", action="store_true", help="do not draw the progress bar")
    _add_server_options(parser)
    parser.set_defaults(handler=run_feed)


def run_feed(args: argparse.Namespace) -> int:
    try:
        source = csv_source(args)
        with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            report = feed(
                client,
                source,
                args.model,
                batch_size=args.batch_size,
                progress=not args.no_progress,
                file_order=args.in_file_order,
            )
    except FeedInterrupted as stopped:
        print(
            f"interrupted after {stopped.report.sent} rows sent, each answered: run the same command again to send "
            "the rest (nothing is sent twice)",
            file=sys.stderr,
        )
        return 130
    except KeyboardInterrupt:
        print(
            "\ninterrupted with a batch in flight: the server may still be applying it; wait for it (a model's "
            "observation count stops moving) before running the same command again, or rows without a timestamp "
            "may be sent twice",
            file=sys.stderr,
        )
        return 130
    except (OSError, ValueError, FeedError, ClientError) as error:
        lost = "the server may hold the batch sent: run the same command again, which skips the rows it holds"
        print(f"tbptt-online feed: error: {explained(error, args.url, lost)}", file=sys.stderr)
        return 1
    print(format_report(report, args.model))
    return 0


def add_forecast_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "forecast",
        help="print a multi-step forecast of one series as a table",
        description="Print the next H values of a series forecast by a model, each with its\n"
        "central interval at LEVEL.",
        epilog=FORECAST_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", metavar="MODEL", help="model name (the service starts with 'default')")
    parser.add_argument("series", metavar="SERIES", help="series name")
    parser.add_argument(
        "--horizon", metavar="H", type=positive_int, default=12, help="steps ahead (default: %(default)s)"
    )
    parser.add_argument(
        "--level",
        metavar="LEVEL",
        type=level_fraction,
        help="interval level in (0, 1) (default: the model's, e.g. 0.9)",
    )
    _add_server_options(parser)
    parser.set_defaults(handler=run_forecast)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if not isinstance(value, float):
        return str(value)
    # 4 decimals from 1e-3 up (987654321.5 whole), 4 significant digits below it (5.03e-06, not 0.0000)
    return f"{value:.4f}" if value == 0 or not abs(value) < 1e-3 else f"{value:.4g}"


def run_forecast(args: argparse.Namespace) -> int:
    try:
        with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            forecast = client.forecast(args.model, args.series, horizon=args.horizon, level=args.level)
    except (ValueError, ClientError) as error:
        lost = "a forecast changes nothing: run it again"  # (not "may have applied it": a review's)
        print(f"tbptt-online forecast: error: {explained(error, args.url, lost)}", file=sys.stderr)
        return 1
    print(
        f"model {forecast.model!r}, series {forecast.series!r}: {forecast.horizon} steps after step "
        f"{forecast.step} (model updates: {forecast.update_count}), {forecast.level:.0%} interval"
    )
    timed = any(s.timestamp is not None for s in forecast.steps)  # the series' cadence is known: when each is due
    rows = [("step", *(["due (UTC)"] if timed else []), "mean", "lower", "upper")]
    for s in forecast.steps:
        due = [_moment(s.timestamp)] if timed else []
        rows.append((f"+{s.step}", *due, _cell(s.mean), _cell(s.lower), _cell(s.upper)))
    print("\n".join(format_table(rows)))
    return 0


def _moment(timestamp: float | None) -> str:
    """Unix seconds as ISO-8601 UTC; past a date's range, the number; none: a dash.

    >>> _moment(1711324800.0), _moment(None), _moment(1e300)
    ('2024-03-25T00:00:00Z', '-', '1e+300')
    """
    if timestamp is None:
        return "-"
    try:
        return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"{timestamp:g}"
