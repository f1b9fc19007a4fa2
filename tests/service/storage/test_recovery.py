"""recover(): a run that crashes and recovers equals a run that never crashed, bit for bit."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.storage.checkpoints import CheckpointStore
from tbptt_service.storage.event_log import EventLog, LogRecord
from tbptt_service.storage.recovery import RecoveryError, recover

from ..bitwise import assert_bitwise_equal

CONFIGS = {
    "alpha": ForecasterConfig(hidden_size=8, k1=2, k2=5, seed=1),
    "beta": ForecasterConfig(cell="lstm", hidden_size=6, k1=3, k2=4, mode="stateless", replay_batch=4, n_features=2),
}


class Registry:
    """A stand-in for the service's models: applies log records to tbptt_online Forecasters."""

    def __init__(self) -> None:
        self.models: dict[str, Forecaster] = {}

    def apply(self, record: LogRecord) -> None:
        if record.kind == "create_model":
            self.models[record.model] = Forecaster(ForecasterConfig.from_dict(record.payload["config"]))
        elif record.kind == "observe":
            self.models[record.model].observe_many([(series, value) for series, value in record.payload["items"]])
        elif record.kind == "forget_series":
            self.models[record.model].forget(record.payload["series"])
        elif record.kind == "delete_model":
            del self.models[record.model]
        else:
            raise ValueError(f"kind={record.kind!r} is unknown")

    def snapshot(self) -> dict[str, Any]:
        return {"models": {name: f.state_dict() for name, f in self.models.items()}}

    def restore(self, state: dict[str, Any]) -> None:
        self.models = {name: Forecaster.from_state_dict(s) for name, s in state["models"].items()}


def operations(n_batches: int, seed: int) -> list[tuple[str, str, Any]]:
    """Creates, observation batches (series repeated within a batch, missing values), a forget, a re-create."""
    rng = random.Random(seed)
    ops: list[tuple[str, str, Any]] = [(name, "create_model", {"config": c.to_dict()}) for name, c in CONFIGS.items()]
    for b in range(n_batches):
        model = rng.choice(list(CONFIGS))
        d = CONFIGS[model].n_features
        items = [
            (f"s{rng.randrange(4)}", [None if rng.random() < 0.1 else rng.gauss(0.0, 1.0) for _ in range(d)])
            for _ in range(rng.randrange(1, 7))
        ]
        ops.append((model, "observe", {"items": items}))
        if b == n_batches // 3:
            ops.append(("alpha", "forget_series", {"series": "s2"}))
        if b == n_batches // 2:
            ops.append(("beta", "delete_model", {}))
            ops.append(("beta", "create_model", {"config": CONFIGS["beta"].to_dict()}))
    return ops


class Node:
    """The durable part of a service process: append, then apply; checkpoint every few records."""

    def __init__(self, directory: Path, checkpoint_every: int) -> None:
        self.store = CheckpointStore(directory / "checkpoints", keep=2)
        self.log = EventLog(directory / "events.db", sync="interval")
        self.registry = Registry()
        self.checkpoint_every = checkpoint_every
        self.report = recover(self.store, self.log, self.registry.restore, self.registry.apply)

    def submit(self, model: str, kind: str, payload: Any, crash_before_apply: bool = False) -> None:
        seq = self.log.append(model, kind, payload)
        if crash_before_apply:
            return
        self.registry.apply(LogRecord(seq, model, kind, payload, 0.0))  # the live object, not the logged bytes
        if seq % self.checkpoint_every == 0:
            self.store.write(seq, self.registry.snapshot())
            self.log.prune(self.store.oldest_kept_seq())

    def crash(self) -> None:
        self.log.close()
        self.registry = None  # every in-memory model is gone


def test_a_run_that_crashes_and_recovers_equals_a_run_that_never_crashed(tmp_path):
    ops = operations(n_batches=60, seed=7)
    reference = Registry()
    for seq, (model, kind, payload) in enumerate(ops, start=1):
        reference.apply(LogRecord(seq, model, kind, payload, 0.0))

    every = 5
    crash_after = {3, 10, 17, 24, 31, 44, 52}  # 10 and 31 right after a checkpoint write (seq = index + 1)
    corrupt_at, unapplied_at = 24, 44  # the newest checkpoint damaged; seq 45 logged, never applied nor checkpointed
    node = Node(tmp_path, every)
    assert node.report.checkpoint_seq is None and node.report.applied == 0
    reports = []
    for index, (model, kind, payload) in enumerate(ops):
        node.submit(model, kind, payload, crash_before_apply=index == unapplied_at)
        if index in crash_after:
            node.crash()
            if index == corrupt_at:
                newest = node.store.path_for(node.store.seqs()[-1])
                data = bytearray(newest.read_bytes())
                data[-10] ^= 0x40
                newest.write_bytes(bytes(data))
            node = Node(tmp_path, every)
            reports.append((index, node.report))

    for index, report in reports:
        seq = index + 1
        assert report.last_seq == seq
        if index == corrupt_at:  # the previous checkpoint and the longer log tail
            assert [r.path.name for r in report.rejected] == [f"checkpoint-{seq - seq % every:016d}.ckpt"]
            assert report.checkpoint_seq == seq - seq % every - every
        else:
            assert report.rejected == ()
            written = seq - 1 if index == unapplied_at else seq  # no checkpoint of an unapplied record
            assert report.checkpoint_seq == (written - written % every if written >= every else None)
        assert report.applied == seq - (report.checkpoint_seq or 0)
    assert all(m.update_stats().updates > 0 for m in reference.models.values())  # the weights did move
    assert_bitwise_equal(node.registry.snapshot(), reference.snapshot())
    for name, model in reference.models.items():
        for series in model.series:
            expected = model.forecast(series, horizon=4, level=0.8)
            assert node.registry.models[name].forecast(series, horizon=4, level=0.8) == expected
    node.crash()


def _filled(tmp_path: Path, records: int, every: int) -> None:
    node = Node(tmp_path, every)
    for model, kind, payload in operations(records, seed=3)[:records]:
        node.submit(model, kind, payload)
    node.crash()


def test_an_empty_state_directory_recovers_to_nothing(tmp_path):
    with EventLog(tmp_path / "events.db") as event_log:
        report = recover(CheckpointStore(tmp_path / "c"), event_log, restore=pytest.fail, apply=pytest.fail)
    assert (report.checkpoint_seq, report.applied, report.last_seq, report.rejected) == (None, 0, 0, ())


def test_recovery_refuses_when_the_only_usable_start_needs_pruned_records(tmp_path):
    _filled(tmp_path, records=12, every=5)  # checkpoints 5 and 10 kept, log pruned through 5
    store = CheckpointStore(tmp_path / "checkpoints")
    for seq in store.seqs():
        store.path_for(seq).write_bytes(b"rotten")
    with EventLog(tmp_path / "events.db") as event_log, pytest.raises(RecoveryError, match=r"log records 1\.\.5 are"):
        recover(store, event_log, Registry().restore, Registry().apply)


def test_recovery_refuses_a_log_that_ends_before_the_checkpoint(tmp_path):
    _filled(tmp_path, records=12, every=5)
    (tmp_path / "events.db").unlink()  # the log is lost, the checkpoints are not
    with EventLog(tmp_path / "events.db") as event_log, pytest.raises(RecoveryError, match="ends at seq 0"):
        recover(CheckpointStore(tmp_path / "checkpoints"), event_log, Registry().restore, Registry().apply)


def test_a_record_that_fails_to_apply_stops_recovery_naming_it(tmp_path):
    _filled(tmp_path, records=7, every=5)
    with EventLog(tmp_path / "events.db") as event_log:
        event_log.append("alpha", "rename_model", {})
        registry = Registry()
        with pytest.raises(RecoveryError, match=r"seq 8 \(rename_model of model 'alpha'\)") as caught:
            recover(CheckpointStore(tmp_path / "checkpoints"), event_log, registry.restore, registry.apply)
    assert isinstance(caught.value.__cause__, ValueError)
