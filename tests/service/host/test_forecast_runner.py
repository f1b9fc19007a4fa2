"""The forecast thread answers every computation with its own result or error, and stops cleanly."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tbptt_online import Forecaster, ForecasterConfig, ForecasterView
from tbptt_service.errors import NotReady
from tbptt_service.host.forecast_runner import ForecastRunner


def test_concurrent_computations_each_get_their_own_result_off_the_event_loop() -> None:
    runner = ForecastRunner(max_drain=4)
    runner.start()
    threads: set[str] = set()

    def square(x: int) -> int:
        threads.add(threading.current_thread().name)
        return x * x

    async def many() -> list[int]:
        return await asyncio.gather(*(runner.run(square, i) for i in range(50)))

    try:
        assert asyncio.run(many()) == [i * i for i in range(50)]
    finally:
        runner.stop()
    assert threads == {"forecasts"}


def test_an_error_is_raised_where_the_computation_is_awaited_and_the_runner_goes_on() -> None:
    runner = ForecastRunner()
    runner.start()

    async def both() -> tuple[BaseException, int]:
        failed = await asyncio.gather(runner.run(int, "not a number"), return_exceptions=True)
        return failed[0], await runner.run(int, "7")

    try:
        error, value = asyncio.run(both())
    finally:
        runner.stop()
    assert isinstance(error, ValueError) and "not a number" in str(error)
    assert value == 7


def test_after_stop_a_computation_is_refused_with_503() -> None:
    runner = ForecastRunner()
    runner.start()
    runner.stop()
    runner.stop()  # idempotent
    with pytest.raises(NotReady, match="stopping"):
        asyncio.run(runner.run(int, "1"))
    with pytest.raises(ValueError, match="max_drain=0"):
        ForecastRunner(max_drain=0)


class Holder:
    """Holds the runner's thread in one computation until released, so that what comes next queues up."""

    def __init__(self) -> None:
        self.entered, self.released = threading.Event(), threading.Event()

    def hold(self) -> bool:
        self.entered.set()
        return self.released.wait(30)

    async def until_held(self) -> None:
        while not self.entered.is_set():
            await asyncio.sleep(0.01)


class CountingView:
    """A view that counts its ``forecast_many`` calls and the requests each one got."""

    def __init__(self, view: ForecasterView) -> None:
        self.view = view
        self.batches: list[int] = []

    def forecast_many(self, requests: list) -> list:
        self.batches.append(len(requests))
        return self.view.forecast_many(requests)


def test_waiting_forecasts_of_one_view_run_as_one_batch_each_answered_as_alone_and_errors_alone() -> None:
    forecaster = Forecaster(ForecasterConfig(hidden_size=8, seed=1, dtype="float64"))
    forecaster.observe_many([(series, 0.5 * k + i) for k in range(12) for i, series in enumerate("abc")])
    view = forecaster.view()
    counting = CountingView(view)
    requests = [("a", 3, None), ("b", 1, 0.5), ("ghost", 2, None), ("a", 5, 0.8), ("c", 2, None), ("b", 0, None)]
    runner = ForecastRunner()
    runner.start()
    holder = Holder()

    async def all_at_once() -> list:
        held = asyncio.ensure_future(runner.run(holder.hold))  # the thread waits while the forecasts queue up
        await holder.until_held()
        waiting = [asyncio.ensure_future(runner.forecast(counting, *r)) for r in requests]  # type: ignore[arg-type]
        await asyncio.sleep(0.05)  # every forecast task has queued its request
        holder.released.set()
        assert await held is True
        return await asyncio.gather(*waiting, return_exceptions=True)

    try:
        answers = asyncio.run(all_at_once())
    finally:
        holder.released.set()
        runner.stop()
    assert counting.batches == [len(requests)]  # one rollout for all of them
    for request, answer in zip(requests, answers, strict=True):
        try:
            alone = view.forecast(*request)
        except ValueError as error:
            assert isinstance(answer, ValueError) and str(answer) == str(error)
            continue
        assert (answer.step, answer.level, answer.update_count) == (alone.step, alone.level, alone.update_count)
        for got, expected in ((answer.mean, alone.mean), (answer.lower, alone.lower), (answer.upper, alone.upper)):
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert [type(a).__name__ for a in answers] == [
        "Forecast",
        "Forecast",
        "ValueError",
        "Forecast",
        "Forecast",
        "ValueError",
    ]


def test_forecasts_of_different_views_are_batched_per_view() -> None:
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, seed=2))
    forecaster.observe("a", 1.0)
    before = CountingView(forecaster.view())
    forecaster.observe("a", 2.0)
    after = CountingView(forecaster.view())
    runner = ForecastRunner()
    runner.start()
    holder = Holder()

    async def both() -> list:
        held = asyncio.ensure_future(runner.run(holder.hold))
        await holder.until_held()
        waiting = [asyncio.ensure_future(runner.forecast(v, "a", 2)) for v in (before, after, before)]  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        holder.released.set()
        await held
        return await asyncio.gather(*waiting)

    try:
        first, second, third = asyncio.run(both())
    finally:
        holder.released.set()
        runner.stop()
    assert (before.batches, after.batches) == ([2], [1])
    assert (first.step, second.step, third.step) == (1, 2, 1)
    assert first.mean == third.mean
