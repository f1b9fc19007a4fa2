"""EventLog: the write-ahead log of what the service accepted, on SQLite in WAL mode.

Every accepted change of a model (a created model, a merged batch of observations,
a deleted series, ...) is appended here *before* it is applied and acknowledged;
recovery applies the records after the newest valid checkpoint. One table::

    events(seq INTEGER PRIMARY KEY AUTOINCREMENT, model TEXT, kind TEXT, payload BLOB, created_at REAL)

``seq`` is assigned in commit order, starts at 1, never goes back and is never reused
(AUTOINCREMENT keeps the high-water mark in ``sqlite_sequence`` even after ``prune``);
a failed append rolls back, so the sequence has no gaps. ``payload`` is any value
orjson encodes (dicts, lists, str, numbers, None); it comes back decoded, with tuples
as lists. orjson writes NaN and ±inf as null: validate numbers before appending.

How hard it syncs (``sync``):

- ``"batch"``: a record whose ``append`` returned survives a process crash (``kill -9``)
  *and* an OS crash or power loss (as far as the disk honours fsync). Each commit
  writes the WAL into the OS page cache (``PRAGMA synchronous=NORMAL``), then the
  :class:`~tbptt_service.storage.wal_sync.WalSyncer` thread fsyncs the WAL; ``append`` waits for it.
  ``write`` + ``durable`` split the two, so the caller can work while the fsync runs
  (one fsync serves every record waiting: group commit). Cost: about one fsync per
  append (per merged batch, not per observation). An fsync that fails fails this
  record's ``durable`` and every later ``write`` (see ``WalSyncer``).
- ``"interval"``: ``PRAGMA synchronous=NORMAL``. A commit writes the WAL into the OS
  page cache without fsync; a background thread fsyncs the WAL every
  ``sync_interval_ms`` when something was appended. A record whose append returned
  survives a process crash (the kernel holds the write); an OS crash or power loss
  may lose the records appended in the last ``sync_interval_ms`` (never a record
  before the last completed sync, and never the log's consistency: WAL frames are
  checksummed and a torn tail is ignored on open).

In both modes a crash in the middle of an append (a torn WAL frame) leaves the
committed prefix intact: SQLite ignores WAL frames after the last valid commit frame.

A full disk, or the optional ``max_bytes`` cap on the log's size, raises
:class:`tbptt_service.errors.StorageFullError` (an ``OSError`` with ``errno.ENOSPC``) from
``append`` and leaves the log valid without that record. So do a disk quota and a file size limit
(``EDQUOT``, ``EFBIG``: SQLite's "disk I/O error", its cause found by
:mod:`~tbptt_service.storage.write_failure`); another I/O error (``EIO``) raises
:class:`tbptt_service.errors.LogUnavailable` naming it. Either way the WAL is then checkpointed into the
database and truncated, so that the log takes writes again once the cause clears (a prune of a full log
writes the WAL too), and ``write_failure`` holds the error until a write succeeds.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d, EventLog(pathlib.Path(d) / "events.db") as log:
...     log.append("default", "observe", {"items": [["a", 1.5], ["b", None]]})
...     log.append("default", "forget_series", {"series": "b"})
...     [(r.seq, r.kind, r.payload) for r in log.records(after_seq=0)]
1
2
[(1, 'observe', {'items': [['a', 1.5], ['b', None]]}), (2, 'forget_series', {'series': 'b'})]
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from tbptt_service.errors import LogUnavailable, StorageFullError
from tbptt_service.storage.wal_sync import WalSyncer
from tbptt_service.storage.write_failure import OUT_OF_SPACE, cause, described

SYNC_MODES = ("batch", "interval")
_SQLITE_FULL = 13  # primary result code; extended codes keep it in the low byte
_SQLITE_IOERR = 10  # "disk I/O error": a write that failed with another errno than ENOSPC (EDQUOT, EFBIG, EIO, ...)
_FRAME_HEADER = 24  # bytes before each page in the WAL
_WAL_HEADER = 32  # bytes before the WAL's first frame
_OVERFLOW_POINTER = 4  # bytes of each overflow page that point to the next, not the record's
_ROW_SLACK = 1024  # a row's bytes besides its payload: model and kind names, created_at, the cell's header
_PAGES_TOUCHED = 6  # an append's pages besides the record's: the table's leaf, a split's new leaf and parent,
# the parent's own split, sqlite_sequence's page, the database header's page (it holds the page count)
CAP_SPARE_BYTES = 64 * 1024 * 1024  # a SQLITE_FULL with a cap set and more free disk than this: the cap is full
_PAGE_ROWS = 1000  # records read per query while iterating (the lock is released between pages)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
)
"""

log = logging.getLogger(__name__)


class LogRecord(NamedTuple):
    seq: int
    model: str
    kind: str
    payload: Any
    created_at: float  # unix time of the append


class UnreadablePayload:
    """The payload of a record whose bytes are not JSON (a damaged log). Reading any of its fields
    raises, naming the record, so applying it fails like any record that cannot apply, and recovery
    quarantines its model alone; iterating the log goes on past it.

    >>> payload = decode_payload(7, b"\\x00{")
    >>> payload["items"]  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the payload of log record seq 7 is not valid JSON (...)
    >>> payload.get("keys", ())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: the payload of log record seq 7 is not valid JSON (...)
    """

    def __init__(self, seq: int, reason: str) -> None:
        self.seq, self.reason = seq, reason

    def __getitem__(self, key: Any) -> Any:
        raise ValueError(f"the payload of log record seq {self.seq} is not valid JSON ({self.reason})")

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key]  # a field read the dict way (the journaled keys) raises the same

    def __repr__(self) -> str:
        return f"UnreadablePayload(seq={self.seq}, reason={self.reason!r})"


def decode_payload(seq: int, raw: bytes) -> Any:
    """A record's stored bytes, decoded; an :class:`UnreadablePayload` when they are not JSON."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        log.error("log record seq %d cannot be decoded: %s", seq, error)
        return UnreadablePayload(seq, str(error))


def wal_bytes(record_bytes: int, page_size: int) -> int:
    """At least the bytes an append of a payload of ``record_bytes`` adds to the WAL: a frame (the page and its
    header) for each page of the record's row, each holding ``page_size - 4`` bytes of it, and for each other
    page the append touches (``_PAGES_TOUCHED``), and the WAL's header. The size of the write probe that finds
    why a write failed (``write_failure.cause``): a smaller probe fits in what a disk quota leaves when the
    append did not (a payload of 1 MB wrote 1,017,672 bytes to the WAL, the record and 4 pages 1,016,480:
    a quota with room between them answered 503, ``no cause found``, until session 60)."""
    record_pages = -(-(record_bytes + _ROW_SLACK) // (page_size - _OVERFLOW_POINTER))
    return _WAL_HEADER + (record_pages + _PAGES_TOUCHED) * (page_size + _FRAME_HEADER)


def _is_full(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error is SQLITE_FULL (disk full or max_page_count reached)."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_FULL


def _is_io_error(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error is SQLITE_IOERR (any extended code): the errno behind it is not given."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_IOERR


def _translate(exc: sqlite3.Error, path: Path, capped: int | None = None, hopeless: int | None = None) -> Exception:
    """SQLITE_FULL (disk full or max_page_count reached) -> StorageFullError; others unchanged.
    ``capped``: the cap in bytes when it, not the disk, is what is full (the message names it: a
    new user read "disk is full" with a free disk and looked for space; session 36). ``hopeless``: the
    size of a record that no prune can make room for (the message says so: a hostile test's was told to
    wait for a checkpoint, session 50)."""
    if _is_full(exc):
        if capped is not None and hopeless is not None:
            return StorageFullError(
                errno.ENOSPC,
                f"event log {path} cannot hold this record of {hopeless} bytes even empty: it is larger than its "
                f"cap of {capped} bytes (TBPTT_LOG_MAX_BYTES) allows; raise the cap, or send it in smaller requests",
            )
        if capped is not None:
            why = f"it reached its cap of {capped} bytes (TBPTT_LOG_MAX_BYTES) until a checkpoint prunes it"
            return StorageFullError(errno.ENOSPC, f"event log {path} is full: {why}")
        return StorageFullError(errno.ENOSPC, f"event log {path} is full: {exc}")
    return exc


class EventLog:
    """A thread-safe, append-only log of ``(seq, model, kind, payload)`` records.

    ``sync`` is ``"batch"`` or ``"interval"`` (see the module docstring for what each
    survives); ``sync_interval_ms`` is the fsync period of ``"interval"``; ``max_bytes``
    caps the database's size (appends beyond it raise ``StorageFullError``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        sync: str = "batch",
        sync_interval_ms: int = 100,
        max_bytes: int | None = None,
    ) -> None:
        if sync not in SYNC_MODES:
            raise ValueError(f"sync={sync!r} is invalid: must be one of {', '.join(SYNC_MODES)}")
        if isinstance(sync_interval_ms, bool) or not isinstance(sync_interval_ms, int) or sync_interval_ms < 1:
            raise ValueError(f"sync_interval_ms={sync_interval_ms!r} is invalid: must be an integer >= 1")
        if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1):
            raise ValueError(f"max_bytes={max_bytes!r} is invalid: must be a positive integer or None")
        self.path = Path(path)
        self.sync_mode = sync
        self._lock = threading.Lock()
        self._dirty = False  # appended since the last fsync (interval mode)
        self._sync_error: OSError | None = None  # a failed background fsync, raised by the next append
        self._closed = False
        self._max_bytes = max_bytes
        self._full = False  # an append failed for want of space, and no prune has run since
        self.write_failure: OSError | None = None  # why the last write failed (507/503), until one succeeds
        # One connection shared under self._lock: SQLite has a single writer anyway, and
        # autocommit (isolation_level=None) makes each INSERT its own transaction.
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise OSError(errno.EINVAL, f"event log {self.path}: journal_mode=WAL refused (got {mode!r})")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # batch mode: WalSyncer fsyncs each commit
            self._page_size = int(self._conn.execute("PRAGMA page_size").fetchone()[0])
            if max_bytes is not None:
                self._conn.execute(f"PRAGMA max_page_count={max(1, max_bytes // self._page_size)}")
            self._conn.execute(_SCHEMA)
        except sqlite3.Error as exc:
            self._conn.close()
            raise _translate(exc, self.path) from exc
        except BaseException:
            self._conn.close()
            raise
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self._fsyncs = WalSyncer(Path(f"{self.path}-wal")) if sync == "batch" else None
        if sync == "interval":
            self._syncer = threading.Thread(
                target=self._sync_periodically, args=(sync_interval_ms / 1000.0,), name="event-log-sync", daemon=True
            )
            self._syncer.start()

    # -- writing ------------------------------------------------------------------
    def append(self, model: str, kind: str, payload: Any) -> int:
        """Append one record and return its seq, durable per ``sync`` when this returns.

        Raises ``StorageFullError`` when the disk or ``max_bytes`` is full (the record
        is then absent), ``TypeError`` for a payload orjson cannot encode.
        """
        seq = self.write(model, kind, payload)
        if self._fsyncs is not None:
            self._fsyncs.sync_here()  # nothing to overlap: no hand-over to the fsync thread
        return seq

    def write(self, model: str, kind: str, payload: Any) -> int:
        """``append`` without waiting for the fsync: the record survives a process crash when
        this returns, a power loss (batch mode) once ``durable(seq)`` is done."""
        for field, value in (("model", model), ("kind", kind)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field}={value!r} is invalid: must be a non-empty string")
        data = orjson.dumps(payload)
        with self._lock:
            self._check_open()
            if self._fsyncs is not None and self._fsyncs.failure is not None:
                raise self._fsyncs.failure
            if self._sync_error is not None:
                error, self._sync_error = self._sync_error, None
                raise error
            row = (model, kind, data, time.time())
            try:
                cursor = self._conn.execute(
                    "INSERT INTO events (model, kind, payload, created_at) VALUES (?, ?, ?, ?)", row
                )
            except sqlite3.Error as exc:
                if self._conn.in_transaction:  # SQLite usually rolled back already; make sure
                    self._conn.rollback()
                capped = self._cap_reached() if _is_full(exc) else None
                # a record no prune can make room for leaves the log not full: a full one is pruned through the
                # newest checkpoint, the older ones given up (reviews, sessions 50 and 51: no share of the cap
                # tells, an empty log holds 12.7 % less than a cap of 64 KiB and 0.9 % less than one of 1 MiB)
                hopeless = capped is not None and (self._empty() or not self._fits_empty(row))
                error = self._failed_write(exc, len(data), capped, len(data) if hopeless else None)
                self._full = self._full or (isinstance(error, StorageFullError) and not hopeless)
                raise error from exc
            self._dirty = True
            self._full = False  # it took a record: not full now (a prune that deleted nothing left it set)
            self.write_failure = None
            return int(cursor.lastrowid)

    def durable(self, seq: int) -> Future[None]:
        """Done once the record ``seq`` (written before this call) is as durable as ``sync``
        promises: batch mode, after an fsync of the WAL; interval mode, at once (its promise
        is the process crash, which ``write`` already keeps). Raises the fsync's error."""
        if self._fsyncs is None:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._fsyncs.request()

    def prune(self, through_seq: int) -> int:
        """Delete every record with ``seq <= through_seq``; return how many went.

        Call it with ``CheckpointStore.oldest_kept_seq()``: the records after the
        oldest kept checkpoint stay, so recovery can still start from any kept checkpoint.
        """
        with self._lock:
            self._check_open()
            try:
                deleted = self._conn.execute("DELETE FROM events WHERE seq <= ?", (int(through_seq),)).rowcount
                self._full = self._full and deleted == 0
                return deleted
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.rollback()
                raise self._failed_write(exc, 0) from exc

    def _failed_write(
        self, exc: sqlite3.Error, record_bytes: int, capped: int | None = None, hopeless: int | None = None
    ) -> Exception:
        """Caller holds the lock. The error a write that SQLite refused with ``exc`` raises: ``StorageFullError``
        for want of space (SQLITE_FULL, or an I/O error whose cause is ENOSPC, EDQUOT or EFBIG), ``LogUnavailable``
        for another I/O error, naming its cause; SQLite's other errors as they came. After the first two the WAL
        is checkpointed to make room (``_checkpoint_wal``) and the error kept in ``write_failure``."""
        if _is_io_error(exc):
            need = wal_bytes(record_bytes, self._page_size)  # what the append wrote to the WAL, at most
            found = cause([Path(f"{self.path}-wal"), self.path], need)
            if found is not None and found.errno in OUT_OF_SPACE:
                again = "it takes writes again once space is freed or the limit is raised"
                why = f"{described(found)} (SQLite: {exc}); {again}"
                error: Exception = StorageFullError(found.errno, f"event log {self.path} is full: {why}")
            else:
                why = described(found) if found is not None else "no cause found (its directory takes writes)"
                error = LogUnavailable(errno.EIO, f"event log {self.path} cannot be written: {why} (SQLite: {exc})")
        else:
            error = _translate(exc, self.path, capped, hopeless)
        if isinstance(error, (StorageFullError, LogUnavailable)):
            self.write_failure = error
            self._checkpoint_wal()
        return error

    def _checkpoint_wal(self) -> None:
        """Caller holds the lock, after a write refused for want of space or by an I/O error: copy the WAL into the
        database and truncate it. SQLite checkpoints on its own only after a commit that leaves the WAL over 1,000
        pages (about 4 MB); a WAL that could not grow took no commit, so no checkpoint ran, and a prune, which
        writes the WAL too, failed as well: with a file size limit below 4 MB the WAL stayed at the limit and the
        log never took a write again (an operator's test, session 58). Its failure (a full disk, the database at the
        limit) is logged; the next refused write tries again."""
        try:
            busy, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            log.warning("event log %s: the WAL could not be checkpointed to make room: %s", self.path, exc)
            return
        if busy:
            log.warning("event log %s: the WAL was checkpointed in part (%d of %d frames)", self.path, copied, frames)

    @property
    def full(self) -> bool:
        """An append failed for want of space (the disk, or ``max_bytes``) and no prune has deleted
        a record since: the checkpointer then prunes through its newest checkpoint, not the oldest
        kept, or the log stays full (``Checkpointer.checkpoint``)."""
        return self._full

    def _empty(self) -> bool:
        """Whether the log holds no record (every one pruned, or none written): a record refused then is one
        that no prune can make room for."""
        return self._conn.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None

    def _fits_empty(self, row: tuple[str, str, bytes, float]) -> bool:
        """Whether the record ``row`` fits this log emptied: written, at the seq it would have had, to a blank
        database in memory of the same schema, page size and page cap (what the log's own fixed pages and a
        record's overflow pages take, to the byte)."""
        last = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        page_size, pages = (
            self._conn.execute(f"PRAGMA {name}").fetchone()[0] for name in ("page_size", "max_page_count")
        )
        blank = sqlite3.connect(":memory:", isolation_level=None)
        try:
            blank.execute(f"PRAGMA page_size={page_size}")
            blank.execute(f"PRAGMA max_page_count={pages}")
            blank.execute(_SCHEMA)
            seq = (last[0] if last else 0) + 1  # (its size, a varint, is the record's)
            blank.execute(
                "INSERT INTO events (seq, model, kind, payload, created_at) VALUES (?, ?, ?, ?, ?)", (seq, *row)
            )
        except sqlite3.Error:
            return False
        finally:
            blank.close()
        return True

    def _cap_reached(self) -> int | None:
        """``max_bytes`` when the cap, not the disk, is what is full: a cap is set and the disk has
        room to spare (more than ``CAP_SPARE_BYTES``); else None. (The page count cannot tell: SQLite
        has rolled back by then, and a record of several KB left the database pages short of the cap;
        the review of session 36.)"""
        if self._max_bytes is None:
            return None
        try:
            free = shutil.disk_usage(self.path.parent).free
        except OSError:
            return None
        return self._max_bytes if free > CAP_SPARE_BYTES else None

    def sync(self) -> None:
        """Fsync the WAL now (interval mode: what the background thread does; batch mode: what
        each append already waited for)."""
        with self._lock:
            self._check_open()
            self._fsync_wal()

    def close(self) -> None:
        """Stop the sync thread, fsync what is pending, close the database. Idempotent."""
        if self._syncer is not None:
            self._stop.set()
            self._syncer.join()
        if self._fsyncs is not None:
            self._fsyncs.close()  # the fsyncs already asked for are done first
        with self._lock:
            if self._closed:
                return
            try:
                self._fsync_wal()
            finally:
                self._closed = True
                self._conn.close()  # the last connection checkpoints the WAL into the database

    # -- reading ------------------------------------------------------------------
    def records(self, after_seq: int = 0) -> Iterator[LogRecord]:
        """The records with ``seq > after_seq`` in seq order (read page by page)."""
        last = int(after_seq)
        while True:
            with self._lock:
                self._check_open()
                rows = self._conn.execute(
                    "SELECT seq, model, kind, payload, created_at FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                    (last, _PAGE_ROWS),
                ).fetchall()
            for seq, model, kind, payload, created_at in rows:
                yield LogRecord(seq, model, kind, decode_payload(seq, payload), created_at)
            if len(rows) < _PAGE_ROWS:
                return
            last = rows[-1][0]

    def last_seq(self) -> int:
        """The highest seq ever appended (0 for a new log), also after ``prune``."""
        with self._lock:
            self._check_open()
            row = self._conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return 0 if row is None else int(row[0])

    # -- internals ------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"event log {self.path} is closed")

    def _fsync_wal(self) -> None:
        """Caller holds the lock. The WAL is the only file with unsynced commits in NORMAL
        mode: SQLite syncs the database itself around every checkpoint."""
        if not self._dirty:
            return
        try:
            fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        except FileNotFoundError:  # nothing written since the WAL was last checkpointed away
            self._dirty = False
            return
        try:
            os.fsync(fd)
        except OSError as exc:
            if exc.errno in OUT_OF_SPACE:
                raise StorageFullError(errno.ENOSPC, f"event log {self.path}: fsync failed: {exc}") from exc
            raise
        finally:
            os.close(fd)
        self._dirty = False

    def _sync_periodically(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            with self._lock:
                if self._closed:
                    return
                try:
                    self._fsync_wal()
                except OSError as exc:  # kept, and raised by the next append: it must not go unseen
                    log.error("event log %s: background fsync failed: %s", self.path, exc)
                    self._sync_error = exc

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
