"""PostgresLog against a real PostgreSQL server: the log-store contract it shares with the SQLite
EventLog (same records back, gapless seqs, prune keeps the high-water mark), independent streams,
epoch fencing (an older writer can append nothing), a lost connection that refuses later appends, and a
full disk of the server that refuses one append (507) and not the next."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tbptt_service.errors import StorageFullError
from tbptt_service.storage.event_log import EventLog
from tbptt_service.storage.log_store import FencedWriter, LogStore
from tbptt_service.storage.postgres_log import PostgresLog, read_stream

RECORDS = [
    ("default", "observe", {"items": [["a", 1.5, None], ["b", None, 1700000000.25]]}),
    ("m2", "create_model", {"config": {"hidden_size": 8, "dtype": "float64"}}),
    ("default", "forget_series", {"series": "b"}),
    ("default", "observe", {"items": [["é/ü", -0.1, 1.0e-300]]}),
]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    if request.param == "sqlite":
        with EventLog(tmp_path / "events.sqlite3") as log:
            yield log
    else:
        with PostgresLog(request.getfixturevalue("postgres_url"), stream="s") as log:
            yield log


def test_records_come_back_in_order_with_gapless_seqs(store: LogStore) -> None:
    assert store.last_seq() == 0 and list(store.records()) == []
    seqs = [store.append(*record) for record in RECORDS]
    assert seqs == [1, 2, 3, 4]
    got = [(r.seq, r.model, r.kind, r.payload) for r in store.records()]
    assert got == [(seq, *record) for seq, record in zip(seqs, RECORDS, strict=True)]
    assert [r.seq for r in store.records(after_seq=2)] == [3, 4]
    assert store.last_seq() == 4


def test_prune_deletes_through_a_seq_and_keeps_the_high_water_mark(store: LogStore) -> None:
    for record in RECORDS:
        store.append(*record)
    assert store.prune(3) == 3
    assert [r.seq for r in store.records()] == [4]
    assert store.prune(4) == 1
    assert store.last_seq() == 4 and list(store.records()) == []
    assert store.append("default", "observe", {"items": []}) == 5  # never reused


def test_a_failed_append_leaves_no_gap(store: LogStore) -> None:
    store.append("default", "observe", {"items": []})
    with pytest.raises(TypeError):
        store.append("default", "observe", {"items": [object()]})  # orjson cannot encode it
    assert store.append("default", "observe", {"items": []}) == 2


def test_the_two_stores_hold_the_same_records(tmp_path: Path, postgres_url: str) -> None:
    with EventLog(tmp_path / "events.sqlite3") as sqlite, PostgresLog(postgres_url) as pg:
        for record in RECORDS:
            assert sqlite.append(*record) == pg.append(*record)
        strip = [(r.seq, r.model, r.kind, r.payload) for r in sqlite.records()]
        assert strip == [(r.seq, r.model, r.kind, r.payload) for r in pg.records()]


def test_streams_are_independent(postgres_url: str) -> None:
    with PostgresLog(postgres_url, stream="shard-0") as a, PostgresLog(postgres_url, stream="shard-1") as b:
        assert [a.append("m", "k", 1), a.append("m", "k", 2), b.append("n", "k", 3)] == [1, 2, 1]
        assert [r.payload for r in a.records()] == [1, 2] and [r.payload for r in b.records()] == [3]
        assert (a.last_seq(), b.last_seq()) == (2, 1)


def test_each_opening_takes_the_next_epoch(postgres_url: str) -> None:
    with PostgresLog(postgres_url, stream="s") as first:
        pass
    with PostgresLog(postgres_url, stream="s") as second, PostgresLog(postgres_url, stream="other") as other:
        assert (first.epoch, second.epoch, other.epoch) == (1, 2, 1)


def test_a_writer_from_an_older_epoch_cannot_append_or_prune(postgres_url: str) -> None:
    with PostgresLog(postgres_url, stream="s") as old:
        assert old.append("m", "observe", {"items": [["a", 1.0, None]]}) == 1
        with PostgresLog(postgres_url, stream="s") as new:  # a new incarnation takes over
            assert new.epoch == old.epoch + 1
            with pytest.raises(FencedWriter, match=r"epoch 1 was superseded by epoch 2"):
                old.append("m", "observe", {"items": [["a", 2.0, None]]})
            with pytest.raises(FencedWriter):
                old.write("m", "observe", {"items": [["a", 3.0, None]]})
            with pytest.raises(FencedWriter):
                old.prune(1)
            assert new.last_seq() == 1  # nothing of the old writer's tries was written
            assert [(r.seq, r.payload) for r in new.records()] == [(1, {"items": [["a", 1.0, None]]})]
            assert new.append("m", "observe", {"items": [["a", 4.0, None]]}) == 2  # the owner goes on
            with pytest.raises(FencedWriter):
                old.append("m", "observe", {"items": [["a", 5.0, None]]})
            assert [r.seq for r in new.records()] == [1, 2]


def test_a_lost_connection_refuses_every_later_append(postgres_url: str) -> None:
    with PostgresLog(postgres_url, stream="s") as log:
        assert log.append("m", "k", 1) == 1
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            terminated = admin.execute(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t"
            ).fetchone()[0]
        assert terminated == 1
        with pytest.raises(OSError, match="connection failed"):
            log.append("m", "k", 2)
        with pytest.raises(OSError, match="connection failed"):
            log.append("m", "k", 3)  # unknown whether anything committed: the writer must restart
    with PostgresLog(postgres_url, stream="s") as restarted:
        assert [r.payload for r in restarted.records()] == [1]


def test_a_full_database_disk_refuses_that_append_with_507_and_the_next_one_is_taken(postgres_url: str) -> None:
    # An operator's finding (session 58, F9): a 53100 (disk_full) was taken for a lost connection, so every later
    # append failed until a restart. A trigger answers the server's own disk-full error (SQLSTATE 53100) here.
    fault = """CREATE OR REPLACE FUNCTION disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device' USING ERRCODE = '53100';
        END $$"""
    with PostgresLog(postgres_url, stream="s") as log, psycopg.connect(postgres_url, autocommit=True) as admin:
        assert log.append("m", "k", 1) == 1
        admin.execute(fault)
        admin.execute("CREATE TRIGGER full_disk BEFORE INSERT ON log_events FOR EACH ROW EXECUTE FUNCTION disk_full()")
        for _ in range(2):
            with pytest.raises(StorageFullError, match=r"the database's disk is full \(.*No space left on device"):
                log.append("m", "k", 2)
        assert isinstance(log.write_failure, StorageFullError)
        admin.execute("DROP TRIGGER full_disk ON log_events")
        assert log.append("m", "k", 3) == 2  # no gap: the refused statements rolled back whole
        assert log.write_failure is None and log.broken is None
        assert [(r.seq, r.payload) for r in log.records()] == [(1, 1), (2, 3)]


def test_an_append_the_database_stops_answering_fails_within_the_timeout_and_refuses_later_ones(
    postgres_url: str,
) -> None:
    """A backend frozen with SIGSTOP stands for a partitioned (not refused) connection: the kernel
    still acknowledges every packet, so neither TCP keepalives nor the server's statement_timeout
    end the append. Before the client-side deadline it hung until the backend was resumed."""
    with PostgresLog(postgres_url, stream="s", timeout_s=1.0) as log:
        assert log.append("m", "k", 1) == 1
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            backend = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'tbptt-online s'"
            ).fetchone()[0]
        outcome: list[BaseException | int] = []

        def append() -> None:
            try:
                outcome.append(log.append("m", "k", 2))
            except BaseException as error:  # kept to assert on below, in the test's thread
                outcome.append(error)

        os.kill(backend, signal.SIGSTOP)
        try:
            started = time.monotonic()
            appending = threading.Thread(target=append)
            appending.start()
            appending.join(timeout=10)
            elapsed = time.monotonic() - started
            finished = not appending.is_alive()
        finally:
            os.kill(backend, signal.SIGCONT)
            appending.join(timeout=30)
        assert finished, "the append still waited 10 s after the database stopped answering"
        assert 1.0 <= elapsed < 3.0  # the deadline (1 s), not TCP's minutes
        assert isinstance(outcome[0], OSError) and "did not answer within 1.0 s" in str(outcome[0])
        assert log.broken is outcome[0]
        with pytest.raises(OSError, match=r"did not answer within 1\.0 s"):
            log.append("m", "k", 3)  # unknown whether 2 committed: the writer must restart
    with PostgresLog(postgres_url, stream="s") as restarted:  # the frozen append may have committed once resumed
        assert [r.payload for r in restarted.records()] in ([1], [1, 2])


def test_a_reader_sees_the_records_and_never_fences_the_writer(postgres_url: str) -> None:
    assert read_stream(postgres_url, "s") == []  # no tables yet
    with PostgresLog(postgres_url, stream="s") as log:
        for record in RECORDS:
            log.append(*record)
        got = read_stream(postgres_url, "s", after_seq=1)
        assert [(r.seq, r.model, r.kind, r.payload) for r in got] == [(i + 2, *r) for i, r in enumerate(RECORDS[1:])]
        assert log.append("default", "observe", {"items": []}) == 5  # still the owner
        assert log.epoch == 1


def test_a_superseded_writer_cannot_read_a_last_seq_that_holds_the_new_owners_records(postgres_url: str) -> None:
    # a checkpoint labelled with it would claim records the superseded writer never applied (session 36)
    with PostgresLog(postgres_url, stream="s") as old:
        old.append("m", "observe", {"items": [["a", 1.0, None]]})
        assert old.last_seq() == 1
        with PostgresLog(postgres_url, stream="s") as new:
            assert new.append("m", "observe", {"items": [["a", 2.0, None]]}) == 2
            with pytest.raises(FencedWriter, match=r"epoch 1 was superseded by epoch 2"):
                old.last_seq()
            assert old.superseded is not None  # it will never write again
            assert new.last_seq() == 2
