"""The kernels' cache stays whole when processes write it at once (``cache_lock``, numba/numba#10128): any
process that imports the library saves its cache entries under a lock, not only the test workers."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from numba.core import caching

ROOT = Path(__file__).resolve().parents[2]

# One process's save of its own signature of one kernel into ``folder``: it reads the index, then lets the
# other process read it too before it writes (the two processes' reads meet in ``load_then_wait``), as two
# compilations finishing at once can. Unlocked, both take the first data file; locked, the other process's
# save waits for this one's whole (its read comes after this one's write: the wait for it runs out).
SAVER = textwrap.dedent(
    """
    import os, sys, time
    from numba.core import caching
    import tbptt_online.compiled  # what every kernel module imports first (nothing else here uses it)

    folder, me, other = sys.argv[1:]

    def wait_for(mark: str, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not os.path.exists(os.path.join(folder, mark)) and time.monotonic() < deadline:
            time.sleep(0.01)

    def mark(name: str) -> None:
        open(os.path.join(folder, name), "w").close()

    load_index = caching.IndexDataCacheFile._load_index

    def load_then_wait(self):
        index = load_index(self)
        mark(f"{me}.read")
        wait_for(f"{other}.read", 2.0)
        return index

    caching.IndexDataCacheFile._load_index = load_then_wait
    cache = caching.IndexDataCacheFile(folder, "kernel", "stamp")
    mark(f"{me}.ready")
    wait_for(f"{other}.ready", 60.0)  # (both imported: their saves start together)
    cache.save(("signature", me), f"machine code of {me}")
    """
)


def test_two_processes_saving_signatures_of_one_kernel_at_once_keep_both_in_its_index(tmp_path: Path) -> None:
    script, folder = tmp_path / "save.py", tmp_path / "cache"
    script.write_text(SAVER)
    folder.mkdir()
    savers = [
        subprocess.Popen(
            [sys.executable, str(script), str(folder), me, other], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for me, other in (("a", "b"), ("b", "a"))
    ]
    for saver in savers:
        _, errors = saver.communicate(timeout=180)
        assert saver.returncode == 0, errors[-2000:]
    cache = caching.IndexDataCacheFile(str(folder), "kernel", "stamp")
    assert cache.load(("signature", "a")) == "machine code of a"
    assert cache.load(("signature", "b")) == "machine code of b"
    assert sorted(p.name for p in folder.glob("kernel.*.nbc")) == ["kernel.1.nbc", "kernel.2.nbc"]
