"""How the library compiles its per-series kernels: one decorator, one set of flags, one cache.

``compiled`` is numba's ``njit`` (no Python objects inside) with

- ``cache=True``: the machine code is written to disk and loaded by later processes
  instead of compiled again (tens of seconds on a clean checkout, about a second loaded);
- ``error_model="numpy"``: float arithmetic follows IEEE 754 as the tensor code it
  replaces did (``x / 0.0`` is inf or NaN, caught where it matters by the finiteness
  checks of the recursions), instead of raising ``ZeroDivisionError`` inside a tick;
- ``nogil=True``: a kernel called from Python lets go of the GIL while it runs (it touches
  no Python object), as torch's own operations do, so that the service's event loop parses
  and answers requests on another core meanwhile instead of waiting for the model's tick
  (issue 11, the mixed load). Its arrays are the writer's own rows; a reader of a snapshot
  never reads a row that a kernel writes without the writer having saved it first
  (``saved_rows``), as already with torch's writes.

No ``fastmath``: the kernels' results must not depend on how the compiler reorders sums
(a recovered model replays them bit-identically).

**The cache is keyed by the source of every kernel module** (``KERNEL_MODULES``). numba
checks only the file of the function it loads, but a kernel inlines the kernels and
constants it calls from other modules: after ``combination.py`` changed, the cached
``hybrid_kernels.score`` would still use the old ``DISCOUNT``. So the cache lives in a
folder named by a digest of all of them: ``$NUMBA_CACHE_DIR/<digest>`` where that
variable is set (the container image sets it), else ``tbptt_online/__pycache__/numba/<digest>``.
This module must be imported before any kernel module is (each imports it first); it makes
every numba cache save in the process hold a lock (``cache_lock``: numba/numba#10128).

``inlined`` is ``compiled`` for the small helpers of an inner loop (see its comment);
``prefetch`` asks for a cache line ahead of its use (a kernel's scattered reads).

``readable`` and ``writable`` hand tensors to the kernels as numpy arrays: a contiguous
copy where needed for what a kernel reads, the tensor's own memory (never a copy) for what
it writes.

``over_rows`` runs a kernel over parts of its rows on torch's intra-op threads at once: a
kernel's rows are independent (each reads and writes its own rows, and the store's shared
tables only at its own series' slot), and it lets go of the GIL, so with
``torch.set_num_threads(2)`` a tick of many series runs its kernels on both cores, the
results the same as in one call.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from tbptt_online.cache_lock import lock_cache_writes

KERNEL_MODULES = (
    "compiled",
    "rls",
    "ar_changes",
    "ar_levels",
    "excursions",
    "calibration",
    "combination",
    "after_change",
    "level_widths",
    "expert_kernels",
    "hybrid_kernels",
    "tick_kernels",
    "outliers",
    "probe",
    "scoring",
    "flat_runs",
    "gru_window",
    "gru_rows",
    "young_season",
)
_PACKAGE = Path(__file__).parent


def source_digest(paths: list[Path]) -> str:
    """16 hex digits of the SHA-256 of the files' bytes, in order."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_dir() -> str:
    """Where the kernels' machine code is cached (see the module docstring)."""
    root = os.environ.get("NUMBA_CACHE_DIR") or str(_PACKAGE / "__pycache__" / "numba")
    return os.path.join(root, source_digest([_PACKAGE / f"{name}.py" for name in KERNEL_MODULES]))


numba.config.CACHE_DIR = cache_dir()  # read by each kernel's cache when it is decorated
lock_cache_writes()  # before any kernel is saved: two processes' saves never interleave (cache_lock)


def kernels_cached(folder: str | None = None) -> bool:
    """Whether the kernels' cache (``cache_dir()``, or ``folder``) holds compiled kernels (numba's
    index files, ``*.nbi``): a process then loads them in seconds instead of compiling them for
    about a minute (the service's log says which)."""
    return any(name.endswith(".nbi") for _, _, names in os.walk(folder or cache_dir()) for name in names)


compiled = njit(cache=True, error_model="numpy", nogil=True)
# A kernel's small helper, inlined into its caller (numba IR) so that the compiler optimises across the
# call. Each array it is handed (and each view made) is still reference-counted per call, two atomic
# operations each: as costly as an exp, so a helper is called once per series, not per horizon or element
inlined = njit(cache=True, error_model="numpy", nogil=True, inline="always")


@intrinsic
def prefetch(typingctx, address):
    """Ask the CPU to bring the cache line at ``address`` (an integer: an array's
    ``ctypes.data`` plus a byte offset) into its caches without waiting for it (LLVM's
    ``prefetch``: a read, kept close, data). A kernel that reads a few lines of each row of a
    table far larger than the caches (the past forecasts' ring) asks for the lines of a row
    a few rows ahead while it works on this one, instead of stalling on each load. It reads
    and changes no value (an address outside the array is allowed and ignored)."""
    sig = types.void(types.intp)

    def codegen(context, builder, signature, args):
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]), "llvm.prefetch.p0i8"
        )
        read, close, data = ir.Constant(i32, 0), ir.Constant(i32, 3), ir.Constant(i32, 1)
        builder.call(function, [builder.inttoptr(args[0], i8p), read, close, data])
        return context.get_dummy_value()

    return sig, codegen


# The numpy views of the tensors a tick hands to its kernels again and again (a series' rows:
# the views ``SeriesStore.hybrid_rows`` keeps from tick to tick), by id, with the tensor itself
# (an id is only trusted for that object): ``Tensor.numpy`` costs about a microsecond, and a
# tick of one series converts its rows some fifty times. Replaced whole, never changed.
_KEPT: dict[int, tuple[torch.Tensor, np.ndarray]] = {}


def keep_numpy(tensors: list[torch.Tensor]) -> None:
    """Remember the numpy views of ``tensors`` (contiguous) for ``readable`` and ``writable``,
    in place of those remembered before."""
    global _KEPT
    _KEPT = {id(t): (t, t.numpy()) for t in tensors}


def _numpy(t: torch.Tensor) -> np.ndarray:
    kept = _KEPT.get(id(t))
    return kept[1] if kept is not None and kept[0] is t else t.numpy()


def readable(*tensors: torch.Tensor) -> list[np.ndarray]:
    """Contiguous numpy arrays of ``tensors``, for a kernel to read (a copy where not contiguous)."""
    return [np.ascontiguousarray(_numpy(t)) for t in tensors]


def writable(rows: dict[str, torch.Tensor], names: tuple[str, ...]) -> list[np.ndarray]:
    """numpy views of the rows' tensors ``names`` (no copy: a kernel writes them in place)."""
    arrays = []
    for name in names:
        array = _numpy(rows[name])
        if not array.flags.c_contiguous:  # a view the kernel would write through to the wrong elements
            raise ValueError(f"the rows' {name} is not contiguous: a kernel cannot write it in place")
        arrays.append(array)
    return arrays


@intrinsic
def _float_bits(typingctx, x):
    """The bits of the float64 ``x`` as an int64 (no conversion: the same 64 bits)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _bits_float(typingctx, bits):
    """The float64 whose bits are the int64 ``bits``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


_SHIFTER = 6755399441055744.0  # 1.5 * 2**52: x + it rounds x to an integer, held in the low bits
_SHIFTER_BITS = (1075 << 52) + (1 << 51)  # the bits of _SHIFTER
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 in two parts (fdlibm's): n * _LN2_HI is exact for |n| < 2**20
_LN2_LO = 1.90821492927058770002e-10
EXP_FLOOR = -708.0  # exp(x) below exp(-708) (about 3e-308) is taken as 0
_INVERSE_FACTORIALS = np.array([1.0 / math.factorial(i) for i in range(14)])  # 1 / i!, correctly rounded


@inlined
def exp_weight(x: float) -> float:
    """exp(x) for x <= 0, within 1 ulp; 0 below ``EXP_FLOOR`` (and for -inf): the
    combination's softmax weights (``combination.ewa``). Plain arithmetic, no library call,
    so a loop of them vectorises (about 1.2 ns each on this project's machine, where a
    ``math.exp`` call took 4-6 ns: the combination's exps were a fifth of a tick at 10,000
    series) and gives the same bits on every machine. x = n ln 2 + r, |r| <= ln 2 / 2 (Cody and
    Waite's reduction), exp(r) by its Taylor polynomial to r**13 (the next term is below 5e-18
    relative), times 2**n built from its bits."""
    clipped = max(x, EXP_FLOOR)
    shifted = clipped * _LOG2E + _SHIFTER  # n = round(x / ln 2) in its low bits
    n = shifted - _SHIFTER
    r = (clipped - n * _LN2_HI) - n * _LN2_LO
    p = _INVERSE_FACTORIALS[13]
    for i in range(12, -1, -1):  # Horner: 1/12! ... 1/0!
        p = p * r + _INVERSE_FACTORIALS[i]
    scale = _bits_float((_float_bits(shifted) - _SHIFTER_BITS + 1023) << 52)  # 2**n
    return p * scale if x >= EXP_FLOOR else 0.0


@inlined
def unsigned(i: int) -> np.uint64:
    """An index ``i`` >= 0 as an unsigned integer, for an index the compiler cannot tell is not negative
    (``h * width + e``): numba counts a negative signed index from the end, a compare and a select per
    access, which kept a loop's stores from being one vector store (``combination.ewa``'s logits were
    scattered element by element) and added to every load of ``combination.normalise``'s sums: with both,
    ``hybrid_kernels.base`` took 20.7 ms instead of 24.1 at 10,000 series (session 57)."""
    return np.uint64(i)


@compiled
def within(x: float, bound: float) -> float:
    """``x`` clipped to +-``bound`` (NaN stays NaN)."""
    return min(max(x, -bound), bound)


@compiled
def ring_value(ring: np.ndarray, slot: int, k: int, step: int) -> float:
    """The value at step ``step`` (1-based, clamped to >= 1) of the values ring [C, R, d] at
    row ``slot``, feature ``k``: step s lives at (s - 1) % R (the kernels' one reader of it)."""
    return ring[slot, (max(step, 1) - 1) % ring.shape[1], k]


# A part of fewer rows than this is not worth a thread's hand-off (tens of microseconds): at 10,000
# series each kernel's call takes milliseconds, at 100 a few tens of microseconds
PARALLEL_MIN_ROWS = 1024
# Each thread's share of the rows is cut in this many pieces, taken in turn by whichever thread is
# free: a pool thread starts up to a few milliseconds late and runs slower while torch's own
# threads still spin on its core after an operation (libgomp waits busy for a while), and with one
# half each the calling thread waited for it 4 ms a call at 10,000 series (a tenth of a tick)
PIECES_PER_THREAD = 4
_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (process id, workers, pool)


def row_parts(n_rows: int) -> list[slice]:
    """The rows ``0 .. n_rows`` in contiguous parts: ``PIECES_PER_THREAD`` for each of the
    ``row_threads`` that run them, at most one a row; one part, ``slice(None)``, where a single
    thread does.

    >>> import torch
    >>> before = torch.get_num_threads(); torch.set_num_threads(2)
    >>> row_parts(10_000)[:3], len(row_parts(10_000)), row_parts(1_500)
    ([slice(0, 1250, None), slice(1250, 2500, None), slice(2500, 3750, None)], 8, [slice(None, None, None)])
    >>> torch.set_num_threads(before)
    """
    threads = row_threads(n_rows)
    if threads <= 1:
        return [slice(None)]
    parts = min(n_rows, threads * PIECES_PER_THREAD)
    cuts = [n_rows * i // parts for i in range(parts + 1)]
    return [slice(lo, hi) for lo, hi in itertools.pairwise(cuts)]


def row_threads(n_rows: int) -> int:
    """How many threads run a kernel over ``n_rows`` rows: torch's intra-op threads (for the
    calling thread), as many as get ``PARALLEL_MIN_ROWS`` rows each, at least one."""
    return max(1, min(torch.get_num_threads(), n_rows // PARALLEL_MIN_ROWS))


def over_rows(n_rows: int, call: Callable[[slice], None]) -> None:
    """``call(rows)`` for each part of ``row_parts(n_rows)``, taken in turn by this thread and
    ``row_threads(n_rows) - 1`` threads of the process's pool; returns when all are done, then
    raises the error of the first part (in row order) that raised, if any: every part runs all
    the same. An interruption (``KeyboardInterrupt``, ``SystemExit``) is not held: this thread
    takes no more parts and raises it once the pool's threads are done. ``call`` hands a kernel
    its row-wise arrays sliced by ``rows`` (numpy views, no copies) and the shared ones whole;
    rows are independent, so which thread runs a part changes no result."""
    parts = row_parts(n_rows)
    if len(parts) == 1:
        call(parts[0])
        return
    threads = row_threads(n_rows)  # (row_parts gave each of them PIECES_PER_THREAD parts)
    taken = itertools.count()  # the next part: next() on it is atomic (the GIL)
    errors: dict[int, Exception] = {}

    def work() -> None:
        while (i := next(taken)) < len(parts):
            try:
                call(parts[i])
            except Exception as raised:  # kept: raised once every part has run
                errors[i] = raised

    futures: list[Future[None]] = []
    try:  # (an interruption while the parts are handed out, too: the parts handed out are waited for)
        futures += [_pool(threads - 1).submit(work) for _ in range(threads - 1)]
        work()
    finally:  # (an interruption of this thread's part: raised after the pool's parts)
        interrupted = _outcomes(futures)
    for raised in interrupted:
        if raised is not None:
            raise raised
    if errors:
        raise errors[min(errors)]


def _outcomes(futures: list[Future[None]]) -> list[BaseException | None]:
    """Each future's exception (None: it ran to the end), once every one is done. An interruption
    of this thread while it waits (``KeyboardInterrupt``: the wait can be interrupted) is held until
    then and raised: raised at once, it reached the caller while a pool thread still wrote the
    arrays of its part (a hostile test: up to 9.7 ms after the caller caught it)."""
    held: BaseException | None = None
    outcomes = []
    for future in futures:
        while True:
            try:
                outcomes.append(future.exception())
                break
            except BaseException as interruption:  # held, raised below once all are done
                held = held or interruption
    if held is not None:
        raise held
    return outcomes


_POOL_LOCK = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's pool, with at least ``workers`` threads. Shared by every thread that
    runs kernels (a service's model workers, its forecasts), so it is only ever replaced by a
    larger one, under a lock, and never shut down: a caller may still hold the one before
    (its idle threads end when it is collected). A forked child has none of its parent's
    threads: it makes its own."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] < workers:
            _POOL = (os.getpid(), workers, ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tbptt-kernels"))
        return _POOL[2]
