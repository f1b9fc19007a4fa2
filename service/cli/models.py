"""``tbptt-online models list|show|create|delete``: manage a running server's models.

Talks to the server through :class:`tbptt_online.client.Client` (``--url``, default
``$TBPTT_URL`` or http://127.0.0.1:8000; ``--api-key``, default ``$TBPTT_API_KEY``).
``create`` takes ForecasterConfig fields as ``--set FIELD=VALUE`` (VALUE read as JSON,
else as a string) or a whole ``--config JSON``; left-out fields take the library's defaults.

>>> import argparse
>>> parser = argparse.ArgumentParser(prog="tbptt-online")
>>> add_models_command(parser.add_subparsers(dest="command"))
>>> args = parser.parse_args(["models", "create", "web", "--set", "hidden_size=32", "--set", "cell=lstm"])
>>> args.action, args.name, config_of(args)
('create', 'web', {'hidden_size': 32, 'cell': 'lstm'})
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from tbptt_online.client import Client, ClientError
from tbptt_service.cli.cli_tools import MAY_HAVE_APPLIED, _add_server_options, explained, printable
from tbptt_service.cli.csv_feed import format_table

EXAMPLE = """\
examples:
  tbptt-online models list
  tbptt-online models create web --set hidden_size=64 --set k1=4
  tbptt-online models show web
  tbptt-online models delete web
"""


def add_models_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models",
        help="list, show, create or delete the models of a running server",
        description="Manage the models of a running server.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per model: series, observations, updates")
    show = actions.add_parser("show", help="a model's config and counters, as JSON")
    show.add_argument("name", metavar="NAME")
    create = actions.add_parser("create", help="create a model (ForecasterConfig fields)")
    create.add_argument("name", metavar="NAME", help="letters, digits, '_', '.', '-'; at most 64")
    create.add_argument(
        "--config", metavar="JSON", help="ForecasterConfig fields as one JSON object, e.g. '{\"k1\": 4}'"
    )
    create.add_argument(
        "--set", metavar="FIELD=VALUE", action="append", default=[], help="one field (repeatable); VALUE is JSON"
    )
    delete = actions.add_parser("delete", help="delete a model and its series")
    delete.add_argument("name", metavar="NAME")
    for sub in (listing, show, create, delete):
        _add_server_options(sub)
    parser.set_defaults(handler=run_models)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def config_of(args: argparse.Namespace) -> dict[str, Any]:
    """The config ``create`` sends: ``--config`` first, then each ``--set`` (ValueError when malformed)."""
    try:
        config = json.loads(args.config) if args.config else {}
    except json.JSONDecodeError as error:  # fix: said "Expecting value: line 1 column 1 (char 0)", naming no option
        raise ValueError(f"--config {args.config!r} is invalid: not JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"--config {args.config!r} is invalid: must be a JSON object")
    for item in args.set:
        field, equals, value = item.partition("=")
        if not equals or not field:
            raise ValueError(f"--set {item!r} is invalid: must be FIELD=VALUE")
        config[field] = _json_or_text(value)
    for field, value in config.items():  # (JSON has no infinity or NaN: the client's encoder refused it unnamed)
        try:
            json.dumps(value, allow_nan=False)
        except ValueError:
            raise ValueError(f"config field {field!r}: {value!r} is invalid: not a finite number") from None
    return config


def run_models(args: argparse.Namespace) -> int:
    try:
        with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            if args.action == "list":
                models = client.list_models()
                rows = [("model", "series", "observations", "updates", "skipped")]
                rows += [  # (each as text: a hostile server's escape sequences reached the terminal, a review's)
                    tuple(
                        printable(str(cell))
                        for cell in (m.name, m.series_count, m.observations, m.updates.updates, m.updates.skipped)
                    )
                    for m in models
                    if not isinstance(m, str)
                ]
                print("\n".join(format_table(rows)))
            elif args.action == "show":
                print(json.dumps(asdict(client.get_model(args.name)), indent=2))
            elif args.action == "create":
                info = client.create_model(args.name, **config_of(args))
                print(f"created model {info.name!r}")
                print(json.dumps(info.config, indent=2))
            else:
                client.delete_model(args.name)
                print(f"deleted model {args.name!r}")
    except (ValueError, ClientError) as error:
        # (no "create it" for a 404 of show or delete: the model asked for is not one to be made, a review's)
        # a lost answer of a read is not one "the server may have applied" (a hostile test's)
        read = args.action in ("list", "show")
        lost = "listing and showing change nothing: run it again" if read else MAY_HAVE_APPLIED
        told = explained(error, args.url, lost, model_hint=False)
        print(f"tbptt-online models {args.action}: error: {told}", file=sys.stderr)
        return 1
    return 0
