"""The checkpointer's choice of what to prune, on a stub log and registry."""

from __future__ import annotations

import asyncio

import pytest

from tbptt_service.host.checkpointer import Checkpointer
from tbptt_service.storage.checkpoints import CheckpointStore

pytestmark = pytest.mark.anyio


class StubLog:
    """A log whose last seq and fullness are set by the test; records what was pruned."""

    def __init__(self, last: int, full: bool) -> None:
        self.last, self.full, self.pruned = last, full, []

    def last_seq(self) -> int:
        return self.last

    def prune(self, through_seq: int) -> int:
        self.pruned.append(through_seq)
        self.full = False
        return 1


class StubRegistry:
    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.quarantined: dict[str, str] = {}

    def workers(self) -> list:
        return []


async def test_a_full_log_with_nothing_new_is_pruned_through_the_newest_checkpoint(tmp_path) -> None:
    # The review of session 36: the full-log test of test_durability_storage.py passed without this
    # branch. With 3 checkpoints kept, pruning through the oldest kept freed nothing; nothing new
    # could be logged, so no newer checkpoint came.
    store = CheckpointStore(tmp_path, keep=3)
    log = StubLog(last=100, full=False)
    checkpointer = Checkpointer(log, store, interval_s=0)  # type: ignore[arg-type]
    registry = StubRegistry()
    for last in (100, 200, 300):
        log.last = last
        assert await checkpointer.checkpoint(registry) == last  # type: ignore[arg-type]
    assert log.pruned == [100, 100, 100]  # through the oldest kept, each time
    log.full = True  # then an append was refused
    assert await checkpointer.checkpoint(registry) is None  # type: ignore[arg-type]  (nothing new logged)
    assert log.pruned[-1] == 300  # through the newest
    log.last, log.full = 400, True  # full again, with records after the newest checkpoint
    assert await checkpointer.checkpoint(registry) == 400  # type: ignore[arg-type]
    assert log.pruned[-1] == 400 and store.seqs() == [200, 300, 400]
