"""The durability settings: read from TBPTT_* variables, validated, and used by the app's log."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from tbptt_service.api.app import create_app
from tbptt_service.settings import Settings

from ..conftest import SMALL_MODEL
from .test_durability_recovery import feed

pytestmark = pytest.mark.anyio


def test_the_durability_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = Settings()
    assert (defaults.durable, defaults.log_sync, defaults.log_max_bytes, defaults.checkpoints_kept) == (
        True,
        "batch",
        None,
        3,
    )
    for key, value in {
        "DURABLE": "false",
        "LOG_SYNC": "interval",
        "LOG_SYNC_INTERVAL_MS": "25",
        "LOG_MAX_BYTES": "1048576",
        "CHECKPOINT_INTERVAL_S": "2.5",
        "CHECKPOINT_EVERY_OBSERVATIONS": "500",
        "CHECKPOINTS_KEPT": "5",
    }.items():
        monkeypatch.setenv(f"TBPTT_{key}", value)
    s = Settings()
    assert (s.durable, s.log_sync, s.log_sync_interval_ms, s.log_max_bytes) == (False, "interval", 25, 1_048_576)
    assert (s.checkpoint_interval_s, s.checkpoint_every_observations, s.checkpoints_kept) == (2.5, 500, 5)


@pytest.mark.parametrize(
    ("field", "value"),
    [("log_sync", "sometimes"), ("log_sync_interval_ms", 0), ("checkpoints_kept", 0), ("checkpoint_interval_s", -1)],
)
def test_bad_durability_settings_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


async def test_the_app_logs_with_the_configured_sync(make_settings, serve) -> None:
    app = create_app(make_settings(log_sync="interval", log_sync_interval_ms=10))
    async with serve(app) as client:
        for value in (1.0, 2.0):
            await client.post("/v1/models/default/observations", json={"series": "a", "value": value})
        assert app.state.durability.log.sync_mode == "interval"
        assert app.state.durability.log.last_seq() == 3  # the model's creation, then each request's batch


async def test_a_state_in_memory_keeps_nothing_on_disk(make_settings, serve) -> None:
    settings = make_settings(durable=False)
    async with serve(create_app(settings)) as client:
        await feed(client, 0, 3)
        assert (await client.get("/v1/models/default/series/a")).json()["count"] == 3
    assert list(settings.state_dir.iterdir()) == []
    async with serve(create_app(settings)) as client:
        assert (await client.get("/v1/models/default")).json()["series_count"] == 0


@pytest.mark.parametrize("durable", [True, False])
async def test_no_default_model_is_created_when_the_setting_says_so_with_or_without_durability(
    make_settings, serve, durable: bool
) -> None:
    # a new user (session 36): without durability the model 'default' was created anyway
    async with serve(create_app(make_settings(durable=durable, create_default_model=False))) as client:
        assert (await client.get("/v1/models")).json()["models"] == []


async def test_a_changed_default_model_setting_on_a_state_that_is_not_new_is_said_in_the_log(
    make_settings, serve, caplog: pytest.LogCaptureFixture
) -> None:
    # a hostile test (session 47): restarted with another TBPTT_DEFAULT_MODEL, the server kept the model
    # 'default' of its state, as it must (its learned state), without a word; so did it after 'default' was deleted
    def said() -> list[tuple[int, str]]:
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "tbptt_service.host.durability"]

    changed = {**SMALL_MODEL, "hidden_size": SMALL_MODEL["hidden_size"] * 2}
    with caplog.at_level(logging.INFO, logger="tbptt_service.host.durability"):
        async with serve(create_app(make_settings())) as client:
            await feed(client, 0, 3)
        async with serve(create_app(make_settings())):  # the same setting as the state's model: nothing to say
            pass
        assert said() == []
        async with serve(create_app(make_settings(default_model=changed))) as client:
            kept = (await client.get("/v1/models/default")).json()["config"]["hidden_size"]
            assert (await client.delete("/v1/models/default")).status_code == 204
        assert kept == SMALL_MODEL["hidden_size"]  # the state's model, unchanged
        assert [level for level, _ in said()] == [logging.WARNING], said()
        assert f"hidden_size={kept!r} (setting: {changed['hidden_size']!r})" in said()[0][1]
        caplog.clear()
        async with serve(create_app(make_settings(default_model=changed))) as client:
            assert (await client.get("/v1/models")).json()["models"] == []  # deleted: not made again
        assert [(level, "holds no model 'default'" in message) for level, message in said()] == [(logging.INFO, True)]


async def test_a_library_default_changed_since_the_state_was_made_is_not_said_as_a_changed_setting(
    make_settings, serve, caplog: pytest.LogCaptureFixture
) -> None:
    # a review (session 50): after outlier_run's default became 3, every start with TBPTT_DEFAULT_MODEL set (as
    # docker-compose sets it) warned that the setting differed in outlier_run, which it does not name
    old = {**SMALL_MODEL, "outlier_run": 2}  # the state's model, made when the library's default was 2
    with caplog.at_level(logging.INFO, logger="tbptt_service.host.durability"):
        async with serve(create_app(make_settings(default_model=old))):
            pass
        async with serve(create_app(make_settings())) as client:  # SMALL_MODEL names no outlier_run: 3 now
            assert (await client.get("/v1/models/default")).json()["config"]["outlier_run"] == 2
    assert [r.getMessage() for r in caplog.records if r.name == "tbptt_service.host.durability"] == []
