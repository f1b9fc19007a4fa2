"""Client: the blocking Python client of the tbptt-online service (httpx underneath).

>>> client = Client("http://127.0.0.1:8000", api_key="secret", retries=2)
>>> client.base_url, client.retry_policy.retries
('http://127.0.0.1:8000', 2)
>>> client.close()

Against a running server (``tbptt-online serve``)::

    with Client("http://127.0.0.1:8000") as client:
        result = client.observe("default", "cpu", 0.42, timestamp=1700000000)
        forecast = client.forecast("default", "cpu", horizon=12, level=0.9)
        print(forecast.mean, client.series_stats("default", "cpu").relative_mae)
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from itertools import islice
from types import TracebackType
from typing import Any

import httpx

from tbptt_online.client import calls
from tbptt_online.client.api_key import checked_api_key
from tbptt_online.client.base_url import checked_base_url
from tbptt_online.client.calls import Call, ObservationLike, Timestamp
from tbptt_online.client.deadline import within
from tbptt_online.client.errors import ApiError, TransportFailure
from tbptt_online.client.results import (
    Forecast,
    ForecastPage,
    ModelInfo,
    ObservationResult,
    SeriesPage,
    SeriesStats,
    SeriesStatsPage,
)
from tbptt_online.client.retry import RetryPolicy

DEFAULT_BATCH_SIZE = 1000  # observations per request: below the server's default maximum (5000)


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of at most ``size`` items, lazily (an input generator is never held whole)."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"batch_size={size!r} is invalid: must be an integer >= 1")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def auth_headers(api_key: str | None) -> dict[str, str]:
    """The header that carries ``api_key`` (``ValueError`` for a key no header can carry, ``checked_api_key``)."""
    return {"authorization": f"Bearer {checked_api_key(api_key)}"} if api_key else {}


class Client:
    """Talks to one tbptt-online server. Every method raises :class:`ApiError` (with the
    status and the server's message) for an error answer and :class:`TransportFailure`
    when no answer came; idempotent calls are first retried ``retries`` times with backoff.
    A ``base_url`` or ``api_key`` no request can be sent with is a ``ValueError`` naming it, at once.

    ``transport`` replaces the network (an ``httpx`` transport: tests, unix sockets).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = checked_base_url(base_url)  # (httpx raised InvalidURL, no ValueError, at the next line)
        self.timeout = timeout
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff)
        self._http = httpx.Client(
            base_url=self.base_url, headers=auth_headers(api_key), timeout=timeout, transport=transport
        )

    # -- plumbing -------------------------------------------------------------------
    def __enter__(self) -> Client:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: Call) -> Any:
        attempts = 1 + (self.retry_policy.retries if call.idempotent else 0)
        for attempt in range(attempts):
            retry_after = None
            try:
                sent = time.monotonic()
                response = self._http.send(self._http.build_request(**call.request_args()), stream=True)
                try:
                    within(response, sent, self.timeout).read()  # the whole answer within timeout, not per read
                finally:
                    response.close()
            except httpx.TransportError as error:
                if attempt + 1 == attempts:
                    raise TransportFailure(f"{call.method} {self.base_url}{call.path}: {error!r}") from error
            else:
                if attempt + 1 == attempts or not self.retry_policy.should_retry_status(response.status_code):
                    return call.result(response)
                retry_after = response.headers.get("retry-after")
            time.sleep(self.retry_policy.delay(attempt, retry_after))
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- observations ---------------------------------------------------------------
    def observe(
        self, model: str, series: str, value: Any, timestamp: Timestamp = None, idempotency_key: str | None = None
    ) -> ObservationResult:
        """Send one value (a number, a list of d numbers, or None/NaN for missing).

        ``timestamp``: unix seconds, ISO-8601 text or a ``datetime``; timestamps must increase per
        series, and a timestamped value is retried on failure (the server answers its repeat with the
        first result). ``idempotency_key``: sent as the request's ``Idempotency-Key``, which makes an
        untimestamped value safe to retry too, while the server holds the key (README, "Idempotency keys").
        """
        item = calls.encode_observation({"series": series, "value": value, "timestamp": timestamp})
        return self._send(calls.observe(model, [item], idempotency_key))[0]

    def observe_many(
        self,
        model: str,
        observations: Iterable[ObservationLike],
        batch_size: int = DEFAULT_BATCH_SIZE,
        idempotency_key: str | None = None,
    ) -> list[ObservationResult]:
        """Send many observations, ``batch_size`` per request, in order; results in the order given.

        Each item is ``{"series", "value", "timestamp"?}`` or ``(series, value[, timestamp])``.
        Each request is atomic on the server; if one fails, the earlier ones stay applied: its
        ``ApiError``'s ``index`` is the element of ``observations`` and ``applied`` the earlier requests'
        results. A request is retried on failure when every value has a timestamp and no series is in
        it twice (the server keeps a series' last timestamp only: the retry of two values of one series
        got 409), or when it is keyed: with ``idempotency_key`` K, request i is sent with ``Idempotency-Key: K/i``.
        """
        results: list[ObservationResult] = []
        for i, chunk in enumerate(chunks(observations, batch_size)):
            batch = calls.encode_batch(chunk, len(results))
            try:
                results.extend(self._send(calls.observe(model, batch, calls.batch_key(idempotency_key, i))))
            except ApiError as error:  # its index the caller's element, the earlier requests' results with it
                raise error.in_batches(len(results), results) from None
        return results

    # -- forecasts and statistics ---------------------------------------------------
    def forecast(self, model: str, series: str, horizon: int = 1, level: float | None = None) -> Forecast:
        """The next ``horizon`` values with their interval at ``level`` (the model's default if None)."""
        return self._send(calls.forecast(model, series, horizon, level))

    def forecast_page(
        self,
        model: str,
        horizon: int = 1,
        level: float | None = None,
        offset: int = 0,
        limit: int = 100,
        after: str | None = None,
    ) -> ForecastPage:
        """The forecasts of ``limit`` series from ``offset`` (or after the name ``after``, the page before's
        ``next_after``), in sorted order (``forecast`` of each), in one request."""
        return self._send(calls.forecast_page(model, horizon, level, offset, limit, after))

    def iter_forecasts(
        self, model: str, horizon: int = 1, level: float | None = None, page_size: int | None = None
    ) -> Iterator[Forecast]:
        """Every series' forecast of a model, a page a request (``page_size`` times ``horizon`` times the model's
        features at most 100,000 a page; None: ``calls.page_size_for(horizon)``)."""
        size = calls.page_size_for(horizon) if page_size is None else page_size
        page = self.forecast_page(model, horizon, level, limit=size)
        yield from page.forecasts
        while page.next_after is not None:  # by the cursor: a series added meanwhile shifts nothing
            page = self.forecast_page(model, horizon, level, limit=size, after=page.next_after)
            yield from page.forecasts

    def series_stats(self, model: str, series: str) -> SeriesStats:
        """Count, last timestamp, and prequential MAE/RMSE against the naive forecast."""
        return self._send(calls.series_stats(model, series))

    def list_series(self, model: str, offset: int = 0, limit: int = 100, after: str | None = None) -> SeriesPage:
        return self._send(calls.list_series(model, offset, limit, after))

    def series_stats_page(
        self, model: str, offset: int = 0, limit: int = 100, after: str | None = None
    ) -> SeriesStatsPage:
        """The statistics of ``limit`` series from ``offset`` (or after the name ``after``), in sorted order
        (``series_stats`` of each)."""
        return self._send(calls.series_stats_page(model, offset, limit, after))

    def iter_series(self, model: str, page_size: int = 500) -> Iterator[str]:
        """Every series name of a model, page by page (by the cursor: each name there all along once)."""
        page = self.list_series(model, limit=page_size)
        yield from page.series
        while page.next_after is not None:
            page = self.list_series(model, limit=page_size, after=page.next_after)
            yield from page.series

    def delete_series(self, model: str, series: str) -> None:
        self._send(calls.delete_series(model, series))

    # -- models ---------------------------------------------------------------------
    def create_model(self, name: str, /, **config: Any) -> ModelInfo:
        """Create a model; ``config`` takes ForecasterConfig fields (cell, hidden_size, k1, k2, ...)."""
        return self._send(calls.create_model(name, config))

    def get_model(self, model: str) -> ModelInfo:
        return self._send(calls.get_model(model))

    def list_models(self) -> list[ModelInfo]:
        return self._send(calls.list_models())

    def delete_model(self, model: str) -> None:
        self._send(calls.delete_model(model))

    # -- operations -----------------------------------------------------------------
    def ready(self) -> bool:
        """Whether the server answers /readyz with success (no retries; False when unreachable)."""
        try:
            self._http.request(**calls.health("/readyz").request_args()).raise_for_status()
        except (httpx.TransportError, httpx.HTTPStatusError):
            return False
        return True

    def wait_ready(self, timeout: float = 30.0, interval: float = 0.1) -> None:
        """Block until the server is ready, or raise :class:`TransportFailure` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not self.ready():
            if time.monotonic() > deadline:
                raise TransportFailure(f"{self.base_url} was not ready within {timeout} s")
            time.sleep(interval)


__all__ = ["ApiError", "Client", "chunks"]
