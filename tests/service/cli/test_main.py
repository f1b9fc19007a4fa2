"""``tbptt-online serve``: options override the TBPTT_* settings and reach uvicorn."""

from __future__ import annotations

import gc
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import tbptt_online
from benchmarks.server_process import free_port
from tbptt_service.cli import main as cli_main
from tbptt_service.cli.main import build_parser, main
from tbptt_service.settings import unknown_variables


def test_serve_options_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.append({"app": app, **kwargs}))
    monkeypatch.setattr(cli_main, "port_in_use", lambda host, port: None)  # (9001 is not listened on here)
    monkeypatch.setenv("TBPTT_PORT", "9000")
    monkeypatch.setenv("TBPTT_HOST", "0.0.0.0")
    monkeypatch.setenv("TBPTT_TORCH_THREADS", "2")
    monkeypatch.setenv("OMP_NUM_THREADS", "8")  # what serve sets is undone after the test
    try:
        assert main(["serve", "--port", "9001", "--state-dir", str(tmp_path), "--log-level", "warning"]) == 0
    finally:
        gc.unfreeze()  # serve froze the objects of this (test) process for the collector
    (call,) = calls
    assert (call["host"], call["port"], call["log_level"]) == ("0.0.0.0", 9001, "warning")
    settings = call["app"].state.settings
    assert (settings.port, settings.state_dir, settings.torch_threads) == (9001, tmp_path, 2)
    assert os.environ["OMP_NUM_THREADS"] == "2"  # for the threads that never call torch.set_num_threads


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([])
    assert exit_info.value.code == 2
    assert "serve" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--port", "99999"], {}, "TBPTT_PORT (--port) = 99999: Input should be less than or equal to 65535"),
        ([], {"TBPTT_MAX_BODY_BYTES": "abc"}, "TBPTT_MAX_BODY_BYTES = 'abc': Input should be a valid integer"),
        ([], {"TBPTT_DEFAULT_MODEL": "{bad"}, "TBPTT_DEFAULT_MODEL: not valid JSON (Expecting property name"),
        # (with pydantic's "Value error, " before the message until session 48, a new user's)
        ([], {"TBPTT_DEFAULT_MODEL": '{"k1": 0}'}, 'TBPTT_DEFAULT_MODEL = {"k1": 0}: k1=0 is invalid'),
        # the value refused quoted as the variable's JSON writes it (it said cell='x', a review of session 58)
        ([], {"TBPTT_DEFAULT_MODEL": '{"cell": "x"}'}, 'TBPTT_DEFAULT_MODEL = {"cell": "x"}: cell="x" is invalid'),
        # fix: a misspelt or unknown variable was ignored, the server started on the default it meant to change
        ([], {"TBPTT_MAX_BODY_BYTE": "1"}, "unknown setting TBPTT_MAX_BODY_BYTE (did you mean TBPTT_MAX_BODY_BYTES?)"),
        ([], {"tbptt_nope": "1"}, "unknown setting tbptt_nope"),
        # a new user (session 36): an empty host listened on every interface
        ([], {"TBPTT_HOST": ""}, "TBPTT_HOST (--host) = '': String should match pattern"),
    ],
    ids=["option", "integer", "json", "config", "config string", "misspelt", "unknown", "empty host"],
)
def test_a_bad_setting_is_a_one_line_error_naming_it(monkeypatch, tmp_path, capsys, argv, env, message) -> None:
    # fix: each of these was a Python traceback (pydantic's ValidationError or SettingsError)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["serve", "--state-dir", str(tmp_path / "state"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tbptt-online serve: error: {message}") and err.count("\n") == 1, err


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        # an operator's hostile test (session 58): the state went into the working directory
        ("TBPTT_STATE_DIR", "", "TBPTT_STATE_DIR (--state-dir) = '': must name a directory, not be empty"),
        # ... and the library's switch read "1" alone: "true" or "2" did nothing, without a word
        ("TBPTT_KEEP_FREED_MEMORY", "true", "TBPTT_KEEP_FREED_MEMORY = 'true': must be 1 (on) or 0 (off)"),
    ],
)
def test_an_empty_state_dir_or_an_unread_switch_is_refused_naming_it(monkeypatch, capsys, name, value, message):
    monkeypatch.setenv(name, value)
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tbptt-online serve: error: {message}") and err.count("\n") == 1, err


def test_the_librarys_own_variable_is_no_unknown_setting(monkeypatch) -> None:
    # an audit (session 39): README's settings table lists TBPTT_KEEP_FREED_MEMORY, and serve exited 2 on it
    monkeypatch.setenv("TBPTT_KEEP_FREED_MEMORY", "1")
    assert unknown_variables(os.environ) == []


def test_an_unusable_state_directory_is_an_error_naming_it(tmp_path, capsys) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["serve", "--state-dir", str(blocker / "state")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tbptt-online serve: error: state directory '{blocker / 'state'}': "), err


def test_version_prints_the_librarys_version(capsys) -> None:
    # a new user found no version anywhere at runtime (now also in /healthz)
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"tbptt-online {tbptt_online.__version__}\n"


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path) -> None:
    # fix: `tbptt-online models show default | head` ended in a BrokenPipeError traceback; here the
    # reader is gone before the command writes (advise on a small CSV: no server needed)
    path = tmp_path / "small.csv"
    path.write_text("t,name,x\n" + "".join(f"{t},a,{t % 5}\n" for t in range(30)))
    command = [sys.executable, "-m", "tbptt_service.cli", "advise", str(path), "--series-column", "name"]
    with subprocess.Popen([*command, "--value-column", "x"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as child:
        child.stdout.close()
        err = child.stderr.read().decode()
        assert child.wait(timeout=120) == 141, err
    assert err == ""


def test_a_port_in_use_is_an_error_before_the_warm_up_and_the_recovery(tmp_path, capsys) -> None:
    # a new user's report: serve on a busy port created the state, warmed up, recovered, then failed to
    # bind (exit 3); now it says so first, and nothing of the state is read or written
    port = free_port()
    with socket.create_server(("127.0.0.1", port)):
        assert main(["serve", "--host", "127.0.0.1", "--port", str(port), "--state-dir", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"tbptt-online serve: error: cannot listen on 127.0.0.1:{port}: "), err
    assert not (tmp_path / "s" / "events.sqlite3").exists()


def test_port_0_serves_on_a_free_port_that_the_log_names(tmp_path) -> None:
    # a new user's report: --port 0 (a free port, as uvicorn and most servers take it) was refused
    command = [sys.executable, "-m", "tbptt_service.cli", "serve", "--host", "127.0.0.1", "--port", "0"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([*command, "--state-dir", str(tmp_path / "s")], stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline, port, seen = time.monotonic() + 180, None, []
        while port is None and time.monotonic() < deadline:
            line = child.stderr.readline()
            if not line:
                break
            seen.append(line)
            found = re.search(r"Uvicorn running on http://127\.0\.0\.1:(\d+)", line)
            port = int(found.group(1)) if found else None
        assert port is not None and port != 0, "".join(seen)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
    finally:
        child.terminate()
        child.wait(timeout=60)
        child.stderr.close()


def test_serve_says_whether_its_kernels_compile_or_load_from_the_cache(monkeypatch, caplog, tmp_path) -> None:
    # a new user read "the first start on a machine compiles its kernels: about a minute" on every start
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    monkeypatch.setattr(cli_main, "port_in_use", lambda host, port: None)
    for cached, said in ((True, "load from the cache"), (False, "compile, once per machine and version")):
        monkeypatch.setattr(tbptt_online.compiled, "kernels_cached", lambda cached=cached: cached)
        caplog.clear()
        try:
            with caplog.at_level("INFO", logger="tbptt_service.cli"):
                assert main(["serve", "--state-dir", str(tmp_path / str(cached)), "--log-level", "warning"]) == 0
        finally:
            gc.unfreeze()
        (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("preparing the model code")]
        assert said in line


def test_the_command_line_imports_neither_torch_nor_numba_until_a_command_needs_them() -> None:
    # every subcommand, `--help` too, took 3.9 s to start: the advise command's module imported torch
    code = "import sys, tbptt_service.cli.main; print(sorted(m for m in ('torch', 'numba') if m in sys.modules))"
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon", "5_0", "1e-320"])  # the last two: a review
def test_a_timeout_that_is_not_a_positive_number_of_seconds_is_refused_naming_the_option(capsys, value) -> None:
    # a hostile test (session 35): 0 and -1 reached httpx and failed with messages naming no option
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "list", "--timeout", value])
    assert exit_info.value.code == 2
    assert f"argument --timeout: {value!r} is invalid: seconds must be a finite number > 0" in capsys.readouterr().err


def test_a_host_name_that_does_not_resolve_is_an_error_before_the_warm_up(tmp_path, capsys) -> None:
    # a new user (session 36): uvicorn logged "Name or service not known" naming no host, after the
    # warm-up and the recovery, and the process ended with status 3
    assert main(["serve", "--host", "no-such-host.invalid", "--state-dir", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tbptt-online serve: error: cannot listen on no-such-host.invalid:8000: the name does not"), (
        err
    )
    assert not (tmp_path / "s" / "events.sqlite3").exists()


def test_a_cluster_fronts_host_that_does_not_resolve_is_an_error_before_ray_is_reached(capsys) -> None:
    # the review of session 36: the check was the single process's only
    argv = ["serve", "--ray", "127.0.0.1:1", "--log", "postgresql://nobody@127.0.0.1:1/none"]
    assert main([*argv, "--host", "no-such-host.invalid"]) == 1
    assert "cannot listen on no-such-host.invalid:8000: the name does not resolve" in capsys.readouterr().err


def test_serve_help_lists_every_setting_with_its_default(capsys) -> None:
    # a new user (session 48): `serve --help` listed 7 options and none of the TBPTT_* settings
    from tbptt_service.settings import Settings

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    shown = capsys.readouterr().out
    for name in Settings.model_fields:
        assert f"TBPTT_{name.upper()} (default " in shown, name
    assert "TBPTT_MAX_HORIZON (default 1000)" in shown and "TBPTT_API_KEY (default unset)" in shown


def test_the_forecast_table_shows_significant_digits_whatever_the_units() -> None:
    # fix (a new user's, session 54): cells were printed with 4 decimals, so a series about 5e-6 read 0.0000
    # for every mean and bound, and one about 1e-4 kept a single digit
    from tbptt_service.cli.cli_tools import _cell

    cells = [_cell(v) for v in (5.03e-06, 0.00045123, 12.3456789, 987654321.5, -0.5, 0.0, -2e-9)]
    assert cells == ["5.03e-06", "0.0004512", "12.3457", "987654321.5000", "-0.5000", "0.0000", "-2e-09"]
    assert _cell([1.0e-7, None]) == "[1e-07, -]"


def test_a_connection_cap_the_descriptors_cannot_hold_is_refused(monkeypatch, tmp_path, capsys) -> None:
    # a hostile test (session 60, F7): connections took every descriptor, and checkpoints failed meanwhile
    monkeypatch.setattr("tbptt_service.cli.main.descriptor_limit", lambda: 1024)
    monkeypatch.setenv("TBPTT_MAX_CONNECTIONS", "400")
    assert main(["serve", "--state-dir", str(tmp_path / "state")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "tbptt-online serve: error: TBPTT_MAX_CONNECTIONS=400 needs 1056 file descriptors (twice the cap plus 256), "
        "but the process may open 1024 (RLIMIT_NOFILE, raised toward its hard limit): lower it to 384 or less, or "
        "raise the hard limit (ulimit -Hn)\n"
    )
