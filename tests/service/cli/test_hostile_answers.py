"""The CLI against answers no tbptt-online server gives (a proxy's page, another service at the address, a
hostile server): one line naming the error and exit 1, never a traceback, never the answer's escape
sequences on the terminal, never a wait past ``--timeout`` (a hostile test, session 49)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tbptt_service.cli.main import main

FORECAST = b'{"model":"m","series":"s","horizon":1,"level":0.9,"step":1,"update_count":0,"forecast":[%s]}'
ANSWERS = {  # mode -> (status, body)
    "wrong shape": (200, b'{"forecast": "x", "models": 7, "results": {"a": 1}}'),
    "nan": (200, FORECAST % b'{"step":1,"mean":NaN,"lower":Infinity,"upper":-Infinity}'),
    "deep": (200, b"[" * 100_000 + b"]" * 100_000),
    "not json": (200, b"<html>a proxy's page</html>"),
    "escapes": (404, b'{"detail": "model \\u001b]0;PWNED\\u0007\\u001b[2Jred unknown\\rOVERWRITE"}'),
}


class _Hostile(BaseHTTPRequestHandler):
    mode = "wrong shape"

    def _answer(self) -> None:
        if self.mode == "slow":  # a whole answer's head, then its body one byte every 0.2 s
            self.send_response(200)
            self.send_header("content-length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.2)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up, as the test wants: this thread
                pass  # outlives the test's server (daemon_threads), and socketserver printed the traceback into the
                # stderr of a later test, test_main's capsys (failed twice here, session 59)
            return
        status, body = ANSWERS[self.mode]
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    # shutdown() below returns at the serving loop's next poll: 0.5 s by default, in every test's teardown
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def commands(url: str, tmp_path) -> dict[str, list[str]]:
    rows = tmp_path / "rows.csv"
    rows.write_text("value\n1.0\n")
    feed = ["feed", str(rows), "--model", "m", "--series", "s", "--value-column", "value", "--no-progress"]
    server = ["--url", url, "--timeout", "2"]
    return {
        "forecast": ["forecast", "m", "s", "--horizon", "1", *server],
        "models list": ["models", "list", *server],
        "models show": ["models", "show", "m", *server],
        "feed": [*feed, *server],
    }


@pytest.mark.parametrize("mode", ["wrong shape", "nan", "deep", "not json"])
def test_an_answer_that_is_not_the_apis_is_one_line_naming_it(hostile, tmp_path, capsys, mode) -> None:
    # each was a traceback (KeyError, TypeError, RecursionError), "Expecting value: line 1 column 1", or, NaN
    # and infinities, a forecast printed with its lower bound above its upper one
    _Hostile.mode = mode
    for name, argv in commands(hostile, tmp_path).items():
        assert main(argv) == 1, (mode, name)
        captured = capsys.readouterr()
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in captured.err, (mode, name, captured.err[-600:])
        assert lines[0].startswith(f"tbptt-online {name}: error: "), (mode, name, lines)
        assert "is not the tbptt-online API's" in lines[0] and "is the address a tbptt-online server?" in lines[0]
        assert "nan" not in captured.out.lower(), (mode, name, captured.out)


def test_a_servers_message_reaches_the_terminal_as_text_not_as_escape_sequences(hostile, tmp_path, capsys) -> None:
    # the title set, the screen cleared and the line overwritten by the message of a 404
    _Hostile.mode = "escapes"
    for name, argv in commands(hostile, tmp_path).items():
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "\x1b" not in err and "\x07" not in err and "\r" not in err, (name, err)
        assert r"model \x1b]0;PWNED\x07\x1b[2Jred unknown\rOVERWRITE" in err, (name, err)


def test_timeout_bounds_the_whole_answer_not_each_read(hostile, tmp_path, capsys) -> None:
    # an answer sent one byte every 0.2 s held `--timeout 5` commands until they were killed at 60 s; here
    # each byte would take 20 s in all, and --timeout 2 ends it (with the retries of a read: 4 tries)
    _Hostile.mode = "slow"
    argv = commands(hostile, tmp_path)["models list"]
    started = time.monotonic()
    assert main(argv) == 1
    waited = time.monotonic() - started
    err = capsys.readouterr().err
    assert "did not arrive whole within 2.0 s" in err, err
    assert "listing and showing change nothing: run it again" in err  # a read's lost answer: not "may have applied"
    assert waited < 4 * 2 + 4 * 1.0 + 5  # 4 tries of 2 s, their backoffs, slack: far below the 20 s of one answer


def test_a_model_name_in_a_list_reaches_the_terminal_as_text(hostile, capsys) -> None:
    # a review (session 49): only error messages were escaped; a name in a 200 answer reached stdout with its ESC
    name = "m\x1b]0;PWNED\x07"
    model = {"name": name, "config": {}, "series_count": 1, "observations": 2, "updates": {"updates": 3, "skipped": 0}}
    ANSWERS["list"] = (200, json.dumps({"models": [model]}).encode())
    _Hostile.mode = "list"
    assert main(["models", "list", "--url", hostile, "--timeout", "2"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and r"m\x1b]0;PWNED\x07" in out, out
