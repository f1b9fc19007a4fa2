"""Issue 11 defect 9: recovery runs at the torch thread count its records were computed with.

The matrix kernels split their sums by the thread count, so a log written at 2 threads and
applied at 1 would give other roundings, not the acknowledged state. The count is in the
log (a ``torch_threads`` record when a process computes with another count than the log's
last) and in each checkpoint; recovery applies them at it and the service then computes at its own.
"""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from tbptt_online import Forecaster
from tbptt_service.api.app import create_app
from tbptt_service.storage.checkpoints import CheckpointStore
from tbptt_service.storage.event_log import EventLog
from tbptt_service.storage.journal import TORCH_THREADS

from ..state_probe import crash_copy
from .test_durability_recovery import NO_TIMER, feed

pytestmark = pytest.mark.anyio


class ThreadRecorder(Forecaster):
    """A forecaster that notes the torch thread count each batch is computed with."""

    seen: ClassVar[list[int]] = []

    def observe_many(self, *args, **kwargs):
        ThreadRecorder.seen.append(torch.get_num_threads())
        return super().observe_many(*args, **kwargs)


def _thread_records(state_dir) -> list[dict]:
    with EventLog(state_dir / "events.sqlite3") as log:
        return [r.payload for r in log.records() if r.kind == TORCH_THREADS]


@pytest.mark.parametrize("checkpoint_first", [False, True])
async def test_records_written_at_two_threads_are_recovered_at_two(make_settings, serve, tmp_path, checkpoint_first):
    settings = make_settings(torch_threads=2, **NO_TIMER)
    first = create_app(settings)
    async with serve(first) as client:
        await feed(client, 0, 3)
        if checkpoint_first:  # the count then comes from the checkpoint (its record is pruned)
            assert await first.state.durability.checkpoint(first.state.registry) is not None
            await feed(client, 3, 2)
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
    assert _thread_records(crashed) == ([] if checkpoint_first else [{"torch_threads": 2}])

    ThreadRecorder.seen = []
    app = create_app(
        settings.model_copy(update={"state_dir": crashed, "torch_threads": 1}), forecaster_factory=ThreadRecorder
    )
    async with serve(app) as client:
        recovered = list(ThreadRecorder.seen)
        ThreadRecorder.seen = []
        response = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        assert response.status_code == 200
    assert app.state.durability.report.applied > 0
    assert recovered and set(recovered) == {2}, recovered  # as the records were computed
    assert ThreadRecorder.seen == [1]  # the service's own count from then on
    newest, _ = CheckpointStore(crashed / "checkpoints").load_latest()  # the last one: at shutdown
    assert newest is not None and newest.state["torch_threads"] == 1  # what the state after it is computed with


async def test_a_log_at_the_default_count_holds_no_thread_record(make_settings, serve) -> None:
    settings = make_settings(**NO_TIMER)
    async with serve(create_app(settings)) as client:
        await feed(client, 0, 2)
    assert _thread_records(settings.state_dir) == []
