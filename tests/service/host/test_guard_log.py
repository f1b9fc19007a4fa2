"""Guard events reach the service's log (issue 12: each guard's answer is counted, logged and
shown): a model whose learning rate of 10 diverges is rolled back, and the worker logs one
warning per kind that fired, naming the model, with the counts the model's stats report."""

from __future__ import annotations

import logging
import math
import re

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.guards import COUNTERS
from tbptt_online.results import UpdateStats
from tbptt_service.host import guard_log
from tbptt_service.host.guard_log import GuardLog
from tbptt_service.host.metrics import ServiceMetrics
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.observation import Observation

HOT = ForecasterConfig(hidden_size=16, k1=2, k2=8, hybrid=False, lr=10.0)  # diverges: rolled back


def test_a_rolled_back_model_is_named_in_a_warning_with_its_counts(caplog, monkeypatch) -> None:
    monkeypatch.setattr(guard_log, "INTERVAL_S", 0.0)  # a line for every snapshot whose counts rose
    worker = ModelWorker("hot", Forecaster(HOT), metrics=ServiceMetrics())
    caplog.set_level(logging.INFO, logger="tbptt_service.host.guards")
    for first in range(0, 800, 40):
        batch = [
            Observation(f"s{i}", 5 * math.sin(2 * math.pi * t / 12 + i) + 0.5 * math.cos(0.7 * t * i))
            for t in range(first, first + 40)
            for i in range(4)
        ]
        worker.apply(batch)
        worker.publish()
    stats = worker.snapshot.updates
    assert stats.rollbacks >= 1 and stats.divergences >= 1
    logged: dict[str, int] = {}
    for record in caplog.records:
        message = record.getMessage()
        assert message.startswith("model 'hot': instability guard ")
        kind, fired, total = re.search(r"guard (\w+) fired (\d+) time\(s\) \(total (\d+)\)", message).groups()
        assert record.levelno == (logging.INFO if kind == "explosions" else logging.WARNING), message  # (routine)
        assert total == str(logged.get(kind, 0) + int(fired))  # each line adds to the last one's total
        logged[kind] = int(total)
    assert logged == {k: getattr(stats, k) for k in COUNTERS if getattr(stats, k)}


def test_a_healthy_model_logs_no_guard_event(caplog) -> None:
    worker = ModelWorker("calm", Forecaster(ForecasterConfig(hidden_size=8, k1=2, k2=8)), metrics=ServiceMetrics())
    caplog.set_level(logging.WARNING, logger="tbptt_service.host.guards")
    for first in range(0, 200, 40):
        worker.apply([Observation("s", math.sin(t / 3)) for t in range(first, first + 40)])
        worker.publish()
    assert worker.snapshot.updates.rollbacks == 0 and not caplog.records


def stats_with(explosions: int, rollbacks: int = 0, updates: int = 0) -> UpdateStats:
    return UpdateStats(
        updates=updates,
        skipped=0,
        last_loss=None,
        last_grad_norm=None,
        lr=0.01,
        explosions=explosions,
        rollbacks=rollbacks,
    )


def test_a_guard_that_keeps_firing_gets_one_line_per_interval_summing_what_fired(caplog) -> None:
    # Fix: one line per kind and batch: on a 4-shard cluster's noisy data, hundreds of lines a second
    now = [0.0]
    log = GuardLog("m", stats_with(0), interval_s=60.0, clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="tbptt_service.host.guards")
    for step in range(1, 11):  # the explosion guard fires at each of 10 snapshots within 10 s
        now[0] = float(step)
        log.update(stats_with(explosions=step, rollbacks=1 if step >= 5 else 0, updates=step))
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "model 'm': instability guard explosions fired 1 time(s) (total 1) by update 1; learning rate now 0.01",
        "model 'm': instability guard rollbacks fired 1 time(s) (total 1) by update 5; learning rate now 0.01",
    ]
    now[0] = 61.0  # the interval has passed: the 9 explosions since the first line, in one line
    log.update(stats_with(explosions=10, rollbacks=1, updates=11))
    assert (
        caplog.records[-1].getMessage().startswith("model 'm': instability guard explosions fired 9 time(s) (total 10)")
    )
    assert len(caplog.records) == 3  # the roll-back did not rise again: no line for it
    # an explosion's update goes on, clipped: INFO; a roll-back changed the model's course: WARNING (a new user,
    # session 50: recovery's WARNING for a few routine clips on healthy data)
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.WARNING, logging.INFO]
