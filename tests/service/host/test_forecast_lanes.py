"""Each model's forecasts run on a lane of their own: a slow model holds up only its own forecasts."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.errors import NotFound, NotReady
from tbptt_service.host.forecast_lanes import ForecastLanes

SLOW_S = 1.0


class _View:
    """A view whose forecasts take ``seconds`` and name the thread that made them."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def forecast_many(self, requests: list) -> list:
        time.sleep(self.seconds)
        return [threading.current_thread().name for _ in requests]


def test_a_slow_models_forecast_does_not_hold_another_models() -> None:
    # a hostile test (session 48): with one thread for every model, another model's 12-step forecast waited
    # up to 25.3 s behind a large network's forecasts at h = 1,000
    lanes = ForecastLanes()

    async def both() -> tuple[float, float, list[str]]:
        started = time.perf_counter()
        done: dict[str, float] = {}

        async def timed(model: str, view: _View) -> str:
            answer = await lanes.forecast(model, view, "s", 1)
            done[model] = time.perf_counter() - started
            return answer

        slow = asyncio.create_task(timed("slow", _View(SLOW_S)))
        await asyncio.sleep(0.05)  # the slow one is being computed
        names = [await timed("fast", _View(0.0)), await slow]
        return done["fast"], done["slow"], names

    try:
        fast, slow, names = asyncio.run(both())
    finally:
        lanes.stop()
    assert slow >= SLOW_S and fast < SLOW_S / 2, (fast, slow)
    assert names == ["forecasts fast", "forecasts slow"]  # each model's own thread


def test_a_retired_lane_answers_what_it_was_asked_and_a_new_forecast_makes_a_new_lane() -> None:
    # retire does not wait for the lane's forecasts (a review, session 48: a DELETE took 2.7 s behind forecasts of
    # 1.5 s); they are answered by the retired lane's thread, which then ends
    lanes = ForecastLanes()
    f = Forecaster(ForecasterConfig(hidden_size=4))
    f.observe("a", 1.0)

    async def asked_then_retired() -> list:
        pending = [asyncio.create_task(lanes.forecast("m", _View(0.2), "s", 1)) for _ in range(3)]
        await asyncio.sleep(0.05)
        old = [t for t in threading.enumerate() if t.name == "forecasts m"]
        started = time.perf_counter()
        lanes.retire("m")
        returned_after = time.perf_counter() - started
        assert returned_after < 0.1 and lanes.names() == [] and not any(task.done() for task in pending)
        answers = [await task for task in pending]  # answered all the same, by the retired lane
        again = await lanes.forecast("m", f.view(), "a", 2)  # the model made again: a new lane
        old[0].join(timeout=5)
        return [*answers, len(again.mean), lanes.names(), old[0].is_alive()]

    try:
        assert asyncio.run(asked_then_retired()) == ["forecasts m"] * 3 + [2, ["m"], False]
    finally:
        lanes.stop()
    lanes.retire("never had one")  # nothing to stop


def test_after_stop_every_lane_is_ended_and_a_forecast_is_refused_with_503() -> None:
    lanes = ForecastLanes()
    asyncio.run(lanes.forecast("m", _View(0.0), "s", 1))
    lane_threads = [t for t in threading.enumerate() if t.name == "forecasts m"]
    assert len(lane_threads) == 1
    lanes.stop()
    lanes.stop()  # idempotent
    assert not lane_threads[0].is_alive() and lanes.names() == []
    with pytest.raises(NotReady, match="stopping"):
        asyncio.run(lanes.forecast("m", _View(0.0), "s", 1))


def test_a_model_deleted_after_its_route_found_it_makes_no_lane() -> None:
    # a review (session 57): a forecast whose route found the model before a DELETE reached the lanes after
    # ``retire`` and started a lane thread that nothing ended; the model's refusal is checked under the lanes' lock
    lanes = ForecastLanes()
    why = {"reason": None}
    try:
        asyncio.run(lanes.forecast("m", _View(0.0), "s", 1, refused=lambda: why["reason"]))  # taking requests
        lanes.retire("m")
        why["reason"] = "model 'm' is being deleted (its DELETE waits for the requests queued before it)"
        with pytest.raises(NotFound, match="is being deleted"):
            asyncio.run(lanes.forecast("m", _View(0.0), "s", 1, refused=lambda: why["reason"]))
        with pytest.raises(NotFound, match="is being deleted"):
            asyncio.run(lanes.forecast_many("m", _View(0.0), [("s", 1, None)], refused=lambda: why["reason"]))
        assert lanes.names() == []
    finally:
        lanes.stop()
    assert not [t for t in threading.enumerate() if t.name == "forecasts m" and t.is_alive()]
