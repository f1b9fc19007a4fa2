"""``tbptt-online``: the command line. ``serve`` runs the HTTP service with uvicorn.

Each subcommand is a function that adds its parser and a ``handler(args) -> int``;
a new one (``feed``, ``forecast``, ...) is one more entry in ``COMMANDS``.

>>> args = build_parser().parse_args(["serve", "--port", "9001"])
>>> args.command, args.port, args.host
('serve', 9001, None)
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Sequence

from pydantic import ValidationError
from pydantic_settings import SettingsError

from tbptt_online import allocator
from tbptt_service.cli.advise import add_advise_command
from tbptt_service.cli.cli_tools import add_feed_command, add_forecast_command
from tbptt_service.cli.models import add_models_command
from tbptt_service.descriptors import descriptor_limit, descriptors_needed, raise_descriptor_limit, reserved
from tbptt_service.settings import Settings, unknown_variables
from tbptt_service.storage.state_lock import StateDirectoryInUse, StateDirectoryLock
from tbptt_service.version import VERSION


def settings_epilog() -> str:
    """``serve --help``'s list of the settings, each ``TBPTT_<FIELD>`` with its default (the option above
    overrides it where there is one): a new user found none of them in the help (session 48).

    >>> "TBPTT_MAX_HORIZON (default 1000)" in settings_epilog()
    True
    """
    lines = ["settings (environment variables; README, the settings tables, says what each does):"]
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else json.dumps(default) if isinstance(default, dict | list) else default
        lines.append(f"  TBPTT_{name.upper()} (default {shown})")
    return "\n".join(lines)


def add_serve_command(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the HTTP service (settings from TBPTT_* variables)",
        epilog=settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="interface to listen on (overrides TBPTT_HOST)")
    parser.add_argument("--port", type=int, help="TCP port (overrides TBPTT_PORT)")
    parser.add_argument("--state-dir", help="state directory (overrides TBPTT_STATE_DIR)")
    parser.add_argument("--log-level", help="log level (overrides TBPTT_LOG_LEVEL)")
    parser.add_argument("--log", dest="log_url", help="a postgresql:// event log (overrides TBPTT_LOG_URL)")
    parser.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="serve as the front of a cluster: the models live in --shards Ray actors (needs --log postgresql://...; "
        "--state-dir is then the checkpoints' directory, shared by every node)",
    )
    parser.add_argument("--shards", type=int, default=2, help="shards of the cluster (with --ray; default 2)")
    parser.set_defaults(handler=serve)


def preparing_message(cached: bool) -> str:
    """The log line before the warm-up: the kernels load from their cache, or compile (a new user read
    "about a minute" on every start, then "ready in 0.8 s")."""
    if cached:
        return "preparing the model code (its compiled kernels load from the cache: seconds)"
    return "preparing the model code (its kernels compile, once per machine and version: about a minute)"


def freeze_the_modules(settings: Settings) -> None:
    """Put the objects of every module the service will use out of the garbage collector's sight.

    The modules (torch, FastAPI, pydantic, and the ~800 that torch imports on the first
    update: its optimizers pull in sympy) hold some 300,000 objects that live as long as
    the process; a full collection visited them all, 30 to 200 ms on every thread's time
    and several times a second under load. A throwaway forecaster of the default model's
    kind runs an update, a forecast and a checkpoint's ``state_dict`` first, so that those
    imports happen now, then ``gc.freeze()`` moves everything alive to the permanent
    generation (after a collection, so that no garbage is frozen with it).
    """
    from tbptt_online import Forecaster, ForecasterConfig
    from tbptt_online.cache_lock import one_compiler
    from tbptt_online.compiled import cache_dir

    config = settings.default_config().to_dict() | {"hidden_size": 2, "k1": 2, "k2": 2}
    with one_compiler(cache_dir()):  # (two serves on a clean cache: one compiles, the other then loads)
        warm = Forecaster(ForecasterConfig.from_dict(config))
        for value in range(4):
            warm.observe("warm-up", [0.5 * value] * warm.config.n_features)
        warm.forecast("warm-up", 2)
        warm.series_stats("warm-up")
        warm.state_dict()
    gc.collect()
    gc.freeze()


def settings_error(error: ValidationError | SettingsError) -> str:
    """What is wrong with the settings, one line per field, naming its variable (and option).

    >>> try:
    ...     Settings(port=99999)
    ... except ValidationError as error:
    ...     print(settings_error(error))
    TBPTT_PORT (--port) = 99999: Input should be less than or equal to 65535
    """
    if isinstance(error, SettingsError):  # a complex field's JSON: pydantic-settings names the field
        field = re.search(r'field "(\w+)"', str(error))
        name = f"TBPTT_{field[1].upper()}" if field else "a setting"
        return f"{name}: not valid JSON ({error.__cause__ or error})"
    lines = []
    for item in error.errors(include_url=False):
        field = str(item["loc"][0]) if item["loc"] else "settings"
        option = f" (--{field.replace('_', '-')})" if field in SERVE_OPTIONS else ""
        given = item["input"]  # a JSON setting's value as JSON, as it was written ({'hidden': 3} was shown)
        shown = json.dumps(given) if isinstance(given, dict | list) else repr(given)
        message = str(item["msg"]).removeprefix("Value error, ")  # (pydantic's, left in until session 48)
        lines.append(f"TBPTT_{field.upper()}{option} = {shown:.80}: {message}")
    return "; ".join(lines)


SERVE_OPTIONS = ("host", "port", "state_dir", "log_level")


def port_in_use(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on now (None: it can), by binding it for a moment as
    uvicorn will (``SO_REUSEADDR``, no ``SO_REUSEPORT``)."""
    try:
        family, *_, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except OSError as error:  # a name that does not resolve: said here (uvicorn's error named no host; exit 3)
        return f"the name does not resolve ({error.strerror or error})"
    try:
        with socket.create_server(address[:2], family=family):
            return None
    except OSError as error:
        return error.strerror or str(error)


def cannot_listen(settings: Settings) -> bool:
    """Whether ``serve`` cannot listen on its host and port now: said on stderr, naming why."""
    busy = port_in_use(settings.host, settings.port)
    if busy is not None:
        print(f"tbptt-online serve: error: cannot listen on {settings.host}:{settings.port}: {busy}", file=sys.stderr)
    return busy is not None


def too_few_descriptors(settings: Settings) -> bool:
    """Whether the descriptors the process may open cannot hold ``max_connections`` (said on stderr): a cap
    they cannot hold would let clients take them all (descriptors.py)."""
    limit = descriptor_limit()
    if limit is None or descriptors_needed(settings.max_connections, limit) <= limit:
        return False
    print(
        f"tbptt-online serve: error: TBPTT_MAX_CONNECTIONS={settings.max_connections} needs "
        f"{descriptors_needed(settings.max_connections, limit)} file descriptors (twice the cap plus "
        f"{reserved(limit)}), but the process may open {limit} (RLIMIT_NOFILE, raised toward its hard limit): "
        f"lower it to {max(1, (limit - reserved(limit)) // 2)} or less, or raise the hard limit (ulimit -Hn)",
        file=sys.stderr,
    )
    return True


def serve(args: argparse.Namespace) -> int:
    raise_descriptor_limit()  # before the settings: TBPTT_MAX_CONNECTIONS' default follows it (descriptors.py)
    overrides = {key: getattr(args, key, None) for key in ("host", "port", "state_dir", "log_level", "log_url")}
    unknown = unknown_variables(os.environ)
    if unknown:  # fix: a misspelt setting was ignored, the server started on the default it meant to change
        print(f"tbptt-online serve: error: unknown setting {', '.join(unknown)}", file=sys.stderr)
        return 2
    switch = os.environ.get(allocator.SWITCH)
    if switch is not None and switch not in ("0", "1"):  # the library reads "1" alone: "true" did nothing, unsaid
        print(f"tbptt-online serve: error: {allocator.SWITCH} = {switch!r}: must be 1 (on) or 0 (off)", file=sys.stderr)
        return 2
    try:  # fix: a bad setting (TBPTT_MAX_BODY_BYTES=abc, --port 99999, TBPTT_DEFAULT_MODEL='{bad') was a traceback
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except (ValidationError, SettingsError) as error:
        print(f"tbptt-online serve: error: {settings_error(error)}", file=sys.stderr)
        return 2
    if too_few_descriptors(settings):
        return 2
    if getattr(args, "ray", None):
        from tbptt_service.cli.cluster import serve_front

        if cannot_listen(settings):  # a front's host and port too (the review of session 36), before Ray
            return 1
        return serve_front(settings, args.ray, args.shards)
    state_lock = None
    if settings.durable:  # before anything else, the port included: a second server on a directory must not start
        try:
            state_lock = StateDirectoryLock(settings.state_dir).acquire()
        except StateDirectoryInUse as error:
            print(f"tbptt-online serve: error: {error}", file=sys.stderr)  # (no "error:" until session 48)
            return 1
        except OSError as error:  # fix: an unusable --state-dir was a traceback
            print(f"tbptt-online serve: error: state directory {str(settings.state_dir)!r}: {error}", file=sys.stderr)
            return 1
    # Before torch is first imported: OpenMP reads its thread count once, and a thread that did not
    # call torch.set_num_threads itself (the model workers, the forecast and executor threads) runs
    # with that count, not with what the main thread set (2 threads on 2 busy cores: a forecast
    # took 80 ms instead of 1 ms).
    os.environ["OMP_NUM_THREADS"] = str(settings.torch_threads)

    from tbptt_service.errors import ApiError
    from tbptt_service.host.memory_budget import MemoryBudget  # imports torch: after OMP_NUM_THREADS is set

    budget = MemoryBudget(settings.max_model_bytes, settings.max_process_bytes)
    try:  # a default model that cannot fit is a clear startup error, not a server that never gets ready
        budget.check_model(settings.default_config(), others_bytes=0)
    except ApiError as error:
        print(f"tbptt-online serve: TBPTT_DEFAULT_MODEL: {error.detail}", file=sys.stderr)
        return 2

    # before the warm-up and the recovery, which ran first, then failed to bind (a new user)
    if cannot_listen(settings):
        return 1

    import uvicorn  # imported here: other subcommands need neither uvicorn nor the app

    from tbptt_service.api.app import create_app
    from tbptt_service.api.connection_cap import connection_capped_protocol

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, state_lock=state_lock)
    # the throwaway forecaster compiles the numba kernels on a machine's first start (about 45 s, before
    # the port opens): said, and timed (a new user saw a silent terminal, then "ready in 0.6 s")
    log = logging.getLogger("tbptt_service.cli")
    from tbptt_online.compiled import kernels_cached

    log.info(preparing_message(kernels_cached()))
    started = time.perf_counter()
    freeze_the_modules(settings)
    log.info("model code ready in %.1f s; starting the server", time.perf_counter() - started)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        # Off above "info", where its lines are dropped anyway: uvicorn would still build each one
        # (client address, quoted path) on the event loop, per request.
        access_log=settings.log_level in ("info", "debug"),
        timeout_graceful_shutdown=30,  # SIGTERM: in-flight requests get this long, then the workers drain
        # a connection's head has a deadline and a size limit,
        http=connection_capped_protocol(
            settings.header_timeout_s, settings.max_header_bytes, settings.max_connections, settings.send_timeout_s
        ),  # answers taken within send_timeout_s, at most max_connections connections served at once
    )
    return 0


COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_serve_command,
    add_feed_command,
    add_forecast_command,
    add_models_command,
    add_advise_command,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tbptt-online", description="Online TBPTT forecasting service.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add_command in COMMANDS:
        add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code = args.handler(args)
        sys.stdout.flush()  # a reader that went away is found here, not in Python's flush at exit
        return code
    except BrokenPipeError:  # fix: `tbptt-online models show default | head` ended in a traceback
        # the reader went away: nothing more to say, and Python's own flush at exit must not fail too
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # as a shell reports a command killed by SIGPIPE (128 + 13)


if __name__ == "__main__":
    raise SystemExit(main())
