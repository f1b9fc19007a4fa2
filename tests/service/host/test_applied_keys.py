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


def wide_batch(n: int, tag: str, d: int) -> list[StepResult]:
    row = Prediction([0.0] * d, [0.0] * d, [0.0] * d)
    return [StepResult(f"{tag}{i}", 1, [0.0] * d, row, row, False, 0) for i in range(n)]


def test_a_result_counts_once_per_feature_of_its_model() -> None:
    # fix (hostile test): a result of n_features=1024 (about 300 KB) counted as one of 200 bytes, so
    # 200,000 of them could be pinned: 60 GB; three keyed requests of 1,000 held 800 MB more
    keys = AppliedKeys(max_keys=100, max_results=10_000)
    keys.remember("k1", "d1", wide_batch(4, "a", 1024), [0, 1, 2, 3], 0)
    assert keys.pinned_results == 4 * 1024
    keys.remember("k2", "d2", wide_batch(4, "b", 1024), [0, 1, 2, 3], 1)
    keys.remember("k3", "d3", wide_batch(4, "c", 1024), [0, 1, 2, 3], 2)  # 12,288 > 10,000: k1 goes
    assert [k for k, _ in keys.items()] == ["k2", "k3"] and keys.pinned_results == 8 * 1024
