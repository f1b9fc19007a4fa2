"""A log record whose bytes are not JSON (a damaged log) quarantines its model alone at recovery, like
any record that cannot apply; before, decoding it stopped recovery and every model answered 503."""

from __future__ import annotations

import sqlite3

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.api.app import create_app
from tbptt_service.storage.event_log import EventLog, UnreadablePayload
from tbptt_service.storage.log_journal import LogJournal
from tbptt_service.storage.observation import Observation

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio
NO_TIMER = {"checkpoint_interval_s": 0.0, "checkpoint_every_observations": 0}


def damaged_log(path) -> None:
    """Two models; the bytes of 'bad''s second batch (seq 4) overwritten with something not JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with EventLog(path) as log:
        journal = LogJournal(log)
        journal.record("good", "create_model", {"config": SMALL_MODEL})
        journal.record("bad", "create_model", {"config": SMALL_MODEL})
        journal.append("bad", [Observation("x", 1.0, 1.0)])
        journal.append("bad", [Observation("x", 2.0, 2.0)])  # seq 4: damaged below
        journal.append("good", [Observation("a", 1.0, 1.0), Observation("a", 2.0, 2.0)])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET payload = ? WHERE seq = 4", (b"\x00{torn",))


def test_the_log_reads_on_past_an_unreadable_record(tmp_path) -> None:
    path = tmp_path / "events.sqlite3"
    damaged_log(path)
    with EventLog(path) as log:
        records = list(log.records())
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert isinstance(records[3].payload, UnreadablePayload) and records[3].model == "bad"
    with pytest.raises(ValueError, match=r"the payload of log record seq 4 is not valid JSON"):
        records[3].payload["items"]
    assert records[4].payload["items"] == [["a", 1.0, 1.0], ["a", 2.0, 2.0]]


async def test_an_unreadable_record_quarantines_its_model_and_the_others_serve(make_settings, serve) -> None:
    settings = make_settings(**NO_TIMER)
    damaged_log(settings.state_dir / "events.sqlite3")
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    reference.observe_many([("a", 1.0), ("a", 2.0)])
    async with serve(create_app(settings)) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        reason = ready.json()["quarantined"]["bad"]
        assert reason.startswith("log record seq 4 (observe) failed to apply: the payload of log record seq 4")
        good = await client.get("/v1/models/good/series/a/forecast", params={"horizon": 2})
        assert good.status_code == 200
        assert [s["mean"] for s in good.json()["forecast"]] == reference.forecast("a", 2).mean
        refused = await client.post("/v1/models/bad/observations", json={"series": "x", "value": 3.0})
        assert refused.status_code == 503 and reason in refused.json()["detail"]
