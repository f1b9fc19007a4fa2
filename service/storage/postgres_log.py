"""PostgresLog: the write-ahead log as one *stream* of records in PostgreSQL, with epoch fencing.

The same contract as :class:`~tbptt_service.storage.event_log.EventLog` (see
:mod:`tbptt_service.storage.log_store`), for a cluster: every node reaches the database, and several
writers (one per shard) share it, each on its own stream with its own seq. Two tables::

    log_streams(stream TEXT PRIMARY KEY, epoch BIGINT, last_seq BIGINT)
    log_events(stream TEXT, seq BIGINT, epoch BIGINT, model TEXT, kind TEXT, payload BYTEA,
               created_at DOUBLE PRECISION, PRIMARY KEY (stream, seq))

**Epochs.** Opening a ``PostgresLog`` takes the stream's next epoch (``epoch + 1``, committed at
once): from then on an append or a prune carrying an older epoch changes nothing and raises
:class:`~tbptt_service.storage.log_store.FencedWriter`. Each append is one statement that bumps
``last_seq`` *only where the stream's epoch is still the writer's* and inserts the record with
that seq; the row lock it takes makes a takeover wait for an append in flight, so once a new
incarnation holds its epoch, no older writer (a zombie after a partition, a process Ray thought
dead) can add a record after it. Seqs have no gaps: a failed statement rolls back whole.

**Durability.** Each append commits before it returns, at the server's ``synchronous_commit``
(on by default: the commit record is flushed to the server's WAL), so ``durable(seq)`` is done
at once. A connection that fails during an append leaves it unknown whether the record
committed: the log then refuses every later append (``OSError``), so the writer's state can
never run ahead of or behind its log; a restart recovers what the log holds.
A server whose disk is full answers the append with SQLSTATE ``53100`` (``disk_full``): the statement
rolled back, nothing committed, and the connection is fine, so that append alone raises
:class:`~tbptt_service.errors.StorageFullError` (507), kept in ``write_failure`` until an append is taken,
and the log takes appends again once the server has room.

**Timeouts.** Every statement has ``timeout_s`` (5 s by default): the server cancels one that runs
longer (``statement_timeout``, a lock wait say), and the client cuts the connection of one that
has no answer by then, give or take a quarter of it
(:class:`~tbptt_service.storage.statement_deadline.StatementDeadline`: a
partitioned connection or a frozen server, where TCP would wait minutes); an append cut that way
is treated as a lost connection (unknown whether it committed). TCP keepalives and
``tcp_user_timeout`` find a dead peer of an idle connection within about the same time, and
connecting gives up after ``connect_timeout_s``.

Payloads are stored as orjson bytes, exactly as the SQLite log stores them, so a recovery
reads the same values from either.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import orjson
import psycopg

from tbptt_service.errors import LogUnavailable, StorageFullError
from tbptt_service.storage.event_log import LogRecord, decode_payload
from tbptt_service.storage.log_store import FencedWriter
from tbptt_service.storage.statement_deadline import StatementDeadline

_PAGE_ROWS = 1000
_SCHEMA_LOCK = 7_364_021  # pg_advisory_xact_lock key: shards starting together create the tables once
_FRONT_LOCK = 7_364_022  # pg_advisory_lock key: fronts starting together create the shards one at a time
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS log_streams (
        stream TEXT PRIMARY KEY,
        epoch BIGINT NOT NULL,
        last_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS log_events (
        stream TEXT NOT NULL,
        seq BIGINT NOT NULL,
        epoch BIGINT NOT NULL,
        model TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload BYTEA NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (stream, seq)
    )""",
)
_TAKE_EPOCH = """
    INSERT INTO log_streams (stream, epoch, last_seq) VALUES (%s, 1, 0)
    ON CONFLICT (stream) DO UPDATE SET epoch = log_streams.epoch + 1
    RETURNING epoch
"""
# One statement, so one transaction: the seq is taken and the record written only where this
# writer's epoch is still the stream's; nothing is written (no seq used) otherwise.
_APPEND = """
    WITH next AS (
        UPDATE log_streams SET last_seq = last_seq + 1
        WHERE stream = %(stream)s AND epoch = %(epoch)s
        RETURNING last_seq
    )
    INSERT INTO log_events (stream, seq, epoch, model, kind, payload, created_at)
    SELECT %(stream)s, last_seq, %(epoch)s, %(model)s, %(kind)s, %(payload)s, %(created_at)s FROM next
    RETURNING seq
"""
_PRUNE = """
    DELETE FROM log_events
    WHERE stream = %(stream)s AND seq <= %(through)s
      AND EXISTS (SELECT 1 FROM log_streams WHERE stream = %(stream)s AND epoch = %(epoch)s)
"""


def connection_options(timeout_s: float) -> dict[str, Any]:
    """libpq options that bound every wait of a connection by about ``timeout_s``: the server's
    ``statement_timeout``, and TCP keepalives plus ``tcp_user_timeout`` for a peer that is gone.

    >>> connection_options(5.0)["options"], connection_options(5.0)["tcp_user_timeout"]
    ('-c statement_timeout=5000', 5000)
    """
    ms = max(1, round(timeout_s * 1000))
    return {
        "options": f"-c statement_timeout={ms}",
        "keepalives": 1,
        "keepalives_idle": max(1, round(timeout_s / 2)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": ms,
    }


def display_url(url: str) -> str:
    """``url`` without its password, for messages and logs.

    >>> display_url("postgresql://tbptt:secret@db:5432/tbptt")
    'postgresql://tbptt@db:5432/tbptt'
    >>> display_url("postgresql://db/tbptt?user=tbptt&password=secret&sslmode=require")  # (libpq's other form)
    'postgresql://db/tbptt?user=tbptt&sslmode=require'
    """
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.rsplit("@", 1)[1]
        user = f"{parts.username}@" if parts.username else ""
        parts = parts._replace(netloc=f"{user}{netloc}")
    # a password given as a parameter (libpq reads ?password=...; an operator's hostile test, session 58: it was
    # in a 500's body and the server log)
    query = parse_qsl(parts.query, keep_blank_values=True)
    kept = [(key, value) for key, value in query if key not in SECRET_KEYS]
    if len(kept) != len(query):
        parts = parts._replace(query=urlencode(kept))
    return parts.geturl()


def stream_name(url: str, stream: str) -> str:
    """A log stream as messages name it: its database (no password) and the stream."""
    return f"{display_url(url)} (stream {stream!r})"


SECRET_KEYS = ("password", "sslpassword")  # libpq's connection parameters that hold a secret


def unreachable(url: str, timeout_s: float = 2.0) -> str | None:
    """Why the database at ``url`` cannot be reached now, or None when it answers a query."""
    deadline = StatementDeadline(timeout_s)
    try:
        options = connection_options(timeout_s)
        with (
            psycopg.connect(url, autocommit=True, connect_timeout=max(1, round(timeout_s)), **options) as conn,
            deadline.guarding(conn),
        ):
            conn.execute("SELECT 1")
    except psycopg.Error as error:
        return f"{display_url(url)}: {str(error).strip()}"
    finally:
        deadline.close()
    return None


def read_stream(url: str, stream: str, after_seq: int = 0) -> list[LogRecord]:
    """The records of ``stream`` after ``after_seq``, read without taking an epoch (a reader never
    fences the writer, as opening a :class:`PostgresLog` would)."""
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('log_events') IS NOT NULL").fetchone()[0]
        rows = (
            conn.execute(
                "SELECT seq, model, kind, payload, created_at FROM log_events WHERE stream = %s AND seq > %s "
                "ORDER BY seq",
                (stream, int(after_seq)),
            ).fetchall()
            if exists
            else []
        )
    return [
        LogRecord(int(seq), model, kind, decode_payload(int(seq), payload), at)
        for seq, model, kind, payload, at in rows
    ]


_SHARD_COUNT = (
    "CREATE TABLE IF NOT EXISTS cluster_shards (one INT PRIMARY KEY CHECK (one = 1), shards INT NOT NULL)",
    "INSERT INTO cluster_shards (one, shards) VALUES (1, %s) ON CONFLICT (one) DO NOTHING",
    "SELECT shards FROM cluster_shards WHERE one = 1",
)


def claim_shard_count(url: str, shards: int) -> int:
    """The cluster's shard count, recorded in the database at ``url`` by the first front to start
    (``shards`` when none is recorded yet): a model belongs to shard ``sha256(name) mod N``, so
    a front with another N finds models on the wrong shards and creates a second model under a
    name that exists (a hostile test, session 36: ``--shards 3`` joined a cluster of 2 and
    listed a model twice). Nothing moves models between shard counts; the caller refuses to
    start on a mismatch."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        conn.execute(_SHARD_COUNT[0])
        recorded = _shard_count_in(conn)
        conn.execute(_SHARD_COUNT[1], (int(shards) if recorded is None else recorded,))  # (none when one is)
        return int(conn.execute(_SHARD_COUNT[2]).fetchone()[0])


def recorded_shard_count(url: str) -> int | None:
    """The cluster's shard count as :func:`claim_shard_count` finds it, read without writing anything (None where
    none is recorded and no shard stream exists): a front refused for its shard count or its settings leaves the
    database as it was. Until session 59 the claim came first, so a front refused for a new ``--log`` had
    created ``cluster_shards`` there and fixed that database's shard count (the review of session 58)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        return _shard_count_in(conn)


class StartWaitExpired(RuntimeError):
    """Another front held the cluster's start (:func:`one_front_starting`) longer than this one would wait."""


@contextmanager
def one_front_starting(url: str, on_wait: Callable[[], None] = lambda: None, wait_s: float = 600.0) -> Iterator[None]:
    """Held by a cluster front while it compares its settings with the running shards', claims the shard count
    and creates the shards missing, so that of fronts starting at once with different settings the first creates
    every shard and the others then find them, with its settings, and are refused before creating any. Without it
    two fronts could each find no shard running, each create some of them (``get_if_exists``: the first of each
    name wins), and leave a cluster whose shards hold two sets of settings, each front refused (the review of
    session 60). A session-level advisory lock in the database at ``url``: a front that dies lets go of it.
    ``on_wait()`` is called before waiting where another front holds it (its start may take minutes: the
    shards' recoveries); after ``wait_s`` seconds of waiting :class:`StartWaitExpired` is raised (until session 61
    the wait had no end: a front stuck in its start, its actors never placed say, held every other front)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (_FRONT_LOCK,)).fetchone()[0]:
            on_wait()
            # lock_timeout bounds an advisory lock's wait as any other lock's (55P03 past it), this session only
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (f"{max(1, round(wait_s * 1000))}ms",))
            try:
                conn.execute("SELECT pg_advisory_lock(%s)", (_FRONT_LOCK,))
            except psycopg.errors.LockNotAvailable:
                raise StartWaitExpired(f"another front has been starting the cluster for over {wait_s:g} s") from None
        yield  # (let go when the connection closes)


def _shard_count_in(conn: psycopg.Connection[Any]) -> int | None:
    """The count recorded in ``cluster_shards``; else, a cluster started before the record existed has left its
    streams shard-0 .. shard-(N-1) (every owner opens its own), and their count is the cluster's (the review of
    session 36: a mistyped first front after an upgrade would have locked in its count); else None."""
    if conn.execute("SELECT to_regclass('cluster_shards') IS NOT NULL").fetchone()[0]:
        recorded = conn.execute(_SHARD_COUNT[2]).fetchone()
        if recorded is not None:
            return int(recorded[0])
    found = conn.execute("SELECT to_regclass('log_streams') IS NOT NULL").fetchone()[0]
    names = [row[0] for row in conn.execute("SELECT stream FROM log_streams")] if found else []
    indices = [int(name[6:]) for name in names if name.startswith("shard-") and name[6:].isdigit()]
    return max(indices) + 1 if indices else None


class PostgresLog:
    """The log stream ``stream`` in the database at ``url`` (a libpq URL or DSN), opened as a new
    writer epoch. Thread-safe (one connection, used under a lock). Each statement has ``timeout_s``
    to answer (see "Timeouts" above)."""

    def __init__(
        self, url: str, stream: str = "default", connect_timeout_s: float = 10.0, timeout_s: float = 5.0
    ) -> None:
        if not isinstance(stream, str) or not stream:
            raise ValueError(f"stream={stream!r} is invalid: must be a non-empty string")
        self.url = url
        self.stream = stream
        self.path = stream_name(url, stream)
        self._lock = threading.Lock()
        self._broken: LogUnavailable | None = None
        self.write_failure: StorageFullError | None = None  # an append refused for a full disk, until one is taken
        self._superseded: FencedWriter | None = None
        self._closed = False
        self._deadline = StatementDeadline(timeout_s)  # ValueError unless timeout_s > 0; a watchdog thread
        try:
            self._conn = psycopg.connect(
                url,
                autocommit=True,
                connect_timeout=max(1, round(connect_timeout_s)),
                application_name=f"tbptt-online {stream}"[:63],  # who holds which stream, in pg_stat_activity
                **connection_options(timeout_s),
            )
        except BaseException:
            self._deadline.close()
            raise
        try:
            with self._deadline.guarding(self._conn), self._conn.transaction():
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    self._conn.execute(statement)
            with self._deadline.guarding(self._conn):  # waits for an older writer's append in flight
                self.epoch: int = self._conn.execute(_TAKE_EPOCH, (stream,)).fetchone()[0]
        except BaseException:
            self._conn.close()
            self._deadline.close()
            raise

    # -- writing ------------------------------------------------------------------
    def append(self, model: str, kind: str, payload: Any) -> int:
        """Append one record and return its seq; committed (durable) when this returns.

        Raises ``FencedWriter`` when a newer epoch owns the stream (nothing written),
        ``LogUnavailable`` (an ``OSError``) when the database could not be reached (whether it
        committed is then unknown, and every later append raises too).
        """
        for field, value in (("model", model), ("kind", kind)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{field}={value!r} is invalid: must be a non-empty string")
        data = orjson.dumps(payload)
        with self._lock:
            self._check_writable()
            params = {
                "stream": self.stream,
                "epoch": self.epoch,
                "model": model,
                "kind": kind,
                "payload": data,
                "created_at": time.time(),
            }
            try:
                with self._deadline.guarding(self._conn):
                    row = self._conn.execute(_APPEND, params).fetchone()
            except psycopg.errors.DiskFull as exc:  # 53100: the server refused the statement, nothing committed; it
                # takes writes again once its disk has room (an answer of its own: the connection is fine). Until
                # session 59 it was taken for a lost connection: 503 to every later append until a restart
                self.write_failure = StorageFullError(
                    errno.ENOSPC, f"event log {self.path} is full: the database's disk is full ({str(exc).strip()})"
                )
                raise self.write_failure from exc
            except psycopg.OperationalError as exc:  # the commit may or may not have happened
                why = (
                    f"the database did not answer within {self._deadline.timeout_s} s (the connection was cut)"
                    if self._deadline.expired
                    else f"the database connection failed: {str(exc).strip()}"
                )
                # The 503 says nothing was applied (true of the models now); a recovery applies the
                # record if it committed, so a client's retry must carry its timestamp or key.
                unknown = "whether this record committed is unknown (a recovery applies it if it did)"
                self._broken = LogUnavailable(errno.EIO, f"event log {self.path}: {why}; {unknown}")
                raise self._broken from exc
            if row is None:
                raise self._fenced()
            self.write_failure = None
            return int(row[0])

    def write(self, model: str, kind: str, payload: Any) -> int:
        """The same as ``append``: a commit is already as durable as this store promises."""
        return self.append(model, kind, payload)

    def durable(self, seq: int) -> Future[None]:
        done: Future[None] = Future()
        done.set_result(None)
        return done

    def prune(self, through_seq: int) -> int:
        """Delete this stream's records with ``seq <= through_seq``; ``FencedWriter`` (nothing
        deleted) from a superseded epoch."""
        with self._lock:
            self._check_writable()
            params = {"stream": self.stream, "through": int(through_seq), "epoch": self.epoch}
            with self._deadline.guarding(self._conn):
                deleted = self._conn.execute(_PRUNE, params).rowcount
            if deleted == 0 and self._current_epoch() != self.epoch:
                raise self._fenced()
            return deleted

    @property
    def broken(self) -> LogUnavailable | None:
        """Why every append now fails (a connection lost during one), or None: the writer should restart."""
        return self._broken

    def sync(self) -> None:
        """Nothing to do: every append committed before it returned."""

    def close(self) -> None:
        """Close the connection (the epoch stays taken: a reopen takes the next). Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()
                self._deadline.close()

    # -- reading ------------------------------------------------------------------
    def records(self, after_seq: int = 0) -> Iterator[LogRecord]:
        """This stream's records with ``seq > after_seq`` in seq order (read page by page)."""
        last = int(after_seq)
        while True:
            with self._lock:
                self._check_open()
                with self._deadline.guarding(self._conn):
                    rows = self._conn.execute(
                        "SELECT seq, model, kind, payload, created_at FROM log_events "
                        "WHERE stream = %s AND seq > %s ORDER BY seq LIMIT %s",
                        (self.stream, last, _PAGE_ROWS),
                    ).fetchall()
            for seq, model, kind, payload, created_at in rows:
                yield LogRecord(int(seq), model, kind, decode_payload(int(seq), payload), created_at)
            if len(rows) < _PAGE_ROWS:
                return
            last = int(rows[-1][0])

    def last_seq(self) -> int:
        """The highest seq ever appended to this stream (0 for a new one), also after ``prune``.

        ``FencedWriter`` once a newer epoch owns the stream: its seqs include records this writer
        never applied, so a checkpoint labelled with one would claim them (a superseded owner
        still running wrote its stale models under the new owner's last seq, and a recovery from
        that checkpoint skipped the new owner's records: a hostile test, session 36). While this
        writer's epoch holds, every record up to the seq returned is one it appended or recovered.
        """
        with self._lock:
            self._check_open()
            try:
                with self._deadline.guarding(self._conn):
                    row = self._conn.execute(
                        "SELECT last_seq, epoch FROM log_streams WHERE stream = %s", (self.stream,)
                    ).fetchone()
            except psycopg.OperationalError as exc:
                if self._conn.broken or self._conn.closed or self._deadline.expired:  # the connection is gone
                    # (a statement the server cancelled leaves it usable): every later use fails, and a
                    # shard that reads nothing else learns it here and restarts (the review of session 36)
                    why = f"the database connection was lost: {str(exc).strip()}"
                    self._broken = LogUnavailable(errno.EIO, f"event log {self.path}: {why}")
                    raise self._broken from exc
                raise
            if row is not None and int(row[1]) != self.epoch:
                raise self._fenced()
        return 0 if row is None else int(row[0])

    # -- internals ------------------------------------------------------------------
    def _current_epoch(self) -> int:
        row = self._conn.execute("SELECT epoch FROM log_streams WHERE stream = %s", (self.stream,)).fetchone()
        return 0 if row is None else int(row[0])

    def _fenced(self) -> FencedWriter:
        self._superseded = FencedWriter(
            f"event log {self.path}: this writer's epoch {self.epoch} was superseded by epoch "
            f"{self._current_epoch()}; a newer incarnation owns the stream, nothing was written"
        )
        return self._superseded

    @property
    def superseded(self) -> FencedWriter | None:
        """The refusal of an append or prune because a newer epoch owns the stream, or None: this
        writer will never write again (a standby was promoted in its place)."""
        return self._superseded

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"event log {self.path} is closed")

    def _check_writable(self) -> None:
        self._check_open()
        if self._broken is not None:
            raise self._broken

    def __enter__(self) -> PostgresLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
