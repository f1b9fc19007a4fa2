"""The cluster for real: PostgreSQL, a Ray head and 2 worker nodes (``ray.cluster_utils.Cluster``, token
authentication on), 2 shard actors, 2 front processes (``tbptt-online serve --ray``). Every model has
one owner; the fronts answer as the in-process service does; a SIGKILLed shard process and a lost
worker node each fail over with every acknowledged observation kept exactly once. Every process
started here is stopped here (the fronts and PostgreSQL by their PIDs, the Ray nodes by the cluster)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import orjson
import psycopg
import pytest

from benchmarks.postgres_server import TemporaryPostgres, postgres_bin_dir
from benchmarks.server_process import ServerProcess, free_port, serve_command
from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.api.app import create_app
from tbptt_service.host.model_state import decode_model_checkpoint
from tbptt_service.host.shard import ForwardedRequest, shard_of
from tbptt_service.storage.postgres_log import read_stream

from .api.test_front import MODELS, ODD_STATUSES, odd_name_requests, requests
from .bitwise import assert_bitwise_equal
from .conftest import SMALL_MODEL
from .host.test_durability_recovery import NO_TIMER

# Token authentication for the test's cluster: read by Ray when it is first imported, so set before it.
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(16))
# A lost node declared dead after 3 missed 1 s health checks (Ray's default: 5 x 3 s), as in docker-compose.yml.
os.environ.setdefault("RAY_health_check_period_ms", "1000")
os.environ.setdefault("RAY_health_check_failure_threshold", "3")
# Ray starts its worker processes (the shard actors) 15 nice levels below the process that started the node
# (worker_niceness, 15 by default): beside a busy test worker at nice 0 a shard actor got about 3 % of a core
# (weights 36 against 1,024). Session 63, 2 CPU loops at nice 0 beside the module: the owners sat in their
# constructors for 8 minutes (3.2 s of CPU), no front was ready within 480 s (CI, session 62: within 240 s, the
# suite's other worker beside it), and a failover took 35 s. At 0 the actors share the cores as the fronts and
# the clients do. (docker-compose.yml keeps Ray's default: there a shard's node runs little else.)
os.environ.setdefault("RAY_worker_niceness", "0")
ray = pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -e '.[cluster]')")
from ray.cluster_utils import Cluster  # noqa: E402

from tbptt_service.host.ray_shards import NAMESPACE, actor_name  # noqa: E402

SHARDS = 2
T0 = 1_700_000_000
# Kills in the random-kill test (every third one a node's): 3 in make test (2 processes, 1 node), the
# issue's 10 with CLUSTER_FAULT_KILLS=10 (7 processes, 3 nodes).
KILLS = int(os.environ.get("CLUSTER_FAULT_KILLS", "3"))
# The module's fixture starts PostgreSQL, 3 Ray nodes and 2 fronts, which create the 4 shard actors (each imports
# torch, loads the kernels; the owners recover): about 2 minutes at load 10-15 on 2 cores (session 63), and the
# fronts were not ready within 240 s once in CI (session 62, the whole suite beside them). The fronts get FRONTS_S
# between them, and whichever test comes first pays the setup inside its timeout (pytest-timeout counts fixtures'
# setup): the module's tests have 720 s each (the random-kill test its own 900 s).
FRONTS_S = 480
pytestmark = pytest.mark.timeout(720)
# A kill's failover, bounded by KILL_WAIT_S (the waits end at the first acknowledged write; only a failover that
# never comes takes the whole bound). A warm standby promoted takes seconds; a cold process takes longer: a process
# kill that comes while the standby Ray restarted after the previous kill is still warming (17.8 s at load 12,
# session 63), and a node kill that takes both actors of the pair (Ray restarts a lost actor with its first
# placement, which may put it beside its partner: 35.0 s at load 12 from the kill to the first acknowledged write,
# a fresh process started, warmed and recovered; over 60 s once in CI, session 62). A client retries one request
# for longer than that before it gives up (CLIENT_GIVES_UP_S).
KILL_WAIT_S = 180
CLIENT_GIVES_UP_S = KILL_WAIT_S + 60


class Running:
    env: dict[str, str]  # the fronts' environment
    shared: Path  # the directory that holds the checkpoints' ("checkpoints") and the fronts' logs

    def __init__(self, cluster: Cluster, postgres: TemporaryPostgres, fronts: list[ServerProcess], workers: list):
        self.cluster, self.postgres, self.fronts, self.workers = cluster, postgres, fronts, workers

    def actors(self, index: int) -> list:
        """Shard ``index``'s pair: the actor that started as its owner, and the one that started as its standby."""
        return [ray.get_actor(actor_name(index, standby), namespace=NAMESPACE) for standby in (False, True)]

    def actor(self, index: int, timeout_s: float = 120.0):
        """The actor that owns shard ``index``'s stream now. When neither does (the owner was lost and no
        front has called since), the standby is promoted, as a front's next call would."""
        deadline = time.monotonic() + timeout_s
        while True:
            pair, roles = self.actors(index), []
            for actor in pair:
                try:
                    roles.append(ray.get(actor.current_role.remote(), timeout=15))
                except ray.exceptions.RayError:  # lost, or restarting
                    roles.append(None)
            if "owner" in roles:
                return pair[roles.index("owner")]
            assert time.monotonic() < deadline, f"shard {index}: no owner within {timeout_s} s ({roles})"
            if "promoting" not in roles and "standby" in roles:
                with contextlib.suppress(ray.exceptions.RayError):  # lost meanwhile: the next round sees
                    ray.get(pair[roles.index("standby")].promote.remote(), timeout=60)
            time.sleep(0.1)

    def shard_call(self, index: int, method: str, path: str) -> tuple[int, bytes]:
        key = secrets.token_hex(8)
        answer = ray.get(self.actor(index).handle.remote(key, [ForwardedRequest(method, path, [], b"")]))[0]
        return answer.status, answer.body


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    if postgres_bin_dir() is None:  # as the postgres fixture: CI must have it
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed: CI must install it (apt-get install -y postgresql)")
        pytest.skip("no PostgreSQL on this machine (apt-get install -y postgresql); CI requires it")
    shared = tmp_path_factory.mktemp("cluster")
    postgres = TemporaryPostgres()
    postgres.start()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "include_dashboard": False},
    )
    fronts: list[ServerProcess] = []
    try:
        workers = [cluster.add_node(num_cpus=2) for _ in range(2)]
        cluster.wait_for_nodes()
        cluster.connect(namespace=NAMESPACE)
        env = {
            **os.environ,
            "TBPTT_DEFAULT_MODEL": json.dumps(SMALL_MODEL),
            "TBPTT_CHECKPOINT_INTERVAL_S": "0",
            "TBPTT_CHECKPOINT_EVERY_OBSERVATIONS": "0",
            "OMP_NUM_THREADS": "1",
        }
        for i in range(2):
            port = free_port()
            command = serve_command("--ray", cluster.address, "--shards", str(SHARDS), "--log", postgres.url)
            command += ["--state-dir", str(shared / "checkpoints"), "--port", str(port)]
            fronts.append(ServerProcess(command, env, port, shared / f"front-{i}.log"))
            fronts[-1].start()
        ready_by = time.monotonic() + FRONTS_S  # one deadline for both: they start at once, one creates the shards
        for front in fronts:
            front.wait_ready(timeout_s=max(1.0, ready_by - time.monotonic()))
        running = Running(cluster, postgres, fronts, workers)
        running.env, running.shared = env, shared  # what another front needs to start as these did
        yield running
    finally:
        for front in fronts:
            front.stop(grace_s=10)
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        postgres.stop()


def in_process_answers(make_settings, steps: list[tuple[str, str, Any]]) -> list[tuple[int, bytes]]:
    """(status, body) of each (method, path, json body) of ``steps`` on a fresh in-process
    service: what the fronts must answer."""
    import asyncio

    async def alone() -> list[tuple[int, bytes]]:
        app = create_app(make_settings(**NO_TIMER))
        async with app.router.lifespan_context(app):
            await app.state.loading
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
                return [((r := await client.request(m, p, json=b)).status_code, r.content) for m, p, b in steps]

    return asyncio.run(alone())


def test_the_fronts_answer_as_the_in_process_service_and_each_model_has_one_owner(
    running: Running, make_settings, tmp_path
) -> None:
    expected = in_process_answers(make_settings, requests())
    got = []
    for i, (method, path, body) in enumerate(requests()):  # the two fronts take turns
        response = httpx.request(method, running.fronts[i % 2].url + path, json=body, timeout=60)
        got.append((response.status_code, response.content))
    assert got[:-1] == expected[:-1]
    listed, listed_alone = orjson.loads(got[-1][1]), orjson.loads(expected[-1][1])
    listed_alone["models"].sort(key=lambda m: m["name"])
    assert got[-1][0] == 200 and listed == listed_alone
    for index in range(SHARDS):  # each shard holds exactly the models that hash to it
        status, body = running.shard_call(index, "GET", "/v1/models")
        owned = sorted(m["name"] for m in orjson.loads(body)["models"])
        assert status == 200 and owned == sorted(m for m in MODELS if m != "gamma" and shard_of(m, SHARDS) == index)


def test_the_fronts_route_and_read_odd_series_names_as_the_in_process_service(running: Running, make_settings) -> None:
    # Fix: a series named "a\nb" answered 404 through the front (its catch-all route stopped at the newline;
    # such a name is refused when written since session 61: test_front.py reads one a state held before)
    expected = in_process_answers(make_settings, odd_name_requests())
    got = []
    for method, path, body in odd_name_requests():
        response = httpx.request(method, running.fronts[1].url + path, json=body, timeout=60)
        got.append((response.status_code, response.content))
    assert [status for status, _ in got] == ODD_STATUSES
    assert got == expected


def test_a_front_with_other_settings_than_the_running_shards_is_refused(running: Running) -> None:
    # A hostile test (session 58): the detached shard actors keep the settings of the front that created
    # them, and a front restarted with TBPTT_API_KEY served everyone without a key (its TBPTT_MAX_HORIZON,
    # --log and --state-dir were ignored too). A third front with a key and another horizon now exits 2
    # naming both, never the key; its relative --state-dir names the shards' directory from its working
    # directory, so it is not among them (the front makes it absolute).
    env = {**running.env, "TBPTT_API_KEY": "s3cret-key", "TBPTT_MAX_HORIZON": "5"}
    command = serve_command("--ray", running.cluster.address, "--shards", str(SHARDS), "--log", running.postgres.url)
    command += ["--state-dir", "checkpoints", "--port", str(free_port())]
    done = subprocess.run(command, env=env, cwd=running.shared, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr[-3000:]
    refusal = next(line for line in done.stderr.splitlines() if "differs" in line)
    assert "(TBPTT_API_KEY differs; TBPTT_MAX_HORIZON differs)" in refusal
    assert "s3cret-key" not in done.stderr
    assert httpx.get(running.fronts[0].url + "/v1/models", timeout=60).status_code == 200  # the cluster serves on


def test_a_front_refused_for_a_new_log_records_nothing_and_creates_no_actor(running: Running) -> None:
    # The review of session 58: a front refused for its settings had claimed its shard count in its (new) log's
    # database first, and created the actors missing (here shard 2's pair, with --shards 3) with its own settings
    # before it compared. A front with a new --log and --shards 3 now exits 2 with the new database untouched and
    # no actor of shard 2.
    with psycopg.connect(running.postgres.url, autocommit=True) as admin:
        admin.execute("CREATE DATABASE refused_front")
    new_log = running.postgres.url.rsplit("/", 1)[0] + "/refused_front"
    command = serve_command("--ray", running.cluster.address, "--shards", "3", "--log", new_log)
    command += ["--state-dir", str(running.shared / "checkpoints"), "--port", str(free_port())]
    done = subprocess.run(command, env=running.env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "(TBPTT_LOG_URL (--log) differs)" in done.stderr
    with psycopg.connect(new_log) as connection:
        assert connection.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone() == (0,)
    for standby in (False, True):
        with pytest.raises(ValueError):  # no actor of that name
            ray.get_actor(actor_name(2, standby), namespace=NAMESPACE)
    assert httpx.get(running.fronts[0].url + "/v1/models", timeout=60).status_code == 200  # the cluster serves on


SERIES_PER_BATCH = 3  # a client's request: a timestamped batch, one value of each of its series


def series_of(client: str) -> list[str]:
    return [f"{client}-{j}" for j in range(SERIES_PER_BATCH)]


def stream(
    url_of, model: str, client: str, stop: threading.Event, acknowledged: list[tuple[int, float, float]]
) -> None:
    """Timestamped batches (step t: a value of each of ``series_of(client)``, timestamp T0 + t), each
    retried until acknowledged; (step, first sent at, acknowledged at) kept."""
    t = 0
    with httpx.Client(timeout=30) as client_http:
        while not stop.is_set():
            body = {
                "observations": [
                    {"series": series, "value": float((t + j) % 13) / 4.0, "timestamp": T0 + t}
                    for j, series in enumerate(series_of(client))
                ]
            }
            sent = time.monotonic()
            give_up = sent + CLIENT_GIVES_UP_S
            while True:
                try:
                    response = client_http.post(f"{url_of(t)}/v1/models/{model}/observations", json=body)
                    if response.status_code == 200:
                        break
                    assert response.status_code == 503, response.text  # a shard down: retried; nothing else
                except httpx.TransportError:
                    pass
                if time.monotonic() > give_up:
                    return  # the test fails on the acknowledgements it did not get
                time.sleep(0.05)
            acknowledged.append((t, sent, time.monotonic()))
            t += 1


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except FileNotFoundError:  # gone between the signal and the read
        return False


def startup_breakdown(running: Running, index: int, killed_wall: float) -> str:
    """The new owner's marks since the kill, in seconds since it (where the failover time went): a standby's
    promotion (its warm-up was done before the kill), or a fresh process's start."""
    marks = ray.get(running.actor(index).__ray_call__.remote(lambda self: self.startup.marks))
    return "; ".join(f"{step} +{at - killed_wall:.2f}" for step, at in marks if at >= killed_wall - 0.5)


def failover(running: Running, model: str, kill) -> float:
    """Stream into ``model`` from 2 clients (one per front), ``kill()`` its shard, stream on; every
    acknowledged observation is applied exactly once. The seconds from the start of the kill to the
    acknowledgement of the first request sent once the shard's process was gone."""
    created = httpx.post(f"{running.fronts[0].url}/v1/models", json={"name": model, "config": SMALL_MODEL}, timeout=60)
    assert created.status_code in (201, 409), created.text  # 409: an earlier test made it
    stop = threading.Event()
    acks: dict[str, list[tuple[int, float, float]]] = {"s0": [], "s1": []}
    threads = [
        threading.Thread(target=stream, args=(lambda t, i=i: running.fronts[(t + i) % 2].url, model, s, stop, acks[s]))
        for i, s in enumerate(acks)
    ]
    for thread in threads:
        thread.start()
    try:
        time.sleep(2.0)
        pid = ray.get(running.actor(shard_of(model, SHARDS)).pid.remote())
        kill_started, kill_wall = time.monotonic(), time.time()
        kill()
        while process_exists(pid):  # a process of a removed node may still answer for a moment
            assert time.monotonic() < kill_started + 30, f"shard process {pid} still alive 30 s after the kill"
            time.sleep(0.01)
        killed_at = time.monotonic()
        deadline = killed_at + KILL_WAIT_S  # the tests assert the failover's time themselves (under 30 s, 90 s)

        def first_after() -> float | None:  # the first acknowledgement of a request sent after the kill
            return min((at for a in acks.values() for _, sent, at in a if sent > killed_at), default=None)

        while time.monotonic() < deadline and first_after() is None:
            time.sleep(0.05)
        recovered_at = first_after()
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=CLIENT_GIVES_UP_S + 30)  # a client ends once its last request is acknowledged
    assert recovered_at is not None, f"no write was acknowledged within {KILL_WAIT_S} s of the kill"
    print(f"  {startup_breakdown(running, shard_of(model, SHARDS), kill_wall)}")
    logged: dict[str, list[float]] = {series: [] for client in acks for series in series_of(client)}
    for record in read_stream(running.postgres.url, f"shard-{shard_of(model, SHARDS)}"):  # a reader: no fencing
        assert record.kind != "observe_chunked"  # one value per series in each batch: one tick, one record
        if record.model == model and record.kind == "observe":
            for series, _, timestamp in record.payload["items"]:
                if series in logged:
                    logged[series].append(timestamp)
    assert any(logged.values())  # the log after the newest checkpoint holds some of them
    for client, acked in acks.items():
        assert len(acked) > 5 and [t for t, _, _ in acked] == list(range(len(acked)))  # every one acknowledged
        for series in series_of(client):
            # The log after the newest checkpoint (the restart checkpoints and prunes): in order, once each.
            assert sorted(logged[series]) == logged[series] and len(set(logged[series])) == len(logged[series])
            assert set(logged[series]) <= {T0 + t for t, _, _ in acked}
            status, body = running.shard_call(shard_of(model, SHARDS), "GET", f"/v1/models/{model}/series/{series}")
            stats = orjson.loads(body)
            assert status == 200 and stats["count"] == len(acked)  # every acknowledged observation, exactly once
            assert stats["last_timestamp"] == T0 + len(acked) - 1
    return recovered_at - kill_started


def test_a_killed_shard_process_fails_over_without_losing_an_acknowledged_write(running: Running) -> None:
    index = shard_of("alpha", SHARDS)
    pid = ray.get(running.actor(index).pid.remote())
    seconds = failover(running, "alpha", lambda: os.kill(pid, signal.SIGKILL))
    print(f"failover after SIGKILL of the shard process: {seconds:.2f} s")
    assert ray.get(running.actor(index).pid.remote()) != pid  # the standby, promoted
    assert seconds < 30


def test_a_lost_worker_node_fails_over_without_losing_an_acknowledged_write(running: Running) -> None:
    index = shard_of("delta", SHARDS)
    node_id = ray.get(running.actor(index).__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
    node = next(w for w in running.workers if w.node_id == node_id)
    pid = ray.get(running.actor(index).pid.remote())
    standby = next(a for a in running.actors(index) if ray.get(a.current_role.remote()) == "standby")
    assert ray.get(standby.node_id.remote()) != node_id  # the standby waits on another node than its owner
    seconds = failover(running, "delta", lambda: running.cluster.remove_node(node, allow_graceful=False))
    print(f"failover after the loss of the shard's node: {seconds:.2f} s")
    moved_to = ray.get(running.actor(index).__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
    assert moved_to != node_id and ray.get(running.actor(index).pid.remote()) != pid  # restarted elsewhere
    assert seconds < 90


def test_a_shard_whose_log_connection_broke_restarts_and_serves_again(running: Running) -> None:
    index = shard_of("alpha", SHARDS)
    pid = ray.get(running.actor(index).pid.remote())
    incarnations = ray.get(running.actor(index).__ray_call__.remote(lambda self: self.incarnations))
    started = time.time()
    with psycopg.connect(running.postgres.url, autocommit=True) as admin:
        terminated = admin.execute(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = %s) AS t",
            (f"tbptt-online shard-{index}",),
        ).fetchone()[0]
    assert terminated == 1
    url = f"{running.fronts[0].url}/v1/models/alpha/observations"
    before = orjson.loads(running.shard_call(index, "GET", "/v1/models/alpha/series/s9")[1]).get("count", 0)
    body = {"series": "s9", "value": 1.25, "timestamp": T0 + 10_000}
    first = httpx.post(url, json=body, timeout=60)
    # nothing acknowledged on the broken connection: the write finds it broken, or the shard found it first
    # (its epoch check, every EPOCH_CHECK_S on the same connection, broke on it and the mending began: seen
    # once in CI), or another read of the log on that connection found it broken first and the write is
    # refused with what it found ("the database connection was lost": seen once in a CI run beside
    # benchmarks, session 44), or the shard had already restarted on a new connection and the write is its
    # first (200: seen once in CI, session 39, on a busy machine); each way the observation applies once, below
    if first.status_code != 200:
        detail = first.json()["detail"]
        assert first.status_code == 503, first.text
        assert "connection failed" in detail or "connection was lost" in detail, detail
        deadline = time.monotonic() + 60
        while (again := httpx.post(url, json=body, timeout=60)).status_code != 200:  # the same observation, retried
            assert again.status_code == 503 and time.monotonic() < deadline, again.text
            time.sleep(0.2)
    assert ray.get(running.actor(index).pid.remote()) == pid  # it restarted in place: a new app, a new epoch
    gained, restarts = ray.get(
        running.actor(index).__ray_call__.remote(
            lambda self: (
                self.incarnations - incarnations,
                [step for step, at in self.startup.marks if step.startswith("restart in place") and at >= started],
            )
        )
    )
    # Each restart in place has its reason, the first the terminated connection. A second one is the design
    # too, seen once in CI (session 62, 2,685 tests on 2 cores): the new connection broken in turn, by a
    # statement past its deadline on the loaded machine; the observation still applies once, below.
    assert gained >= 1 and len(restarts) == gained, (gained, restarts)
    assert "connection" in restarts[0], restarts
    status, stats = running.shard_call(index, "GET", "/v1/models/alpha/series/s9")
    assert status == 200 and orjson.loads(stats)["count"] == before + 1  # applied once


def test_an_untimestamped_batch_retried_with_its_key_after_a_kill_applies_once(running: Running) -> None:
    """The call is acknowledged, the shard's process is SIGKILLed (its memory of the key gone), the call
    is re-sent with the same key (a front that lost the reply): the restarted shard answers it with the
    first answer from its journaled key, and the batch counts once."""
    model = "alpha"
    index = shard_of(model, SHARDS)
    created = httpx.post(f"{running.fronts[0].url}/v1/models", json={"name": model, "config": SMALL_MODEL}, timeout=60)
    assert created.status_code in (201, 409), created.text  # 409: an earlier test made it
    body = {"observations": [{"series": "untimed", "value": v} for v in (0.25, 0.5, 0.75)]}
    post = ForwardedRequest(
        "POST", f"/v1/models/{model}/observations", [("content-type", "application/json")], orjson.dumps(body)
    )
    status, stats = running.shard_call(index, "GET", f"/v1/models/{model}/series/untimed")
    before = orjson.loads(stats)["count"] if status == 200 else 0
    key = secrets.token_hex(8)
    first = ray.get(running.actor(index).handle.remote(key, [post]), timeout=60)[0]
    assert first.status == 200, first.body
    pid = ray.get(running.actor(index).pid.remote())
    os.kill(pid, signal.SIGKILL)
    while process_exists(pid):
        time.sleep(0.01)
    again = ray.get(running.actor(index).handle.remote(key, [post]), timeout=120)[0]  # the standby, promoted
    assert ray.get(running.actor(index).pid.remote()) != pid  # another process: the key came from the log
    assert again.status == 200 and again.body == first.body  # the first answer, byte for byte
    status, stats = running.shard_call(index, "GET", f"/v1/models/{model}/series/untimed")
    assert status == 200 and orjson.loads(stats)["count"] == before + 3  # applied once


class Tapped(NamedTuple):
    seq: int
    model: str
    kind: str
    payload: Any


@pytest.mark.timeout(900)
def test_kills_at_random_moments_lose_nothing_and_leave_the_state_a_library_forecaster_reaches(
    running: Running,
) -> None:
    """SIGKILL the shard KILLS times at random moments (every third time its whole node) while 4 clients
    stream timestamped batches (3 series each) and retry; a tap reads the shard's log as it grows
    (checkpoints prune it): every acknowledged observation is journaled once, and the model equals,
    bit for bit, a library Forecaster fed the journaled batches in order."""
    model, index = "kappa", shard_of("kappa", SHARDS)
    stream_name = f"shard-{index}"
    created = httpx.post(f"{running.fronts[0].url}/v1/models", json={"name": model, "config": SMALL_MODEL}, timeout=60)
    assert created.status_code == 201, created.text
    records: dict[int, Any] = {
        r.seq: Tapped(r.seq, r.model, r.kind, r.payload) for r in read_stream(running.postgres.url, stream_name)
    }
    stop, tapping = threading.Event(), threading.Event()

    def tap() -> None:  # every record, before a restart's checkpoint prunes it (a restart takes seconds)
        with psycopg.connect(running.postgres.url, autocommit=True) as conn:
            while not tapping.is_set():
                rows = conn.execute(
                    "SELECT seq, model, kind, payload FROM log_events WHERE stream = %s AND seq > %s ORDER BY seq",
                    (stream_name, max(records, default=0)),
                ).fetchall()
                for seq, name, kind, payload in rows:
                    records[seq] = Tapped(seq, name, kind, orjson.loads(payload))
                time.sleep(0.2)

    acks: dict[str, list[tuple[int, float, float]]] = {f"s{i}": [] for i in range(4)}  # 4 clients, 2 per front
    threads = [threading.Thread(target=tap)] + [
        threading.Thread(target=stream, args=(lambda t, i=i: running.fronts[(t + i) % 2].url, model, s, stop, acks[s]))
        for i, s in enumerate(acks)
    ]
    for thread in threads:
        thread.start()
    chance = random.Random(13)
    failovers = []
    try:
        for kill in range(KILLS):
            time.sleep(chance.uniform(0.2, 2.0))
            pid = ray.get(running.actor(index).pid.remote())
            what = "node" if kill % 3 == 2 else "process"  # every third kill takes the shard's whole node
            if what == "node":
                node_id = ray.get(
                    running.actor(index).__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                )
                node = next(w for w in running.cluster.worker_nodes if w.node_id == node_id)
                running.workers.append(running.cluster.add_node(num_cpus=2))  # a node to fail over to
                killed_at, killed_wall = time.monotonic(), time.time()
                running.cluster.remove_node(node, allow_graceful=False)
            else:
                killed_at, killed_wall = time.monotonic(), time.time()
                os.kill(pid, signal.SIGKILL)
            while process_exists(pid):  # measured from a request sent once the shard's process is gone
                assert time.monotonic() < killed_at + 30, f"shard process {pid} still alive 30 s after the kill"
                time.sleep(0.01)
            gone_at = time.monotonic()
            while not any(sent > gone_at for a in acks.values() for _, sent, _ in a):
                waited = time.monotonic() - killed_at
                assert waited < KILL_WAIT_S, f"no write acknowledged within {KILL_WAIT_S} s of a kill"
                time.sleep(0.05)
            failovers.append(min(at for a in acks.values() for _, sent, at in a if sent > gone_at) - killed_at)
            print(f"kill {len(failovers)} ({what}): failover {failovers[-1]:.2f} s", flush=True)
            print(f"  {startup_breakdown(running, index, killed_wall)}", flush=True)
        time.sleep(1.0)
    finally:
        stop.set()
        for thread in threads[1:]:
            thread.join(timeout=CLIENT_GIVES_UP_S + 30)
        time.sleep(0.5)
        tapping.set()
        threads[0].join(timeout=30)
    print(f"{KILLS} kills: failover s min {min(failovers):.2f} max {max(failovers):.2f}, all {failovers}")

    assert sorted(records) == list(range(min(records), max(records) + 1))  # the tap missed no record since the start
    ours = [records[seq] for seq in sorted(records) if records[seq].model == model]
    assert [r.kind for r in ours].count("create_model") == 1
    assert "observe_chunked" not in [r.kind for r in ours]  # one value per series in each batch: one tick each
    observe = [r for r in ours if r.kind == "observe"]
    journaled = [(series, ts) for r in observe for series, _, ts in r.payload["items"]]
    assert len(journaled) == len(set(journaled))  # none twice
    for client, acked in acks.items():
        assert len(acked) > KILLS and [t for t, _, _ in acked] == list(range(len(acked)))
        for series in series_of(client):
            assert {(series, float(T0 + t)) for t, _, _ in acked} <= set(journaled)  # every acknowledged one

    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    for r in observe:  # the same batches, in the same order, through the library without any crash
        reference.observe_many([(series, value) for series, value, _ in r.payload["items"]])
    status, body = running.shard_call(index, "GET", f"/v1/models/{model}/checkpoint")
    assert status == 200
    assert_bitwise_equal(decode_model_checkpoint(body).forecaster, reference.state_dict())
    for series in (series for client in acks for series in series_of(client)):
        status, body = running.shard_call(index, "GET", f"/v1/models/{model}/series/{series}/forecast?horizon=3")
        got, want = orjson.loads(body)["forecast"], reference.forecast(series, horizon=3)
        assert status == 200 and [s["mean"] for s in got] == want.mean and [s["upper"] for s in got] == want.upper
