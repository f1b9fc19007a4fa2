"""A real ``tbptt-online serve`` process for a whole test module (the users' tools talk to it over TCP).

Started as ``python -m tbptt_service.cli serve`` with this interpreter, on 127.0.0.1 and a free port, with
settings from the environment it is given (TBPTT_* of the calling environment are dropped), and
stopped (SIGTERM, graceful) by the fixture that started it.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.server_process import ServerProcess, free_port, serve_command

from .conftest import SMALL_MODEL


@contextmanager
def running_server(state_dir: Path, **settings_env: str) -> Iterator[ServerProcess]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBPTT_")}
    env["TBPTT_DEFAULT_MODEL"] = json.dumps(SMALL_MODEL)
    env.update(settings_env)
    env.update({"TBPTT_HOST": "127.0.0.1", "TBPTT_PORT": str(port), "TBPTT_STATE_DIR": str(state_dir / "state")})
    server = ServerProcess(serve_command(), env, port, state_dir / "server.log")
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), f"server exited with {code}:\n{server.log_path.read_text()}"
