"""The app on a PostgreSQL log: the same requests give the same log records as on SQLite, and a crash
recovered from the PostgreSQL log gives back, bit for bit, the state a SQLite recovery gives back; a
recovered incarnation fences the one it replaced."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from tbptt_service.api.app import create_app
from tbptt_service.host.durability import CHECKPOINTS_DIR
from tbptt_service.settings import Settings
from tbptt_service.storage.event_log import EventLog
from tbptt_service.storage.log_store import FencedWriter
from tbptt_service.storage.postgres_log import PostgresLog

from ..conftest import SMALL_MODEL
from ..state_probe import assert_same_state, crash_copy, model_state
from .test_durability_recovery import NO_TIMER, T0, value_at

pytestmark = pytest.mark.anyio


async def feed_in_order(client: httpx.AsyncClient, start: int, count: int) -> None:
    """One request per step holding every series, each awaited: the same batches in every run."""
    for t in range(start, start + count):
        body = {"observations": [{"series": s, "value": value_at(t, s), "timestamp": T0 + t} for s in "abc"]}
        response = await client.post("/v1/models/default/observations", json=body)
        assert response.status_code == 200, response.text


async def crash_and_recover(settings: Settings, serve: Any, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Feed, checkpoint, feed more, copy the state as a kill -9 leaves it, recover a second app
    from the copy (and the same log); the state before the crash and the recovered one."""
    app = create_app(settings)
    async with serve(app) as client:
        await feed_in_order(client, 0, 8)
        assert (await client.post("/v1/models", json={"name": "m2", "config": SMALL_MODEL})).status_code == 201
        await app.state.durability.checkpoint(app.state.registry)
        await feed_in_order(client, 8, 8)
        assert (await client.delete("/v1/models/default/series/c")).status_code == 204
        assert (await client.post("/v1/models/m2/observations", json={"series": "x", "value": 2.5})).status_code == 200
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
        before = {m: await model_state(client, m) for m in ("default", "m2")}
    recovered_app = create_app(settings.model_copy(update={"state_dir": crashed}))
    async with serve(recovered_app) as client:
        report = recovered_app.state.durability.report
        assert report.checkpoint_seq is not None and report.applied > 0  # the checkpoint and the log after it
        after = {m: await model_state(client, m) for m in ("default", "m2")}
    return before, after


async def test_recovery_from_postgresql_is_bit_identical_to_recovery_from_sqlite(
    make_settings, serve, tmp_path, postgres_url
) -> None:
    sqlite = make_settings(**NO_TIMER, state_dir=tmp_path / "sqlite")
    postgres = make_settings(**NO_TIMER, state_dir=tmp_path / "pg", log_url=postgres_url, log_stream="shard-0")
    sqlite_before, sqlite_after = await crash_and_recover(sqlite, serve, tmp_path / "s")
    pg_before, pg_after = await crash_and_recover(postgres, serve, tmp_path / "p")
    for name in ("default", "m2"):
        assert_same_state(sqlite_after[name], sqlite_before[name])
        assert_same_state(pg_after[name], pg_before[name])
        assert_same_state(pg_after[name], sqlite_after[name])  # the same state from either store

    # The crashed copy's log (SQLite) and the stream hold the same records after the checkpoint
    # (seq 10: 8 batches, a created model, ... ; the records before it were pruned from both).
    with EventLog(tmp_path / "s" / "crashed" / "events.sqlite3") as log:
        from_sqlite = [(r.seq, r.model, r.kind, r.payload) for r in log.records()]
    with PostgresLog(postgres_url, stream="shard-0") as log:
        from_postgres = [(r.seq, r.model, r.kind, r.payload) for r in log.records()]
    assert [r[0] for r in from_sqlite] == list(range(11, 21))  # 8 batches, a deletion, m2's batch
    assert from_postgres == from_sqlite


async def test_a_recovered_incarnation_fences_the_one_it_replaced(make_settings, serve, tmp_path, postgres_url) -> None:
    settings = make_settings(**NO_TIMER, log_url=postgres_url)
    old_app = create_app(settings)
    async with serve(old_app) as old:
        await feed_in_order(old, 0, 3)
        new_app = create_app(settings.model_copy(update={"state_dir": tmp_path / "elsewhere"}))
        async with serve(new_app) as new:  # a new incarnation of the same stream: the old one is a zombie now
            refused = await old.post("/v1/models/default/observations", json={"series": "a", "value": 9.0})
            # 503, and /readyz says so: an operator's hostile test (session 58) got 500, the "bug" class, while the
            # zombie's /readyz said ready and a balancer kept sending to it
            assert refused.status_code == 503
            detail = refused.json()["detail"]
            assert "superseded by epoch 2" in detail and "nothing was applied" in detail
            ready = await old.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "superseded"
            assert "superseded by epoch 2" in ready.json()["detail"]
            assert (await new.get("/readyz")).json() == {"status": "ready"}
            assert (await old.get("/v1/models/default/series/a")).json()["count"] == 3  # not applied either
            accepted = await new.post("/v1/models/default/observations", json={"series": "a", "value": 9.0})
            assert accepted.status_code == 200
            assert (await new.get("/v1/models/default/series/a")).json()["count"] == 4


async def test_a_superseded_incarnation_writes_no_checkpoint_that_would_hide_the_new_ones_records(
    make_settings, serve, tmp_path, postgres_url
) -> None:
    # A hostile test (session 36): a superseded owner that had not appended since its takeover
    # labelled its checkpoints with the stream's last seq, the new owner's; a recovery from that
    # checkpoint skipped the new owner's acknowledged records (25 acknowledged, 10 recovered), and
    # its final checkpoint at close brought back a model the new owner had deleted.
    settings = make_settings(**NO_TIMER, log_url=postgres_url, log_stream="shard-0")
    old_app = create_app(settings)
    serving_old = serve(old_app)
    old = await serving_old.__aenter__()
    await feed_in_order(old, 0, 3)
    new_app = create_app(settings.model_copy(update={"state_dir": tmp_path / "elsewhere"}))
    async with serve(new_app) as new:  # takes the stream's next epoch and recovers the 3 batches
        # its checkpoint after the recovery (written in the background, then the log pruned), done before
        # the rest: under load it landed during the last recovery below, which then missed the pruned records
        await new_app.state.durability.checkpoint(new_app.state.registry)
        await feed_in_order(new, 3, 2)  # acknowledged by the new owner only
        assert (await new.get("/v1/models/default/series/a")).json()["count"] == 5
        with pytest.raises(FencedWriter, match="superseded by epoch 2"):
            await old_app.state.durability.checkpoint(old_app.state.registry)
        await serving_old.__aexit__(None, None, None)  # and its final checkpoint
        # In a cluster the pair shares one directory: the new owner's checkpoint (at its start, after
        # which it pruned the log) beside whatever the old one wrote. The old one must have written
        # nothing labelled past its state, from the checkpoint asked nor from the close.
        ours = settings.state_dir / CHECKPOINTS_DIR
        for written in (tmp_path / "elsewhere" / CHECKPOINTS_DIR).glob("checkpoint-*.ckpt"):
            assert not (ours / written.name).exists()
            shutil.copy(written, ours / written.name)
        recovered_app = create_app(settings)
        async with serve(recovered_app) as client:
            assert (await client.get("/v1/models/default/series/a")).json()["count"] == 5
