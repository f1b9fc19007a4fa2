"""AsyncClient: the asyncio twin of :class:`~tbptt_online.client.Client` (same methods, awaited).

>>> import asyncio
>>> async def main():
...     async with AsyncClient("http://127.0.0.1:8000", retries=0) as client:
...         return client.retry_policy.retries
>>> asyncio.run(main())
0

Against a running server::

    async with AsyncClient("http://127.0.0.1:8000") as client:
        results = await client.observe_many("default", [("cpu", 0.4, 1700000000), ("mem", 0.7, 1700000000)])
        forecast = await client.forecast("default", "cpu", horizon=6)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any

import httpx

from tbptt_online.client import calls
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
from tbptt_online.client.sync_client import DEFAULT_BATCH_SIZE, auth_headers, chunks


class AsyncClient:
    """See :class:`~tbptt_online.client.Client`: the same contract, on ``httpx.AsyncClient``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float | None = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = checked_base_url(base_url)  # (httpx raised InvalidURL, no ValueError, at the next line)
        self.timeout = timeout
        self.retry_policy = RetryPolicy(retries=retries, backoff=backoff)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=auth_headers(api_key), timeout=timeout, transport=transport
        )

    # -- plumbing -------------------------------------------------------------------
    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: Call) -> Any:
        attempts = 1 + (self.retry_policy.retries if call.idempotent else 0)
        for attempt in range(attempts):
            retry_after = None
            try:
                sent = time.monotonic()
                response = await self._http.send(self._http.build_request(**call.request_args()), stream=True)
                try:
                    await within(response, sent, self.timeout).aread()  # the whole answer within timeout
                finally:
                    await response.aclose()
            except httpx.TransportError as error:
                if attempt + 1 == attempts:
                    raise TransportFailure(f"{call.method} {self.base_url}{call.path}: {error!r}") from error
            else:
                if attempt + 1 == attempts or not self.retry_policy.should_retry_status(response.status_code):
                    return call.result(response)
                retry_after = response.headers.get("retry-after")
            await asyncio.sleep(self.retry_policy.delay(attempt, retry_after))
        raise AssertionError("unreachable: the last attempt returns or raises")

    # -- observations ---------------------------------------------------------------
    async def observe(
        self, model: str, series: str, value: Any, timestamp: Timestamp = None, idempotency_key: str | None = None
    ) -> ObservationResult:
        """``Client.observe``'s twin."""
        item = calls.encode_observation({"series": series, "value": value, "timestamp": timestamp})
        return (await self._send(calls.observe(model, [item], idempotency_key)))[0]

    async def observe_many(
        self,
        model: str,
        observations: Iterable[ObservationLike],
        batch_size: int = DEFAULT_BATCH_SIZE,
        idempotency_key: str | None = None,
    ) -> list[ObservationResult]:
        """``Client.observe_many``'s twin."""
        results: list[ObservationResult] = []
        for i, chunk in enumerate(chunks(observations, batch_size)):
            batch = calls.encode_batch(chunk, len(results))
            try:
                results.extend(await self._send(calls.observe(model, batch, calls.batch_key(idempotency_key, i))))
            except ApiError as error:  # its index the caller's element, the earlier requests' results with it
                raise error.in_batches(len(results), results) from None
        return results

    # -- forecasts and statistics ---------------------------------------------------
    async def forecast(self, model: str, series: str, horizon: int = 1, level: float | None = None) -> Forecast:
        return await self._send(calls.forecast(model, series, horizon, level))

    async def forecast_page(
        self,
        model: str,
        horizon: int = 1,
        level: float | None = None,
        offset: int = 0,
        limit: int = 100,
        after: str | None = None,
    ) -> ForecastPage:
        return await self._send(calls.forecast_page(model, horizon, level, offset, limit, after))

    async def iter_forecasts(
        self, model: str, horizon: int = 1, level: float | None = None, page_size: int | None = None
    ) -> AsyncIterator[Forecast]:
        size = calls.page_size_for(horizon) if page_size is None else page_size
        after: str | None = None
        while True:  # by the cursor: a series added meanwhile shifts nothing
            page = await self.forecast_page(model, horizon, level, limit=size, after=after)
            for forecast in page.forecasts:
                yield forecast
            if page.next_after is None:
                return
            after = page.next_after

    async def series_stats(self, model: str, series: str) -> SeriesStats:
        return await self._send(calls.series_stats(model, series))

    async def list_series(self, model: str, offset: int = 0, limit: int = 100, after: str | None = None) -> SeriesPage:
        return await self._send(calls.list_series(model, offset, limit, after))

    async def series_stats_page(
        self, model: str, offset: int = 0, limit: int = 100, after: str | None = None
    ) -> SeriesStatsPage:
        return await self._send(calls.series_stats_page(model, offset, limit, after))

    async def iter_series(self, model: str, page_size: int = 500) -> AsyncIterator[str]:
        after: str | None = None
        while True:  # by the cursor: each name there all along once
            page = await self.list_series(model, limit=page_size, after=after)
            for name in page.series:
                yield name
            if page.next_after is None:
                return
            after = page.next_after

    async def delete_series(self, model: str, series: str) -> None:
        await self._send(calls.delete_series(model, series))

    # -- models ---------------------------------------------------------------------
    async def create_model(self, name: str, /, **config: Any) -> ModelInfo:
        return await self._send(calls.create_model(name, config))

    async def get_model(self, model: str) -> ModelInfo:
        return await self._send(calls.get_model(model))

    async def list_models(self) -> list[ModelInfo]:
        return await self._send(calls.list_models())

    async def delete_model(self, model: str) -> None:
        await self._send(calls.delete_model(model))

    # -- operations -----------------------------------------------------------------
    async def ready(self) -> bool:
        try:
            (await self._http.request(**calls.health("/readyz").request_args())).raise_for_status()
        except (httpx.TransportError, httpx.HTTPStatusError):
            return False
        return True
