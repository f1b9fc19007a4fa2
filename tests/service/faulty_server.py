"""``tbptt-online serve`` with test-only switches that make the crash windows findable.

Run as ``python faulty_server.py`` with ``FAULT_DIR`` in the environment (a directory the test
shares with this process); everything else is the real service, configured by ``TBPTT_*``.

- Every record written to the event log (``EventLog.write``, which ``append`` goes through) is
  also written to ``FAULT_DIR/tap.jsonl`` once it has committed: the test's reference run
  feeds them to a library Forecaster, including those a checkpoint later pruned (a record a kill cut off between the
  commit and the tap is still in the log when the test reads it).
- While ``FAULT_DIR/slow-updates`` exists, each TBPTT update, once its optimizer step is taken,
  creates ``FAULT_DIR/updating``, holds still for half a second, and removes it: a ``kill -9``
  while ``updating`` exists lands in the middle of an update.
- While ``FAULT_DIR/slow-chunks`` exists, each chunk of a long batch but its last (``ModelWorker.apply_chunk``),
  once its record is written, creates ``FAULT_DIR/chunking``, holds still for half a second before
  it is applied, and removes it: a ``kill -9`` while ``chunking`` exists lands between two chunks
  of a batch (some applied, the rest not).
- While ``FAULT_DIR/slow-checkpoints`` exists, checkpoint files are written 1 KiB at a time with
  20 ms pauses: a ``kill -9`` while a ``.checkpoint-*.tmp`` file exists lands in a checkpoint write.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson

import tbptt_service.storage.checkpoints
from tbptt_online.engine import TBPTTEngine
from tbptt_service.cli.main import main
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.event_log import EventLog


def install(fault_dir: Path) -> None:
    """Patch the service in this process (only when run as a script: importing this module changes nothing)."""
    write, guarded_step, apply_chunk = EventLog.write, TBPTTEngine._guarded_step, ModelWorker.apply_chunk
    tap_lock = threading.Lock()

    def tapped_write(self: EventLog, model: str, kind: str, payload: Any) -> int:
        seq = write(self, model, kind, payload)
        line = orjson.dumps({"seq": seq, "model": model, "kind": kind, "payload": payload}) + b"\n"
        with tap_lock, (fault_dir / "tap.jsonl").open("ab") as tap:
            tap.write(line)
        return seq

    def held_step(self: TBPTTEngine) -> bool:
        stepped = guarded_step(self)
        if (fault_dir / "slow-updates").exists():
            marker = fault_dir / "updating"
            marker.touch()
            time.sleep(0.5)
            marker.unlink(missing_ok=True)
        return stepped

    def held_chunk(self: ModelWorker, request: Any, ticks: int, *args: Any, **kwargs: Any) -> Any:
        # only a chunk that leaves ticks of its batch to apply: a kill while the last one was held
        # left nothing for the next server, and a loaded machine's CI run saw no kill inside a batch
        run = self._chunked
        if (fault_dir / "slow-chunks").exists() and run is not None and run.remaining > ticks:
            marker = fault_dir / "chunking"
            marker.touch()
            time.sleep(0.5)
            marker.unlink(missing_ok=True)
        return apply_chunk(self, request, ticks, *args, **kwargs)

    class SlowCheckpointWrites:
        """``os`` as tbptt_service.storage.checkpoints sees it, with ``write`` slowed while switched on."""

        def __getattr__(self, name: str) -> Any:
            return getattr(os, name)

        def write(self, fd: int, data: Any) -> int:
            if (fault_dir / "slow-checkpoints").exists():
                time.sleep(0.02)
                return os.write(fd, data[:1024])
            return os.write(fd, data)

    EventLog.write = tapped_write
    TBPTTEngine._guarded_step = held_step
    ModelWorker.apply_chunk = held_chunk
    tbptt_service.storage.checkpoints.os = SlowCheckpointWrites()


if __name__ == "__main__":
    install(Path(os.environ["FAULT_DIR"]))
    sys.exit(main(["serve"]))
