"""The forecast thread answers every computation with its own result or error, and stops cleanly."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.errors import NotReady
from service.forecast_runner import ForecastRunner


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
