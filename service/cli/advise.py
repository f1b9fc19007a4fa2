"""``tbptt-online advise FILE.csv``: the truncation advisor on a CSV, offline (no server, no network).

The file is read as ``feed`` reads it (:class:`tbptt_service.cli.csv_source.CsvSource`: the same
columns, missing cells, checks); each series' values, in file order, go to
:func:`tbptt_online.advisor.advise_series`, which finds each series' dependency length (the
longest of its seasons and of the significant lags of its de-seasoned, pre-whitened values)
and its season, and says whether the k1
and k2 given (default: the library's) are long enough, what it recommends, and what that
costs (per update, in backpropagation steps per observation, and in memory per series).

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tbptt-online")
>>> add_advise_command(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["advise", "data/server_metrics.csv", "--series-column", "host",
...                           "--value-column", "cpu_percent", "--k2", "16"])
>>> args.k1, args.k2, args.json
(None, 16, False)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from tbptt_online.config import ForecasterConfig
from tbptt_service.cli.cli_tools import add_csv_columns, csv_source, json_object, positive_int
from tbptt_service.cli.csv_source import CsvSource
from tbptt_service.host.cadence import UNKNOWN, Cadence
from tbptt_service.settings import Settings

if TYPE_CHECKING:  # torch and the advisor are imported when the command runs: every other command, and
    # `tbptt-online --help`, started in 3.9 s instead of 0.3 s because this module imported them (a new user)
    import torch

    from tbptt_online.advisor import TruncationReport

ADVISE_EXAMPLE = """\
example (the sample file that ships with the repository):
  tbptt-online advise data/server_metrics.csv --series-column host --value-column cpu_percent --k2 16
"""


def add_advise_command(commands: argparse._SubParsersAction) -> None:
    defaults = ForecasterConfig()
    parser = commands.add_parser(
        "advise",
        help="read a CSV offline and recommend k1 and k2 (the truncation advisor)",
        description="Read a CSV file (the columns as for feed) and say whether k1 and k2 are long\n"
        "enough for the dependencies in its series, what to use instead and what that costs.",
        epilog=ADVISE_EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE.csv", help="CSV file with a header row")
    add_csv_columns(
        parser, "column of times (checked; rows stay in file order, and a series' gaps are filled as the server does)"
    )
    model = parser.add_argument_group("model")
    # None: --config's value, else the library's default (a default here hid --config's k1 and k2)
    model.add_argument("--k1", type=positive_int, help=f"steps between updates (default: {defaults.k1})")
    model.add_argument("--k2", type=positive_int, help=f"steps replayed (default: {defaults.k2})")
    model.add_argument(
        "--config",
        type=json_object,  # fix: '[1]' failed later with "'list' object is not a mapping"
        default={},
        metavar="JSON",
        help="ForecasterConfig fields (k1 and k2 too; n_features is the file's value columns), e.g. "
        "'{\"hidden_size\": 32}'",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=run_advise)


def read_series(source: CsvSource) -> tuple[list[str], list[torch.Tensor]]:
    """Each series' values in file order: the names (first appearance) and one [n_i, d] float64 each,
    as long as the series (until session 51 all were NaN-padded at the start into one [B, n, d], n the
    longest: 10,000 one-value series beside one of 20,000 values, a CSV of 309 KB, took 4.0 GB, a
    hostile test).
    With times, a series' gaps are filled as the server fills them (``tbptt_service.host.cadence``:
    once its cadence is known, a value whole steps after the last gets the missing steps before it,
    NaN, at most ``MAX_GAP_STEPS``): a logger's export that drops the rows of an outage read, until
    session 50, as a series with no season, where the server found its 96 (a new user)."""
    values: dict[str, list[list[float]]] = defaultdict(list)
    cadences: dict[str, tuple[float, Cadence]] = {}  # per series: its last time (seconds) and cadence
    for row in source.rows():
        cells = row.value if isinstance(row.value, list) else [row.value]
        if row.seconds is not None:
            last, cadence = cadences.get(row.series, (None, UNKNOWN))
            if last is not None:
                missing = cadence.missing(row.seconds - last)
                if 0 < missing <= MAX_GAP_STEPS:  # (a longer one the server shortens by its seasons, or leaves)
                    values[row.series].extend([[math.nan] * len(cells) for _ in range(missing)])
                cadence = cadence.after(row.seconds - last)
            cadences[row.series] = (row.seconds, cadence)
        values[row.series].append([math.nan if v is None else v for v in cells])
    if not values:
        raise ValueError(f"{source.name}: no rows")
    import torch

    return list(values), [torch.tensor(rows, dtype=torch.float64) for rows in values.values()]


def advise_config(args: argparse.Namespace, n_features: int) -> ForecasterConfig:
    """The config advised on: ``--config``'s fields, ``--k1`` and ``--k2`` where given (a value in
    both that differs is an error naming the two), ``n_features`` the file's value columns.
    Raises ``ValueError`` naming the field.

    >>> args = argparse.Namespace(config={"k2": 64, "hidden_size": 8}, k1=4, k2=None)
    >>> config = advise_config(args, n_features=1)
    >>> config.k1, config.k2, config.hidden_size
    (4, 64, 8)
    >>> advise_config(argparse.Namespace(config={"k2": 64}, k1=None, k2=16), n_features=1)
    Traceback (most recent call last):
    ...
    ValueError: --k2 16 and --config's "k2": 64 disagree: give one of them
    """
    fields: dict[str, Any] = dict(args.config)
    for name in ("k1", "k2"):
        flag = getattr(args, name)
        if flag is not None and name in fields and fields[name] != flag:
            raise ValueError(f'--{name} {flag} and --config\'s "{name}": {fields[name]!r} disagree: give one of them')
        if flag is not None:
            fields[name] = flag
    if fields.setdefault("n_features", n_features) != n_features:  # fix: it was taken, and the memory figures with it
        raise ValueError(
            f"--config's \"n_features\": {fields['n_features']!r} is not the file's {n_features} value column(s): "
            "leave it out (it is read from --value-column)"
        )
    return ForecasterConfig.from_dict(fields)


def advise_file(args: argparse.Namespace) -> tuple[TruncationReport, ForecasterConfig, list[str], list[torch.Tensor]]:
    from tbptt_online.advisor import advise_series

    source = csv_source(args)
    names, series = read_series(source)
    config = advise_config(args, len(source.value_columns))
    return advise_series(series, config, names), config, names, series


MAX_GAP_STEPS = Settings.model_fields["max_gap_steps"].default  # the missing steps a server fills at most, by default
SHOWN = 10  # series whose dependency length the text report names, the longest first past this many


def format_advice(
    report: TruncationReport, config: ForecasterConfig, names: list[str], series: list[torch.Tensor], file: str
) -> str:
    k1, k2, best = report.k1, report.window, report.recommended_k2
    # an adaptive model: the window it starts from (k2_min) within k2_max, and the k2_max that allows the
    # recommended window (the text said "k2 = 5" and "k2 = 30" where the verdict said k2_max = 30)
    given = f"k2 = adaptive {config.k2_min}..{config.k2_max}, window {k2}" if config.adaptive else f"k2 = {k2}"
    wanted = f"k2_max = {max(best, config.k2_max)}, window {best}" if config.adaptive else f"k2 = {best}"
    shown = list(report.dependencies.items())  # in file order
    if len(shown) > SHOWN:  # fix: every series on one line (10,000 series: a line of 100 KB)
        shown = sorted(shown, key=lambda item: -item[1])[:SHOWN]  # the longest (stable: file order among equals)
    lags = ", ".join(f"{name} {lag}" for name, lag in shown)
    if len(report.dependencies) > SHOWN:
        lags += f" (the {SHOWN} longest of {len(report.dependencies)} series; --json lists them all)"
    seasons = ", ".join(f"{period or 'none'}: {count}" for period, count in sorted(report.seasons.items()))
    counts = [int(values.isfinite().any(1).sum()) for values in series]  # rows with at least one value
    return "\n".join(
        [
            f"{file}: {len(names)} series, {min(counts)} to {max(counts)} values each, {config.n_features} feature(s)",
            f"dependency length (longest season or significant lag; 0: none): {lags}",
            f"season found (length: series): {seasons}",
            f"given:       k1 = {k1}, {given}: {k2 / k1:.1f} backpropagation steps per observation",
            f"recommended: k1 = {k1}, {wanted}: {best / k1:.1f} backpropagation steps per observation, "
            f"{report.cost_ratio:.1f}x per update, {report.extra_bytes_per_series / 1000:.1f} KB more per series",
            f"verdict: {report.verdict}",
        ]
    )


def run_advise(args: argparse.Namespace) -> int:
    try:
        report, config, names, series = advise_file(args)
    except (OSError, ValueError, TypeError) as error:
        print(f"tbptt-online advise: error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(dataclasses.asdict(report), indent=2))
    else:
        print(format_advice(report, config, names, series, args.file))
    return 0
