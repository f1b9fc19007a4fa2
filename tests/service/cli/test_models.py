"""``tbptt-online models list|show|create|delete`` against a real server."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from benchmarks.server_process import ServerProcess
from tbptt_service.cli.main import main

from ..conftest import start_ready_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One ``tbptt-online serve`` for the module's four tests that talk to a server: each started one of its
    own with these same settings (3-6 s a start on 2 cores). No test here leaves a model behind (the one
    made, 'web', is deleted by its test; every other create is refused), so each sees what a fresh one shows."""
    started: list[ServerProcess] = []
    try:
        folder = tmp_path_factory.mktemp("models-server")
        yield start_ready_server(folder, started, settings_env={"TBPTT_DEFAULT_MODEL": '{"hidden_size": 4}'})
    finally:
        for process in started:
            process.stop()


def test_models_are_created_listed_shown_and_deleted(server, capsys: pytest.CaptureFixture[str]) -> None:
    url = ["--url", server.url]

    assert main(["models", "create", "web", "--set", "hidden_size=8", "--set", "cell=lstm", *url]) == 0
    created = capsys.readouterr().out
    assert created.startswith("created model 'web'\n") and '"cell": "lstm"' in created

    assert main(["models", "list", *url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["model", "series", "observations", "updates", "skipped"]
    assert sorted(line.split()[0] for line in lines[1:]) == ["default", "web"]

    assert main(["models", "show", "web", *url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["name"], shown["config"]["hidden_size"], shown["series_count"]) == ("web", 8, 0)

    assert main(["models", "delete", "web", *url]) == 0
    assert capsys.readouterr().out == "deleted model 'web'\n"
    assert main(["models", "show", "web", *url]) == 1
    assert "model 'web'" in capsys.readouterr().err


def test_a_bad_config_is_reported_with_the_servers_reason(server, capsys) -> None:
    assert main(["models", "create", "m", "--set", "k1=0", "--url", server.url]) == 1
    assert "k1" in capsys.readouterr().err
    assert main(["models", "create", "m", "--set", "oops", "--url", server.url]) == 1
    assert "--set 'oops' is invalid: must be FIELD=VALUE" in capsys.readouterr().err


def test_a_config_that_is_not_json_is_named_before_anything_is_sent(capsys) -> None:
    # fix: the error said only "Expecting value: line 1 column 1 (char 0)"; nothing listens on port 9
    assert main(["models", "create", "m", "--config", "k1=4", "--url", "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tbptt-online models create: error: --config 'k1=4' is invalid: not JSON (Expecting value"), (
        err
    )


def test_the_help_names_the_url_fallback_whatever_tbptt_url_holds(monkeypatch, capsys) -> None:
    # a new user (session 36): with TBPTT_URL exported the help said "default: $TBPTT_URL or <its value>"
    monkeypatch.setenv("TBPTT_URL", "http://127.0.0.1:18431")
    with pytest.raises(SystemExit):
        main(["models", "list", "--help"])
    assert "(default: $TBPTT_URL, or http://127.0.0.1:8000 when unset)" in " ".join(capsys.readouterr().out.split())


def test_a_config_field_named_as_the_clients_parameters_is_the_servers_to_refuse(server, capsys) -> None:
    # a hostile test (session 48): `--set name=...` and `--set self=...` ended in a Python traceback (TypeError:
    # create_model() got multiple values for argument 'name'), and `--set lr=1e999` was told "Out of range float
    # values are not JSON compliant", naming no field
    for field in ("name", "self"):
        assert main(["models", "create", "m", "--set", f"{field}=other", "--url", server.url]) == 1
        err = capsys.readouterr().err
        assert err.startswith("tbptt-online models create: error: ") and field in err and "Traceback" not in err, err
    assert main(["models", "create", "m", "--set", "lr=1e999", "--url", server.url]) == 1
    assert "config field 'lr': inf is invalid: not a finite number" in capsys.readouterr().err


def test_no_server_and_an_unknown_model_are_told_what_to_do(server, capsys, tmp_path) -> None:
    # a new user (session 48): "ConnectError('[Errno 111] Connection refused')" said nothing of `serve` or --url,
    # and feed into a model not made yet said only "404: model 'newone' is unknown"
    assert main(["models", "list", "--url", "http://127.0.0.1:9", "--timeout", "2"]) == 1
    err = capsys.readouterr().err
    assert "ConnectError" in err
    assert "is a server running at http://127.0.0.1:9? start one with `tbptt-online serve`" in err
    rows = tmp_path / "rows.csv"
    rows.write_text("value\n1.0\n2.0\n")
    feed = ["feed", str(rows), "--model", "newone", "--series", "x", "--value-column", "value", "--no-progress"]
    assert main([*feed, "--url", server.url]) == 1
    err = capsys.readouterr().err
    assert "404: model 'newone' is unknown (create it with `tbptt-online models create NAME`)" in err, err


def test_a_lost_answer_to_a_read_is_not_told_it_may_have_been_applied() -> None:
    # a review (session 48): a GET forecast's ReadTimeout was told "the server may have applied it", and a
    # ConnectTimeout (nothing reached the server) got no hint to start the server or give --url
    import httpx

    from tbptt_online.client import TransportFailure
    from tbptt_service.cli.cli_tools import explained

    timed_out = TransportFailure("GET http://x/v1/models: ConnectTimeout('timed out')")
    timed_out.__cause__ = httpx.ConnectTimeout("timed out")  # (as the client raises it: from httpx's error)
    assert "is a server running at http://x?" in explained(timed_out, "http://x")
    read = TransportFailure("GET http://x/v1/models/m/series/s/forecast: ReadTimeout('timed out')")
    read.__cause__ = httpx.ReadTimeout("timed out")
    assert explained(read, "http://x", "a forecast changes nothing: run it again").endswith(
        "(no answer came back: a forecast changes nothing: run it again)"
    )
