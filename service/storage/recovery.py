"""Recovery: the newest valid checkpoint, then every log record after it, in seq order.

The caller owns the state and says how to rebuild it: ``restore(state)`` loads a
checkpoint's state dict, ``apply(record)`` applies one log record exactly as the
running service did. Recovery refuses (``RecoveryError``) rather than start on a
state that could be silently wrong: records missing between the checkpoint and the
log's tail (pruned past the checkpoint used, or a log that was lost), or a record
that fails to apply.

>>> import tempfile, pathlib
>>> from tbptt_service.storage.checkpoints import CheckpointStore
>>> from tbptt_service.storage.event_log import EventLog
>>> with tempfile.TemporaryDirectory() as d:
...     store, log = CheckpointStore(pathlib.Path(d) / "checkpoints"), EventLog(pathlib.Path(d) / "events.db")
...     totals = {}
...     def add(record):
...         totals["total"] += record.payload["x"]
...     for x in (1, 2, 3):
...         _ = log.append("m", "add", {"x": x})
...     _ = store.write(2, {"total": 3})  # the state after records 1 and 2
...     report = recover(store, log, restore=totals.update, apply=add)
...     log.close()
>>> totals, report.checkpoint_seq, report.applied, report.last_seq
({'total': 6}, 2, 1, 3)
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tbptt_service.storage.checkpoints import CheckpointStore, RejectedCheckpoint
from tbptt_service.storage.log_store import LogRecord, LogStore

log = logging.getLogger(__name__)


class RecoveryError(RuntimeError):
    """The state cannot be rebuilt exactly; the message says which records or file."""


@dataclass(frozen=True)
class RecoveryReport:
    checkpoint_seq: int | None  # None: no valid checkpoint, the log was applied from its start
    checkpoint_path: Path | None
    applied: int  # records applied after the checkpoint
    last_seq: int  # the seq the recovered state includes (the log's last)
    rejected: tuple[RejectedCheckpoint, ...]  # newer checkpoints skipped as corrupt, newest first


def recover(
    store: CheckpointStore,
    event_log: LogStore,
    restore: Callable[[dict[str, Any]], None],
    apply: Callable[[LogRecord], None],
) -> RecoveryReport:
    """Load the newest valid checkpoint into ``restore`` (not called when there is none:
    the caller starts empty), then ``apply`` every record with a greater seq, in order.

    ``apply`` receives the whole :class:`LogRecord`; a caller whose checkpoint holds a
    seq per model can skip a model's records at or below its own seq.
    """
    checkpoint, rejected = store.load_latest()
    start = 0 if checkpoint is None else checkpoint.seq
    last = event_log.last_seq()
    if last < start:
        raise RecoveryError(
            f"the event log {event_log.path} ends at seq {last}, before checkpoint {checkpoint.path} (seq {start}): "
            "the log was lost or replaced; refusing to start on a state it cannot confirm"
        )
    if checkpoint is not None:
        restore(checkpoint.state)
    expected = start + 1
    for record in event_log.records(after_seq=start):
        if record.seq != expected:
            raise RecoveryError(_gap_message(expected, record.seq - 1, checkpoint is not None, start, rejected))
        try:
            apply(record)
        except Exception as exc:
            raise RecoveryError(
                f"log record seq {record.seq} ({record.kind} of model {record.model!r}) failed to apply: {exc}"
            ) from exc
        expected += 1
    if expected <= last:
        raise RecoveryError(_gap_message(expected, last, checkpoint is not None, start, rejected))
    report = RecoveryReport(
        checkpoint_seq=None if checkpoint is None else start,
        checkpoint_path=None if checkpoint is None else checkpoint.path,
        applied=last - start,
        last_seq=last,
        rejected=tuple(rejected),
    )
    log.info(
        "recovered from %s, applied %d log record(s) up to seq %d, skipped %d corrupt checkpoint(s)",
        report.checkpoint_path or "an empty state",
        report.applied,
        report.last_seq,
        len(report.rejected),
    )
    return report


def _gap_message(first: int, last: int, from_checkpoint: bool, start: int, rejected: list[RejectedCheckpoint]) -> str:
    base = f"checkpoint seq {start}" if from_checkpoint else "an empty state (no valid checkpoint)"
    why = f"; rejected checkpoints: {[str(r.path) for r in rejected]}" if rejected else ""
    return f"log records {first}..{last} are missing (pruned or lost): cannot recover from {base}{why}"
