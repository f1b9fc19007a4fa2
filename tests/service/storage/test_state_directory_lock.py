"""One process owns a state directory: a second ``serve`` on it exits non-zero with the reason before it
binds its port (issue 11, defect 7: it used to bind and answer /healthz 200 while serving nothing)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from benchmarks.server_process import free_port

from ..conftest import console_script

pytestmark = pytest.mark.timeout(180)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_second_server_on_the_same_state_directory_exits_with_the_reason_before_binding(
    start_server, tmp_path
) -> None:
    state_dir = tmp_path / "state"
    first = start_server(state_dir=state_dir)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TBPTT_")}
    env.update({"TBPTT_HOST": "127.0.0.1", "TBPTT_PORT": str(port), "TBPTT_STATE_DIR": str(state_dir)})
    second = subprocess.Popen(
        [console_script("tbptt-online"), "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output, _ = second.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        bound = listening(port)
        second.kill()
        second.communicate()
        pytest.fail(f"the second server kept running (its port {'bound' if bound else 'not bound'})")
    assert second.returncode != 0
    text = output.decode(errors="replace")
    assert f"error: the state directory {state_dir} is in use by another process (pid {first.process.pid})" in text
    assert "Uvicorn running" not in text  # it never bound its port
    assert not listening(port)
    assert listening(first.port)  # the first one goes on


def test_a_lock_file_deleted_under_its_holder_still_keeps_a_second_owner_out(tmp_path) -> None:
    # an operator's hostile test (session 58): `rm state/lock` under a running server (a stale-lock clean-up) let a
    # second one start, both acknowledged writes, and recovery interleaved the two histories; the directory's own
    # lock stays held
    from tbptt_service.storage.state_lock import StateDirectoryInUse, StateDirectoryLock

    first = StateDirectoryLock(tmp_path).acquire()
    try:
        (tmp_path / "lock").unlink()
        with pytest.raises(StateDirectoryInUse, match=r"is in use by another process \(pid unknown\)"):
            StateDirectoryLock(tmp_path).acquire()
    finally:
        first.release()
    again = StateDirectoryLock(tmp_path).acquire()  # released: the next owner takes it
    assert again.held and (tmp_path / "lock").read_text() == f"{os.getpid()}\n"
    again.release()
