"""The kernels' cache (compiled.py): keyed by every kernel module's source, so a change in
one module is never served by another module's stale machine code."""

from __future__ import annotations

import decimal
import math
import random
import signal
import threading
import time
from pathlib import Path

import numba
import numpy as np
import pytest
import torch

from tbptt_online import compiled


def test_the_cache_folder_changes_with_any_kernel_modules_bytes(tmp_path):
    files = [tmp_path / f"{name}.py" for name in ("a", "b", "c")]
    for i, path in enumerate(files):
        path.write_text(f"X = {i}\n")
    before = compiled.source_digest(files)
    assert compiled.source_digest(files) == before  # the same sources: the same folder
    files[1].write_text("X = 10\n")  # a constant another module's kernel inlines
    assert compiled.source_digest(files) != before


def test_every_kernel_module_is_in_the_digest_and_numba_caches_there():
    package = Path(compiled.__file__).parent
    with_kernels = {p.stem for p in package.glob("*.py") if "@compiled" in p.read_text()}
    assert with_kernels <= set(compiled.KERNEL_MODULES)
    assert compiled.cache_dir() == numba.config.CACHE_DIR
    assert Path(numba.config.CACHE_DIR).name == compiled.source_digest(
        [package / f"{name}.py" for name in compiled.KERNEL_MODULES]
    )


def test_every_module_with_inlined_helpers_is_in_the_digest_too():
    package = Path(compiled.__file__).parent
    with_helpers = {p.stem for p in package.glob("*.py") if "@inlined" in p.read_text()}
    assert with_helpers and with_helpers <= set(compiled.KERNEL_MODULES)


@numba.njit
def _sum_asking_ahead(values: np.ndarray, ahead: int) -> float:
    total = 0.0
    for i in range(values.shape[0]):
        compiled.prefetch(values.ctypes.data + (i + ahead) * values.strides[0])  # past the end as well
        total += values[i]
    return total


def test_prefetch_changes_no_value_and_an_address_outside_the_array_is_ignored():
    values = np.arange(1000.0)
    for ahead in (0, 64, 1 << 40, -(1 << 40)):
        assert _sum_asking_ahead(values, ahead) == 499500.0
    assert np.array_equal(values, np.arange(1000.0))


def test_writable_refuses_a_view_it_would_write_through_wrongly_and_a_kept_array_is_the_tensors_memory():
    t = torch.zeros(4, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="not contiguous"):
        compiled.writable({"a": t.t()}, ("a",))
    view = t[1:3]  # [2, 3] rows of a store's tensor, as hybrid_rows keeps them
    compiled.keep_numpy([view])
    (array,) = compiled.writable({"a": view}, ("a",))
    array[0, 0] = 5.0
    assert t[1, 0] == 5.0  # written through to the tensor
    assert np.shares_memory(compiled.readable(view)[0], t.numpy())  # read in place too (no copy)


def test_kernels_run_over_parts_of_the_rows_on_two_threads_give_the_same_state_as_one_call(monkeypatch, torch_threads):
    # compiled.over_rows: with torch's 2 intra-op threads a tick's kernels (the experts' advance and
    # paths, the scoring, the combination's base, the ring's remember) run over parts of the rows on
    # both threads at once; every row is the same, bit for bit, as when one call runs them all.
    from tbptt_online import Forecaster, ForecasterConfig
    from tests.tbptt_online.snapshots import assert_identical, snapshot

    generator = torch.Generator().manual_seed(0)
    names = [f"s{i}" for i in range(12)]
    ticks = [
        [(n, 10.0 + 3.0 * float(torch.sin(torch.tensor(t / 4.0 + i))) + float(torch.randn((), generator=generator)))
         for i, n in enumerate(names)]
        for t in range(60)
    ]  # fmt: skip
    calls, original = [], compiled.row_parts

    def recording(n_rows: int) -> list[slice]:
        calls.append(original(n_rows))
        return calls[-1]

    monkeypatch.setattr(compiled, "row_parts", recording)
    states = {}
    torch_threads(2)
    for least in (10**9, 2):  # one call each, then parts of at least 2 rows
        monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", least)
        f = Forecaster(ForecasterConfig(hidden_size=8, season_length=4))
        for tick in ticks:
            f.observe_many(tick)
        states[least] = snapshot(f)
        states[least]["forecast"] = f.forecast("s3", 12).mean
    assert any(len(parts) > 1 for parts in calls)  # the kernels did run in parts
    assert_identical(states[2], states[10**9])


def test_threads_running_kernels_of_different_sizes_share_one_pool_without_errors(monkeypatch):
    # fix (review): the pool was replaced, and the one before shut down, whenever a call wanted
    # another number of threads; a model worker and another thread (a forecast, a second model)
    # with ticks of different sizes then failed with "cannot schedule new futures after shutdown"
    monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", 1)
    monkeypatch.setattr(compiled, "_POOL", None)
    created, original = [], compiled.ThreadPoolExecutor

    def counting(*args, **kwargs):
        created.append(kwargs["max_workers"])
        return original(*args, **kwargs)

    monkeypatch.setattr(compiled, "ThreadPoolExecutor", counting)
    errors, seen = [], []

    def worker(n_rows: int) -> None:
        torch.set_num_threads(4)
        for _ in range(300):
            try:
                compiled.over_rows(n_rows, lambda rows: seen.append(rows))
            except Exception as error:  # counted: the assertion below names it
                errors.append(repr(error))

    threads = [threading.Thread(target=worker, args=(n,)) for n in (3, 4)]  # 2 and 3 pool threads
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(seen) == 300 * (3 + 4)  # every part of every call ran
    assert 1 <= len(created) <= 2 and max(created) == 3  # made once, grown once at most


def test_an_error_in_any_part_is_raised_after_every_part_has_run_the_first_in_row_order(monkeypatch, torch_threads):
    monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", 1)
    torch_threads(3)
    ran = []

    def call(rows: slice) -> None:
        ran.append(rows.start)
        if rows.start == 2:  # the first in row order, and the last to fail
            time.sleep(0.2)
            raise ValueError("part from row 2")
        if rows.start == 4:
            raise ValueError("part from row 4")

    with pytest.raises(ValueError, match="part from row 2"):
        compiled.over_rows(6, call)
    assert sorted(ran) == [0, 1, 2, 3, 4, 5]  # 3 threads x PIECES_PER_THREAD pieces, at most one a row


def test_parts_run_on_as_many_threads_as_get_enough_rows(monkeypatch, torch_threads):
    # fix (review): the parts ran on every torch thread, not on the threads that get
    # PARALLEL_MIN_ROWS rows each: with 8 threads, 2,048 rows ran on 8 threads of 256 rows
    monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", 1024)
    torch_threads(8)
    seen, lock = set(), threading.Lock()

    def call(rows: slice) -> None:
        time.sleep(0.02)  # long enough for every free thread to take a part
        with lock:
            seen.add(threading.get_ident())

    parts = len(compiled.row_parts(2048))  # (under the 8 threads: after them, CI's one gave one part)
    compiled.over_rows(2048, call)
    assert parts == 2 * compiled.PIECES_PER_THREAD  # two threads' worth of parts, not eight
    assert len(seen) == 2


def test_an_interruption_is_not_held_until_every_part_has_run(monkeypatch, torch_threads):
    # fix (review): a KeyboardInterrupt in this thread's part was kept like an error, and the
    # thread went on taking parts; it now takes no more and raises it (the pool's parts finish)
    monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", 1)
    torch_threads(2)
    caller, ran = threading.get_ident(), []

    def call(rows: slice) -> None:
        ran.append((threading.get_ident() == caller, rows.start))
        if threading.get_ident() == caller:
            raise KeyboardInterrupt
        time.sleep(0.05)

    with pytest.raises(KeyboardInterrupt):
        compiled.over_rows(8, call)
    assert sum(mine for mine, _ in ran) == 1  # the calling thread ran one part, then stopped


def test_an_interruption_while_waiting_for_the_pool_is_raised_once_its_parts_are_done(monkeypatch, torch_threads):
    # fix (hostile test): a KeyboardInterrupt that came while this thread waited for the pool's parts
    # reached the caller at once, the pool thread still writing the forecaster's arrays (up to 9.7 ms
    # after the caller caught it, in 2 of 60 interrupted ticks of 8,000 series)
    monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", 1)
    torch_threads(2)
    caller, finished = threading.get_ident(), []

    def call(rows: slice) -> None:
        time.sleep(0.001 if threading.get_ident() == caller else 0.3)  # the pool's part is the slow one
        finished.append(time.perf_counter())

    interrupt = threading.Timer(0.05, lambda: signal.pthread_kill(caller, signal.SIGINT))
    try:
        interrupt.start()
        with pytest.raises(KeyboardInterrupt):
            compiled.over_rows(8, call)
        caught = time.perf_counter()
    finally:
        interrupt.join()
    assert len(finished) == 8  # every part ran, each before the caller had the interruption
    assert max(finished) <= caught


def test_a_late_thread_leaves_its_parts_to_the_one_that_is_free(monkeypatch, torch_threads):
    # fix: each of two threads had its half of the rows; a pool thread that started a few
    # milliseconds late (torch's threads still spinning on its core after an operation) made the
    # calling thread wait for it at every kernel call (4 ms a call at 10,000 series). Parts are now
    # taken in turn: here the pool thread's first part takes 0.3 s and the calling thread does the rest.
    monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", 1)
    torch_threads(2)
    caller, by_thread, lock = threading.get_ident(), {}, threading.Lock()

    def call(rows: slice) -> None:
        with lock:
            mine = by_thread.setdefault(threading.get_ident(), [])
            mine.append(rows.start)
            first_elsewhere = threading.get_ident() != caller and len(mine) == 1
        time.sleep(0.3 if first_elsewhere else 0.005)

    compiled.over_rows(8, call)
    parts = compiled.PIECES_PER_THREAD * 2
    assert sorted(start for starts in by_thread.values() for start in starts) == list(range(parts))
    assert len(by_thread[caller]) >= parts - 1  # every part but the one the late thread held (if it got one)


def test_exp_weight_is_within_one_ulp_of_the_exact_exp_and_zero_below_its_floor():
    rng = random.Random(0)
    xs = [rng.uniform(-708.0, 0.0) for _ in range(3000)] + [rng.uniform(-1.0, 0.0) for _ in range(1000)]
    xs += [-708.0, -0.5 * math.log(2.0), -math.log(2.0), -1e-300, -5e-324, -1.0, -700.0]
    context = decimal.Context(prec=50)
    for x in xs:
        exact = float(context.exp(decimal.Decimal(x)))  # correctly rounded
        assert abs(compiled.exp_weight(x) - exact) <= math.ulp(exact), x
    assert compiled.exp_weight(0.0) == compiled.exp_weight(-0.0) == 1.0
    for x in (-708.0000001, -745.0, -1e300, -math.inf):
        assert compiled.exp_weight(x) == 0.0


def test_kernels_cached_says_whether_the_cache_holds_compiled_kernels(tmp_path):
    assert not compiled.kernels_cached(str(tmp_path))  # an empty cache: they compile
    nested = tmp_path / "tbptt_online_0123"  # numba's folder for the sources' directory
    nested.mkdir()
    (nested / "hybrid_kernels.serve-247.py311.1.nbc").write_bytes(b"")  # data without its index
    assert not compiled.kernels_cached(str(tmp_path))
    (nested / "hybrid_kernels.serve-247.py311.nbi").write_bytes(b"")
    assert compiled.kernels_cached(str(tmp_path))
    assert compiled.kernels_cached()  # this process has loaded or compiled them into the real cache
