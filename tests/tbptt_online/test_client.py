"""tbptt_online.client against the real service: the async twin in-process (lifespan included), the sync
client against a real ``tbptt-online serve`` process on 127.0.0.1, retries only where idempotent."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

from benchmarks.server_process import ServerProcess, free_port
from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.client import (
    ApiError,
    AsyncClient,
    Client,
    Conflict,
    NotFound,
    TransportFailure,
    Unauthorized,
    Unprocessable,
)
from tbptt_service.api.app import create_app
from tbptt_service.settings import Settings
from tests.service.conftest import SMALL_MODEL
from tests.service.live_server import running_server

PACKAGE = Path(__file__).resolve().parents[2] / "tbptt_online"
T0 = 1_700_000_000


# -- fixtures ---------------------------------------------------------------------------------------
@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def in_process_app(tmp_path: Path, **settings: str) -> AsyncIterator[httpx.ASGITransport]:
    app = create_app(Settings(state_dir=tmp_path / "state", default_model=SMALL_MODEL, **settings))
    async with app.router.lifespan_context(app):
        await app.state.loading
        yield httpx.ASGITransport(app=app)


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server process for this module's sync tests."""
    with running_server(tmp_path_factory.mktemp("client-server")) as server:
        yield server


class FlakyTransport(httpx.BaseTransport):
    """Wraps a real transport: the first ``fail`` requests fail as ``mode`` says, then all pass through.

    ``connect``: the request never reaches the server; ``lost``: the server applies it and the answer is
    lost on the way back; ``503``: a 503 answer without reaching the server.
    """

    def __init__(self, inner: httpx.BaseTransport, fail: int, mode: str) -> None:
        self.inner, self.fail, self.mode, self.requests = inner, fail, mode, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests > self.fail:
            return self.inner.handle_request(request)
        if self.mode == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if self.mode == "lost":
            response = self.inner.handle_request(request)
            response.read()  # the server applied it ...
            response.close()
            raise httpx.ReadError("connection reset after the request was sent", request=request)
        return httpx.Response(503, json={"detail": "the service is still loading its state"}, request=request)

    def close(self) -> None:
        self.inner.close()


class CountingAsyncTransport(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport, fail_with_503: int = 0) -> None:
        self.inner, self.fail_with_503, self.requests = inner, fail_with_503, []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        if len(self.requests) <= self.fail_with_503:
            return httpx.Response(503, json={"detail": "loading"}, request=request)
        return await self.inner.handle_async_request(request)


# -- the package boundary ---------------------------------------------------------------------------
def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_client_package_imports_only_httpx_and_the_standard_library() -> None:
    for path in sorted((PACKAGE / "client").glob("*.py")):
        for name in imported_modules(path):
            top = name.split(".")[0]
            allowed = top in sys.stdlib_module_names or top == "httpx" or name.startswith("tbptt_online.client")
            assert allowed, f"{path.name} imports {name}"


def test_no_core_module_imports_the_client() -> None:
    for path in sorted(PACKAGE.glob("*.py")):
        assert not any(n.startswith("tbptt_online.client") for n in imported_modules(path)), path.name


# -- the async twin, in-process ---------------------------------------------------------------------
@pytest.mark.anyio
async def test_async_client_results_match_the_library_fed_the_same_stream(tmp_path: Path) -> None:
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    values = [1.0, 2.5, None, 3.5, 3.0, 4.5, 4.0, 5.5, 5.0]
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        first = await client.observe("default", "a", values[0], timestamp=T0)
        rest = await client.observe_many("default", [("a", v, T0 + 60 * i) for i, v in enumerate(values) if i], 3)
        forecast = await client.forecast("default", "a", horizon=4, level=0.8)
        stats = await client.series_stats("default", "a")
        info = await client.get_model("default")
    expected = reference.observe_many([("a", v) for v in values])
    got = [first, *rest]
    assert [r.step for r in got] == [e.step for e in expected] == list(range(1, 10))
    assert [r.forecast_made.mean for r in got] == [e.forecast_made.mean for e in expected]
    assert [r.forecast_next.upper for r in got] == [e.forecast_next.upper for e in expected]
    assert [r.timestamp for r in got] == [float(T0 + 60 * i) for i in range(9)]
    fc = reference.forecast("a", horizon=4, level=0.8)
    assert (forecast.mean, forecast.lower, forecast.upper) == (fc.mean, fc.lower, fc.upper)
    assert [s.step for s in forecast.steps] == [1, 2, 3, 4] and forecast.step == 9
    ref_stats = reference.series_stats("a")
    assert (stats.count, stats.mae, stats.naive_rmse) == (9, ref_stats.mae, ref_stats.naive_rmse)
    assert (stats.recent_mae, stats.recent_naive_mae) == (ref_stats.recent_mae, ref_stats.recent_naive_mae)
    assert stats.recent_relative_mae == ref_stats.recent_mae / ref_stats.recent_naive_mae
    assert stats.last_timestamp == float(T0 + 480)
    assert (stats.multiplicative, stats.never_negative) == (ref_stats.multiplicative, ref_stats.never_negative)
    assert info.updates.updates == reference.update_stats().updates > 0 and info.observations == 9
    # the members read as the library's (a new user, session 50: the client's were plain tuples, ``.name`` failed)
    assert [(m.name, m.mae, m.weight) for m in stats.members] == [(m.name, m.mae, m.weight) for m in ref_stats.members]
    assert stats.members and tuple(stats.members[0]) == (
        stats.members[0].name,
        stats.members[0].mae,
        stats.members[0].weight,
    )
    # the coverage per horizon as the library's, by the same names
    assert stats.coverage_by_horizon and [tuple(c) for c in stats.coverage_by_horizon] == [
        (c.horizon, c.coverage, c.scored, c.recent) for c in ref_stats.coverage_by_horizon
    ]


@pytest.mark.anyio
async def test_observe_many_sends_one_request_per_batch_in_order(tmp_path: Path) -> None:
    async with in_process_app(tmp_path) as app:
        counting = CountingAsyncTransport(app)
        async with AsyncClient("http://service", transport=counting) as client:
            items = ({"series": f"s{i % 3}", "value": float(i)} for i in range(10))  # a generator, chunked lazily
            results = await client.observe_many("default", items, batch_size=4)
    assert [m for m, _ in counting.requests] == ["POST"] * 3
    assert [(r.series, r.value) for r in results] == [(f"s{i % 3}", float(i)) for i in range(10)]
    assert [r.step for r in results] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]


@pytest.mark.anyio
async def test_models_and_series_can_be_created_listed_paged_and_deleted(tmp_path: Path) -> None:
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        created = await client.create_model("small", hidden_size=4, k1=2, k2=4)
        assert (created.name, created.config["hidden_size"], created.series_count) == ("small", 4, 0)
        assert sorted(m.name for m in await client.list_models()) == ["default", "small"]
        await client.observe_many("small", [(f"host/{i:02d}", 1.0) for i in range(7)])  # '/' in a series name
        page = await client.list_series("small", offset=0, limit=3)
        assert (page.series, page.total, page.next_offset) == (["host/00", "host/01", "host/02"], 7, 3)
        assert [name async for name in client.iter_series("small", page_size=2)] == [f"host/{i:02d}" for i in range(7)]
        assert (await client.series_stats("small", "host/03")).count == 1
        stats = await client.series_stats_page("small", offset=2, limit=2)  # each series' own, in sorted order
        assert (stats.total, stats.next_offset) == (7, 4)
        assert stats.series == [await client.series_stats("small", name) for name in ("host/02", "host/03")]
        forecasts = await client.forecast_page("small", horizon=2, level=0.5, offset=2, limit=2)
        assert (forecasts.total, forecasts.next_offset) == (7, 4)
        assert [(f.series, f.horizon, f.level, len(f.steps)) for f in forecasts.forecasts] == [
            ("host/02", 2, 0.5, 2),
            ("host/03", 2, 0.5, 2),
        ]
        every = [f.series async for f in client.iter_forecasts("small", horizon=2, page_size=3)]
        assert every == [f"host/{i:02d}" for i in range(7)]
        await client.delete_series("small", "host/03")
        with pytest.raises(NotFound, match="host/03"):
            await client.series_stats("small", "host/03")
        await client.delete_model("small")
        with pytest.raises(NotFound) as error:
            await client.get_model("small")
    assert error.value.status_code == 404 and "small" in error.value.detail


@pytest.mark.anyio
async def test_the_clients_walks_read_each_series_once_while_earlier_names_arrive(tmp_path: Path) -> None:
    # a hostile test (session 60, F8): a walk by offset repeated rows while series that sort earlier arrived
    # between two pages; the iterators walk by the cursor (after=) since session 61
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        names = [f"m{i:02d}" for i in range(9)]
        await client.observe_many("default", [(name, 1.0) for name in names])
        walked, forecast = [], []
        async for name in client.iter_series("default", page_size=2):
            walked.append(name)
            await client.observe("default", f"a{len(walked):02d}", 1.0)  # sorts before every name walked
        async for f in client.iter_forecasts("default", horizon=1, page_size=2):
            forecast.append(f.series)
            await client.observe("default", f"0{len(forecast):02d}", 1.0)  # before every name there
        stats = await client.series_stats_page("default", limit=5, after="m06")
    assert walked == names
    assert forecast == [f"a{i:02d}" for i in range(1, 10)] + names
    assert ([s.series for s in stats.series], stats.next_after, stats.next_offset) == (["m07", "m08"], None, None)


@pytest.mark.anyio
async def test_a_series_named_as_a_dot_segment_is_asked_for_by_its_name(tmp_path: Path) -> None:
    # '/series/./forecast' is '/series/forecast' once a URL's dot segments are removed: the client
    # asked for the series 'forecast' (its statistics, decoded as a forecast) instead of '.'
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        await client.observe_many("default", [("forecast", 1.0), ("forecast", 2.0)])
        with pytest.raises(NotFound, match=r"series '\.' is unknown"):
            await client.forecast("default", ".", horizon=2)
        with pytest.raises(NotFound, match=r"series '\.\.' is unknown"):
            await client.series_stats("default", "..")
        assert (await client.series_stats("default", "forecast")).count == 2


@pytest.mark.anyio
async def test_refusals_raise_typed_errors_with_the_server_message_and_index(tmp_path: Path) -> None:
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        await client.observe("default", "a", 1.0, timestamp=T0 + 60)
        with pytest.raises(Conflict) as older:
            await client.observe_many("default", [("b", 1.0, T0), ("a", 2.0, T0)])
        with pytest.raises(Unprocessable) as wrong_dimension:
            await client.observe_many("default", [("c", 1.0), ("c", [1.0, 2.0])])
        with pytest.raises(Conflict):
            await client.create_model("default")
        assert (await client.series_stats("default", "a")).count == 1  # nothing of the refused batches applied
        with pytest.raises(NotFound):
            await client.series_stats("default", "b")
    assert older.value.status_code == 409 and older.value.index == 1 and "older" in older.value.detail
    assert wrong_dimension.value.index == 1 and "feature" in wrong_dimension.value.detail


def test_values_that_json_cannot_carry_are_refused_or_mapped_before_sending() -> None:
    with Client("http://127.0.0.1:9") as client, pytest.raises(ValueError, match="must be finite"):
        client.observe("default", "a", float("inf"))


@pytest.mark.parametrize("value", [True, False, "3", b"3", [1.0, True], 10**400, 1e37, [1.0, -1e40]], ids=repr)
def test_values_the_service_refuses_are_refused_before_sending(value) -> None:
    """The service refuses booleans and text as numbers (422); the client sent True as 1.0 and "3" as 3.0,
    and an int past a float's range raised OverflowError; a value past ±1e36 was sent and refused by the server
    though README said the client refused it (a hostile test, session 57). Nothing is sent: port 9 has no server."""
    with Client("http://127.0.0.1:9", retries=0) as client, pytest.raises(ValueError, match="is invalid"):
        client.observe("default", "a", value)


def test_the_clients_bound_on_a_value_is_the_services() -> None:
    from tbptt_online.client import calls
    from tbptt_online.values import MAX_ABS_VALUE

    assert calls.MAX_ABS_VALUE == MAX_ABS_VALUE
    assert calls.encode_value(MAX_ABS_VALUE) == MAX_ABS_VALUE and calls.encode_value(-MAX_ABS_VALUE) == -MAX_ABS_VALUE


@pytest.mark.anyio
async def test_a_refusal_in_a_later_batch_names_the_callers_element_and_what_was_applied(tmp_path: Path) -> None:
    # a hostile test (session 57): element 230 of 250 sent 100 a request was reported as "observation 30" (an
    # element applied before it), and nothing said that the first 200 were applied
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        await client.observe("default", "old", 1.0, timestamp=T0 + 1000)
        items = [(f"n{i}", 1.0, T0) for i in range(10)]
        items[7] = ("old", 2.0, T0)  # older than the series' last timestamp: 409
        with pytest.raises(Conflict) as refused:
            await client.observe_many("default", items, batch_size=4)
        assert (await client.get_model("default")).series_count == 1 + 4  # the first request applied, no more
    assert refused.value.index == 7 and refused.value.offset == 4 and refused.value.refused == [7]
    assert [r.series for r in refused.value.applied] == ["n0", "n1", "n2", "n3"]
    assert "(in the request of elements 4..; the 4 before it were applied)" in str(refused.value)

    items = [(f"v{i}", 1.0) for i in range(250)]
    items[230] = ("v230", 1e37)  # past the bound: refused before its request is sent
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        with pytest.raises(ValueError, match=r"^observation 230: value 1e\+37 is invalid.* \(the 200 before this"):
            await client.observe_many("default", items, batch_size=100)
        assert (await client.get_model("default")).series_count == 5 + 200  # (the two requests before it)


def test_the_sync_client_names_the_callers_element_of_a_later_batch(live_server: ServerProcess) -> None:
    items = [(f"late-{i}", 1.0, T0) for i in range(10)]
    items[7] = ("late-old", 2.0, T0)
    with Client(live_server.url) as client:
        client.create_model("late", **SMALL_MODEL)  # (the module's server: its default model is another test's)
        client.observe("late", "late-old", 1.0, timestamp=T0 + 1000)
        with pytest.raises(Conflict) as refused:
            client.observe_many("late", items, batch_size=4)
        assert client.get_model("late").series_count == 1 + 4
    assert (refused.value.index, refused.value.offset) == (7, 4)
    assert [r.series for r in refused.value.applied] == [f"late-{i}" for i in range(4)]


@pytest.mark.anyio
async def test_503_is_retried_for_reads_and_keyed_observations_not_for_untimestamped_ones(tmp_path: Path) -> None:
    async with in_process_app(tmp_path) as app:
        reads = CountingAsyncTransport(app, fail_with_503=2)
        async with AsyncClient("http://service", transport=reads, retries=3, backoff=0) as client:
            assert (await client.get_model("default")).name == "default"
        writes = CountingAsyncTransport(app, fail_with_503=1)
        async with AsyncClient("http://service", transport=writes, retries=3, backoff=0) as client:
            with pytest.raises(ApiError) as refused:
                await client.observe("default", "a", 1.0)  # no timestamp, no key: not idempotent, sent once
        keyed = CountingAsyncTransport(app, fail_with_503=1)
        async with AsyncClient("http://service", transport=keyed, retries=3, backoff=0) as client:
            result = await client.observe("default", "a", 1.0, idempotency_key="k-a")  # keyed: retried
            assert (await client.series_stats("default", "a")).count == 1
        missing = CountingAsyncTransport(app)
        async with AsyncClient("http://service", transport=missing, retries=3, backoff=0) as client:
            with pytest.raises(NotFound):
                await client.forecast("default", "nope")
    assert len(reads.requests) == 3 and len(writes.requests) == 1 and len(missing.requests) == 1
    assert refused.value.status_code == 503
    assert keyed.requests[:2] == [("POST", "/v1/models/default/observations")] * 2 and result.step == 1


# -- the sync client, against a real server process --------------------------------------------------
def test_sync_client_talks_to_a_real_server(live_server: ServerProcess) -> None:
    with Client(live_server.url) as client:
        assert client.ready()
        results = client.observe_many("default", [("cpu", 10.0 + i, T0 + 60 * i) for i in range(6)], batch_size=4)
        assert [r.step for r in results] == [1, 2, 3, 4, 5, 6]
        forecast = client.forecast("default", "cpu", horizon=3)
        assert forecast.step == 6 and len(forecast.mean) == 3 and forecast.level == 0.9
        assert all(lo <= m <= hi for m, lo, hi in zip(forecast.mean, forecast.lower, forecast.upper, strict=True))
        assert client.series_stats("default", "cpu").count == 6
        page = client.forecast_page("default", horizon=3)  # the one series' forecast, in a page of its own
        assert (page.total, page.next_offset, [f.series for f in page.forecasts]) == (1, None, ["cpu"])
        assert page.forecasts[0].mean == forecast.mean and page.forecasts[0].steps == forecast.steps
        assert list(client.iter_forecasts("default", horizon=3)) == page.forecasts


@pytest.mark.parametrize("mode", ["connect", "lost", "503"])
def test_timestamped_observations_are_retried_and_applied_exactly_once(live_server: ServerProcess, mode: str) -> None:
    flaky = FlakyTransport(httpx.HTTPTransport(), fail=2, mode=mode)
    series = f"retry-{mode}"
    with Client(live_server.url, transport=flaky, retries=3, backoff=0) as client:
        result = client.observe("default", series, 4.2, timestamp=T0)
    with Client(live_server.url) as client:
        again = client.observe("default", series, 4.2, timestamp=T0)  # the server's idempotent answer
        assert client.series_stats("default", series).count == 1  # even with 'lost', applied once
    assert flaky.requests == 3 and result.step == 1 and again == result


def test_an_untimestamped_observation_is_never_resent(live_server: ServerProcess) -> None:
    flaky = FlakyTransport(httpx.HTTPTransport(), fail=1, mode="lost")
    with (
        Client(live_server.url, transport=flaky, retries=3, backoff=0) as client,
        pytest.raises(TransportFailure, match="ReadError"),
    ):
        client.observe("default", "untimed", 1.0)
    with Client(live_server.url) as client:
        assert client.series_stats("default", "untimed").count == 1  # applied once; the client did not resend it
    assert flaky.requests == 1


def test_a_keyed_batch_whose_answer_was_lost_is_resent_under_its_key_and_applied_once(
    live_server: ServerProcess,
) -> None:
    flaky = FlakyTransport(httpx.HTTPTransport(), fail=1, mode="lost")
    with Client(live_server.url, transport=flaky, retries=3, backoff=0) as client:
        results = client.observe_many("default", [("keyed", 1.0), ("keyed", 2.0)], idempotency_key="feed-1")
    with Client(live_server.url) as client:
        assert client.series_stats("default", "keyed").count == 2  # the retry got the key's first answer
    assert flaky.requests == 2 and [r.step for r in results] == [1, 2]


def test_a_timestamped_batch_with_two_values_of_one_series_is_not_resent(live_server: ServerProcess) -> None:
    # a hostile test (session 48): its retry after a lost answer was refused with 409 (the server keeps only a
    # series' last timestamp), though the batch was applied, and the CLI's feed then said "nothing of it was
    # applied"; such a batch is not retried: a lost answer is told as one
    flaky = FlakyTransport(httpx.HTTPTransport(), fail=1, mode="lost")
    batch = [("twice", 1.0, T0), ("twice", 2.0, T0 + 60)]
    with (
        Client(live_server.url, transport=flaky, retries=3, backoff=0) as client,
        pytest.raises(TransportFailure, match="ReadError"),
    ):
        client.observe_many("default", batch)
    with Client(live_server.url) as client:
        assert client.series_stats("default", "twice").count == 2  # applied once, as sent
    assert flaky.requests == 1


def test_an_unreachable_server_raises_transport_failure_after_the_retries() -> None:
    flaky = FlakyTransport(httpx.HTTPTransport(), fail=10, mode="connect")
    with Client(f"http://127.0.0.1:{free_port()}", transport=flaky, retries=2, backoff=0) as client:
        assert not client.ready()
        with pytest.raises(TransportFailure, match="ConnectError"):
            client.forecast("default", "cpu")
    assert flaky.requests == 1 + 3  # ready() once, then the first try and two retries


@pytest.mark.anyio
async def test_the_api_key_is_sent_as_a_bearer_token(tmp_path: Path) -> None:
    async with in_process_app(tmp_path, api_key="s3cret") as app:
        async with AsyncClient("http://service", transport=app) as anonymous:
            with pytest.raises(Unauthorized) as refused:
                await anonymous.list_models()
        async with AsyncClient("http://service", transport=app, api_key="s3cret") as client:
            assert [m.name for m in await client.list_models()] == ["default"]
    assert refused.value.status_code == 401 and "API key" in refused.value.detail


def test_an_idempotency_key_past_the_servers_bound_is_refused_before_sending() -> None:
    # a review (session 48): a 254-character key went out as 'KEY/0', 256 characters, and the server answered 422
    from tbptt_online.client.calls import batch_key, observe

    with pytest.raises(ValueError, match=r"idempotency key .* must be 1 to 255 characters"):
        observe("default", [{"series": "a", "value": 1.0}], batch_key("k" * 254, 0))
    assert observe("default", [{"series": "a", "value": 1.0}], batch_key("k" * 253, 0)).idempotent


@pytest.mark.anyio
async def test_the_async_client_reads_an_answer_whole_within_its_timeout_and_refuses_one_not_the_apis() -> None:
    # a hostile test (session 49): an answer dribbled a byte at a time held a client past its timeout, and
    # answers of another shape, NaN or nested too deep left it as KeyError, TypeError or RecursionError
    import asyncio

    import httpx

    from tbptt_online.client import AsyncClient, TransportFailure, UnexpectedAnswer

    async def dribble():
        for _ in range(20):
            await asyncio.sleep(0.1)
            yield b" "

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/models":
            return httpx.Response(200, content=dribble())
        return httpx.Response(200, content=b'{"name": NaN}')

    async with AsyncClient("http://x", timeout=0.5, retries=0, transport=httpx.MockTransport(handler)) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(TransportFailure, match=r"did not arrive whole within 0\.5 s"):
            await client.list_models()
        assert asyncio.get_running_loop().time() - started < 1.5  # the whole answer would take 2 s
        with pytest.raises(UnexpectedAnswer, match="NaN is not a JSON number"):
            await client.get_model("m")


def test_the_client_goes_through_the_proxy_its_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    # a review (session 49): the first bound on a whole answer wrapped httpx's transport, and httpx then read no
    # proxy from the environment (the call went to the address itself: "Name or service not known")
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tbptt_online.client import Client

    asked: list[str] = []

    class Proxy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)  # a proxy is asked for the absolute URL
            self.send_response(200)
            self.send_header("content-length", "14")
            self.end_headers()
            self.wfile.write(b'{"models": []}')

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
        with Client("http://tbptt.invalid", retries=0, timeout=5) as client:
            assert client.list_models() == []
    finally:
        server.shutdown()
        server.server_close()
    assert asked == ["http://tbptt.invalid/v1/models"]


def test_a_client_without_a_timeout_reads_its_answers() -> None:
    # a review (session 49): timeout=None, httpx's "no bound", raised TypeError on every call once the whole
    # answer was bounded by it
    import httpx

    from tbptt_online.client import Client

    answer = httpx.MockTransport(lambda request: httpx.Response(200, content=b'{"models": []}'))
    with Client("http://x", timeout=None, transport=answer) as client:
        assert client.list_models() == []


@pytest.mark.parametrize(
    ("key", "where"), [("s3cret ", "a space at its end"), ("sécret", "'é' at position 1 is not ASCII")]
)
def test_a_client_refuses_an_api_key_no_header_can_carry(key, where) -> None:
    """A hostile test (session 50): ``Client(url, api_key="sécret")`` raised a bare ``UnicodeEncodeError``,
    and a trailing space was sent and stripped by the server, never matching."""
    for make in (Client, AsyncClient):
        with pytest.raises(ValueError, match=f"api_key is invalid: .*{where}"):
            make("http://127.0.0.1:9", api_key=key)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://[::1", "Invalid port: ':1'"),
        ("localhost:8000", "must start with http:// or https:// and name a host"),
        ("http://", "must start with http:// or https:// and name a host"),
        ("http://127.0.0.1:99999", "port 99999 is not one of 1 to 65535"),  # (a review: these three were taken)
        ("http://h:-1", "port -1 is not one of 1 to 65535"),
        ("http://exa mple.com", "host 'exa%20mple.com' is not a host name or address"),
    ],
)
def test_a_client_refuses_a_base_url_it_cannot_send_to(url, problem) -> None:
    """A hostile test (session 51): ``Client("http://[::1")`` raised httpx's ``InvalidURL``, no ``ValueError`` nor
    ``ClientError``; ``localhost:8000`` (the scheme ``localhost``) was taken, and each request failed, retried."""
    for make in (Client, AsyncClient):
        with pytest.raises(ValueError, match=re.escape(f"base_url {url!r} is invalid: {problem}")):
            make(url)


# numpy numbers as ForecasterConfig takes them: each a Python number once sent
NUMPY_CONFIG = {
    "hidden_size": np.int64(4),
    "k1": np.int32(2),
    "k2": 4,
    "lr": np.float32(0.25),
    "season_length": [np.int64(12), 24],
    "hybrid": np.bool_(True),
}
SENT_CONFIG = {"hidden_size": 4, "k1": 2, "k2": 4, "lr": 0.25, "season_length": [12, 24], "hybrid": True}


@pytest.mark.anyio
async def test_a_config_of_numpy_numbers_creates_the_model_as_their_python_numbers_do(tmp_path: Path) -> None:
    """A hostile test (session 51): ``create_model("m", hidden_size=np.int64(8))`` raised json's bare ``TypeError``
    ("Object of type int64 is not JSON serializable"), though ``ForecasterConfig`` takes numpy numbers."""
    async with in_process_app(tmp_path) as app, AsyncClient("http://service", transport=app) as client:
        created = await client.create_model("numpy", **NUMPY_CONFIG)
    assert {field: created.config[field] for field in SENT_CONFIG} == SENT_CONFIG


def test_the_sync_client_creates_a_model_from_numpy_numbers(live_server: ServerProcess) -> None:
    with Client(live_server.url) as client:
        created = client.create_model("numpy", **NUMPY_CONFIG)
        client.delete_model("numpy")
    assert {field: created.config[field] for field in SENT_CONFIG} == SENT_CONFIG


@pytest.mark.parametrize(
    ("value", "problem"),
    [(float("nan"), "nan is invalid: not a finite number"), (object(), "<object .*> is invalid: not a number, text")],
    ids=["nan", "object"],
)
def test_a_config_value_json_cannot_carry_is_refused_naming_its_field(value, problem) -> None:
    # (NaN was json's "Out of range float values are not JSON compliant", an object its TypeError; nothing
    # is sent: port 9 has no server)
    with (
        Client("http://127.0.0.1:9", retries=0) as client,
        pytest.raises(ValueError, match=f"config field 'lr': {problem}"),
    ):
        client.create_model("m", lr=value)
