"""Guard events reach the service's log (issue 12: each guard's answer is counted, logged and
shown): a model whose learning rate of 10 diverges is rolled back, and the worker logs one
warning per kind that fired, naming the model, with the counts the model's stats report."""

from __future__ import annotations

import logging
import math
import re

from service.host.metrics import ServiceMetrics
from service.host.model_worker import ModelWorker
from service.storage.observation import Observation
from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.guards import COUNTERS

HOT = ForecasterConfig(hidden_size=16, k1=2, k2=8, hybrid=False, lr=10.0)  # diverges: rolled back


def test_a_rolled_back_model_is_named_in_a_warning_with_its_counts(caplog) -> None:
    worker = ModelWorker("hot", Forecaster(HOT), metrics=ServiceMetrics())
    caplog.set_level(logging.WARNING, logger="service.host.guards")
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
        assert record.levelno == logging.WARNING and message.startswith("model 'hot': instability guard ")
        kind, fired, total = re.search(r"guard (\w+) fired (\d+) time\(s\) \(total (\d+)\)", message).groups()
        assert total == str(logged.get(kind, 0) + int(fired))  # each line adds to the last one's total
        logged[kind] = int(total)
    assert logged == {k: getattr(stats, k) for k in COUNTERS if getattr(stats, k)}


def test_a_healthy_model_logs_no_guard_event(caplog) -> None:
    worker = ModelWorker("calm", Forecaster(ForecasterConfig(hidden_size=8, k1=2, k2=8)), metrics=ServiceMetrics())
    caplog.set_level(logging.WARNING, logger="service.host.guards")
    for first in range(0, 200, 40):
        worker.apply([Observation("s", math.sin(t / 3)) for t in range(first, first + 40)])
        worker.publish()
    assert worker.snapshot.updates.rollbacks == 0 and not caplog.records
