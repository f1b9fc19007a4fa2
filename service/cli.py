"""``tbptt-online``: the command line. ``serve`` runs the HTTP service with uvicorn.

Each subcommand is a function that adds its parser and a ``handler(args) -> int``;
a new one (``replay``, ``forecast``, ...) is one more entry in ``COMMANDS``.

>>> args = build_parser().parse_args(["serve", "--port", "9001"])
>>> args.command, args.port, args.host
('serve', 9001, None)
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
from collections.abc import Callable, Sequence

from service.cli_tools import add_forecast_command, add_replay_command
from service.settings import Settings


def add_serve_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the HTTP service (settings from TBPTT_* variables)")
    parser.add_argument("--host", help="interface to listen on (overrides TBPTT_HOST)")
    parser.add_argument("--port", type=int, help="TCP port (overrides TBPTT_PORT)")
    parser.add_argument("--state-dir", help="state directory (overrides TBPTT_STATE_DIR)")
    parser.add_argument("--log-level", help="log level (overrides TBPTT_LOG_LEVEL)")
    parser.set_defaults(handler=serve)


def serve(args: argparse.Namespace) -> int:
    overrides = {key: getattr(args, key) for key in ("host", "port", "state_dir", "log_level")}
    settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    # Before torch is first imported: OpenMP reads its thread count once, and a thread that did not
    # call torch.set_num_threads itself (the model workers, the forecast and executor threads) runs
    # with that count, not with what the main thread set (2 threads on 2 busy cores: a forecast
    # took 80 ms instead of 1 ms).
    os.environ["OMP_NUM_THREADS"] = str(settings.torch_threads)

    import uvicorn  # imported here: other subcommands need neither uvicorn nor the app

    from service.app import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    # The ~200,000 objects of the imported modules (torch, FastAPI, pydantic) live as long as the
    # process: out of the collector's sight, a full collection takes a few ms instead of ~200 ms
    # (a pause every request would wait for).
    gc.collect()
    gc.freeze()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=30,  # SIGTERM: in-flight requests get this long, then the workers drain
    )
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_serve_command,
    add_replay_command,
    add_forecast_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tbptt-online", description="Online TBPTT forecasting service.")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    raise SystemExit(main())
