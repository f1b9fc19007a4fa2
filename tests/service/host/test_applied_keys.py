"""AppliedKeys' bounds: the newest keys kept, each pinned batch counted once, whole."""

from __future__ import annotations

from tbptt_online import Prediction, StepResult
from tbptt_service.host.applied_keys import AppliedKeys, digest_of


def batch(n: int, tag: str) -> list[StepResult]:
    none = Prediction(None, None, None)
    return [StepResult(f"{tag}{i}", 1, float(i), none, none, False, 0) for i in range(n)]


def test_requests_of_one_batch_pin_it_once_and_the_oldest_keys_go_first() -> None:
    keys = AppliedKeys(max_keys=100, max_results=10)
    shared = batch(6, "a")
    keys.remember("k1", "d1", shared, [0, 1], 0)
    keys.remember("k2", "d2", shared, [2, 3, 4, 5], 0)
    assert keys.pinned_results == 6  # one batch of 6, held by two keys
    assert keys.get("k2").results == shared[2:]
    keys.remember("k3", "d3", batch(4, "b"), [0, 1, 2, 3], 1)
    assert keys.pinned_results == 10 and len(keys) == 3
    keys.remember("k4", "d4", batch(1, "c"), [0], 2)  # 11 > 10: the oldest go until it fits
    assert [k for k, _ in keys.items()] == ["k3", "k4"] and keys.pinned_results == 5


def test_the_newest_keys_are_kept_and_a_digest_ties_a_key_to_its_request() -> None:
    keys = AppliedKeys(max_keys=2)
    for key in ("k1", "k2", "k3"):
        keys.remember(key, "d", batch(1, key), [0], 0)
    assert [k for k, _ in keys.items()] == ["k2", "k3"] and keys.pinned_results == 2
    assert digest_of([("a", 1.0, None)]) == digest_of([("a", 1.0, None)]) != digest_of([("a", 1.0, 5.0)])
