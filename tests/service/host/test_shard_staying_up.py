"""A shard stays up through its log's database: a recovery that fails is retried with a back-off (503
naming the reason meanwhile), and PostgreSQL stopped as a whole refuses writes with 503 while the
forecasts answer from memory; once it is back the shard restarts in place and loses nothing acknowledged.
In-process :class:`ShardHost` s on real PostgreSQL servers (no Ray)."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from benchmarks.postgres_server import TemporaryPostgres
from tbptt_service.host.shard import ForwardedRequest, ForwardedResponse, ShardHost
from tbptt_service.settings import Settings
from tbptt_service.storage.postgres_log import read_stream

from ..conftest import SMALL_MODEL
from .test_durability_recovery import NO_TIMER, T0

JSON = [("content-type", "application/json")]


def call(host: ShardHost, method: str, path: str, body: object = None) -> ForwardedResponse:
    request = ForwardedRequest(method, path, JSON if body is not None else [], orjson.dumps(body) if body else b"")
    return host.handle(f"{method}-{path}-{time.monotonic_ns()}", [request])[0]


def observe(host: ShardHost, series: str, value: float, timestamp: float | None = None) -> ForwardedResponse:
    body = {"series": series, "value": value} | ({"timestamp": timestamp} if timestamp is not None else {})
    return call(host, "POST", "/v1/models/default/observations", body)


@pytest.fixture
def own_postgres() -> Iterator[TemporaryPostgres]:
    """A server of this test's own: it is stopped and started again."""
    server = TemporaryPostgres()
    try:
        server.start()
    except FileNotFoundError:
        pytest.skip("no PostgreSQL on this machine (apt-get install -y postgresql); CI requires it")
    try:
        yield server
    finally:
        server.stop()


def test_a_failed_recovery_is_retried_until_it_succeeds(tmp_path: Path, postgres_url: str) -> None:
    late = postgres_url + "_late"  # a database that does not exist yet: the first recovery attempt fails
    settings = Settings(state_dir=tmp_path, default_model=SMALL_MODEL, log_url=late, **NO_TIMER)
    host = ShardHost(0, 1, settings.model_dump())
    try:
        assert not host.ready() and host.attempts == 1 and host.incarnations == 0
        refused = observe(host, "a", 1.0)
        assert refused.status == 503
        detail = orjson.loads(refused.body)["detail"]
        assert "shard 0 is not serving: its recovery failed (attempt 1)" in detail and "_late" in detail
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {late.rsplit('/', 1)[1]}")
        try:
            assert host.wait_ready(timeout_s=30), "the shard did not recover once its database existed"
            assert host.attempts >= 2 and host.incarnations == 1
            assert observe(host, "a", 1.0).status == 200  # the refused one was not applied: count 1
            assert orjson.loads(call(host, "GET", "/v1/models/default/series/a").body)["count"] == 1
        finally:
            host.close()
            with psycopg.connect(postgres_url, autocommit=True) as admin:
                admin.execute(f"DROP DATABASE {late.rsplit('/', 1)[1]} WITH (FORCE)")
    finally:
        host.close()


def test_postgres_down_refuses_writes_with_503_serves_forecasts_and_loses_nothing(
    tmp_path: Path, own_postgres: TemporaryPostgres
) -> None:
    settings = Settings(state_dir=tmp_path, default_model=SMALL_MODEL, log_url=own_postgres.url, **NO_TIMER)
    host = ShardHost(0, 1, settings.model_dump())
    try:
        for t in range(5):  # acknowledged: timestamped ones and untimestamped ones
            assert observe(host, "a", t / 2.0, T0 + t).status == 200
            assert observe(host, "b", t / 3.0).status == 200
        forecast_path = "/v1/models/default/series/a/forecast?horizon=3"
        before = call(host, "GET", forecast_path)
        assert before.status == 200

        own_postgres.halt()
        for _ in range(2):  # the first finds the connection gone; the next, the log already broken
            refused = observe(host, "b", 9.0)
            detail = orjson.loads(refused.body)["detail"]
            assert refused.status == 503, refused.body
            assert "the database connection failed" in detail and f"127.0.0.1:{own_postgres.port}" in detail
            assert "nothing was applied" in detail
        assert call(host, "GET", forecast_path) == before  # reads answer from memory, unchanged
        stats = orjson.loads(call(host, "GET", "/v1/models/default/series/b").body)
        assert stats["count"] == 5
        time.sleep(1.0)
        assert host.incarnations == 1  # no restart while the database is down

        own_postgres.resume()
        deadline = time.monotonic() + 30
        while host.incarnations < 2 or not host.ready():  # restarted in place, a new epoch, recovered
            assert time.monotonic() < deadline, "the shard did not restart once PostgreSQL was back"
            time.sleep(0.05)
        after = call(host, "GET", forecast_path)
        assert after.status == 200 and orjson.loads(after.body)["forecast"] == orjson.loads(before.body)["forecast"]
        for series, count in (("a", 5), ("b", 5)):  # every acknowledged observation, the refused ones not
            assert orjson.loads(call(host, "GET", f"/v1/models/default/series/{series}").body)["count"] == count
        assert observe(host, "b", 9.0).status == 200  # writes resume
        assert orjson.loads(call(host, "GET", "/v1/models/default/series/b").body)["count"] == 6
        # A new epoch for each opening of the log: one for the restart, more only where the load made more (a
        # new connection broken in turn by a statement past its deadline restarts in place again: test_cluster's,
        # seen in CI, session 62), each restart with its reason.
        marks = [step for step, _ in host.startup.marks]
        restarts = [step for step in marks if step.startswith("restart in place")]
        assert len(restarts) == host.incarnations - 1 and "connection" in restarts[0], restarts
        assert host.app.state.durability.log.epoch == sum(step.endswith("log opened (a new epoch)") for step in marks)
    finally:
        host.close()
    # seq 1 created the model, 2-11 the 10 acknowledged batches (pruned by the restart's checkpoint),
    # 12 the write after: none of the refused ones took a seq.
    records = [(r.seq, r.kind, r.payload["items"]) for r in read_stream(own_postgres.url, "shard-0")]
    assert records == [(12, "observe", [["b", 9.0, None]])]


def test_a_log_database_that_stops_answering_gets_503_within_the_timeout_and_the_shard_restarts(
    tmp_path: Path, postgres_url: str
) -> None:
    """The shard's PostgreSQL backend frozen (SIGSTOP: a partitioned connection, whose packets the
    kernel still acknowledges): a write answers 503 once the log's 1 s timeout has passed (before,
    it waited until the backend came back), reads answer meanwhile; resumed, the shard restarts in
    place, and the refused observation, retried with its timestamp, counts exactly once (it may
    have committed before the connection was cut)."""
    settings = Settings(
        state_dir=tmp_path, default_model=SMALL_MODEL, log_url=postgres_url, log_timeout_s=1.0, **NO_TIMER
    )
    host = ShardHost(0, 1, settings.model_dump())
    try:
        for t in range(5):
            assert observe(host, "b", t / 3.0, T0 + t).status == 200
        forecast_path = "/v1/models/default/series/b/forecast?horizon=3"
        before = call(host, "GET", forecast_path)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            backend = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'tbptt-online shard-0' "
                "AND datname = current_database()"
            ).fetchone()[0]
        answers: list[ForwardedResponse] = []
        writing = threading.Thread(target=lambda: answers.append(observe(host, "b", 9.0, T0 + 100)))
        os.kill(backend, signal.SIGSTOP)
        try:
            started = time.monotonic()
            writing.start()
            writing.join(timeout=10)
            elapsed = time.monotonic() - started
            answered = not writing.is_alive()
            assert call(host, "GET", forecast_path) == before  # reads answer from memory meanwhile
        finally:
            os.kill(backend, signal.SIGCONT)
            writing.join(timeout=30)
        assert answered, "the write still waited 10 s after the log's database stopped answering"
        assert elapsed < 3.0
        refused = answers[0]
        detail = orjson.loads(refused.body)["detail"]
        assert refused.status == 503 and "did not answer within 1.0 s" in detail, refused.body
        deadline = time.monotonic() + 30
        while host.incarnations < 2 or not host.ready():  # a new connection, a new epoch, recovered
            assert time.monotonic() < deadline, "the shard did not restart once its database answered"
            time.sleep(0.05)
        assert observe(host, "b", 9.0, T0 + 100).status == 200  # the retry: applied, or answered as a repeat
        stats = orjson.loads(call(host, "GET", "/v1/models/default/series/b").body)
        assert stats["count"] == 6 and stats["last_timestamp"] == T0 + 100
    finally:
        host.close()


def test_a_call_that_took_the_broken_app_as_the_shard_restarts_is_answered_before_that_app_closes(
    tmp_path: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race seen once in the cluster test: a call takes the app whose log broke just before the
    mending thread retires it; the app used to be closed under the running call, which then failed
    with an unhandled error (the front's 500). Now the app closes once its calls are answered: this
    one gets the broken log's 503, and its retry on the restarted shard applies once."""
    from tbptt_service.storage import postgres_log

    settings = Settings(state_dir=tmp_path, default_model=SMALL_MODEL, log_url=postgres_url, **NO_TIMER)
    host = ShardHost(0, 1, settings.model_dump())
    try:
        assert observe(host, "a", 1.0, T0).status == 200
        may_restart = threading.Event()
        real_unreachable = postgres_log.unreachable

        def held_unreachable(url: str, timeout_s: float = 2.0) -> str | None:
            assert may_restart.wait(30), "the racing call never started"
            return real_unreachable(url, timeout_s)

        monkeypatch.setattr(postgres_log, "unreachable", held_unreachable)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'tbptt-online shard-0' AND datname = current_database()"
            )
        first = observe(host, "a", 2.0, T0 + 1)
        assert first.status == 503 and "connection failed" in orjson.loads(first.body)["detail"], first.body
        broken = host._serving
        assert broken is not None and broken.log_broken is not None  # the mending waits in unreachable()
        real_handle_all = broken.handle_all

        async def racing_handle_all(key: str, requests: list[ForwardedRequest]) -> list[ForwardedResponse]:
            may_restart.set()  # this call holds the broken app: let the mending retire it now
            while host._serving is broken:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the app's close, scheduled on this loop, gets its turn
            return await real_handle_all(key, requests)

        monkeypatch.setattr(broken, "handle_all", racing_handle_all)
        raced = observe(host, "a", 2.0, T0 + 1)
        assert raced.status == 503 and "connection failed" in orjson.loads(raced.body)["detail"], raced.body
        assert host.wait_ready(timeout_s=30), "the shard did not restart"
        assert host.incarnations == 2
        assert observe(host, "a", 2.0, T0 + 1).status == 200
        assert orjson.loads(call(host, "GET", "/v1/models/default/series/a").body)["count"] == 2
        serving = host._serving
        host._mend(broken=broken)  # a late report of the retired app's broken log: the new app stays
        time.sleep(0.5)
        assert host._serving is serving and host.incarnations == 2 and host.ready()
    finally:
        host.close()


class EpochUnknown:
    """A PostgreSQL log's face to ``ShardApp.ask_epoch``: its ``last_seq`` raises ``error`` and, where the log
    kept the answer (fenced, broken), records it as the real one does."""

    def __init__(self, error: Exception, kept_as: str | None = None) -> None:
        self.error, self.kept_as = error, kept_as
        self.superseded: Exception | None = None
        self.broken: Exception | None = None

    def last_seq(self) -> int:
        if self.kept_as is not None:
            setattr(self, self.kept_as, self.error)
        raise self.error


@pytest.mark.parametrize(
    ("error", "kept_as", "said"),
    [
        (RuntimeError("a newer epoch owns the stream"), "superseded", False),
        (OSError("the database connection was lost"), "broken", False),
        (psycopg.errors.QueryCanceled("canceling statement due to user request"), None, True),
    ],
    ids=["fenced", "broken", "cancelled"],
)
def test_asking_the_epoch_keeps_the_logs_answer_and_says_what_told_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, error: Exception, kept_as: str | None, said: bool
) -> None:
    # The review of session 60: every error of the question was suppressed (contextlib.suppress(Exception)),
    # so one the log keeps no state for (a cancelled statement; a bug) left no trace anywhere.
    from tbptt_service.host.shard_app import ShardApp

    shard = ShardApp(0, Settings(state_dir=tmp_path))
    log = EpochUnknown(error, kept_as)
    shard.app.state.durability.log = log
    with caplog.at_level("WARNING", logger="tbptt_service.host.shard_app"):
        shard.ask_epoch()
    assert getattr(shard, "log_superseded" if kept_as == "superseded" else "log_broken") is (error if kept_as else None)
    warned = [r.getMessage() for r in caplog.records if r.name == "tbptt_service.host.shard_app"]
    assert warned == ([f"shard 0: asking the database for its log's epoch failed: {error!r}"] if said else [])
