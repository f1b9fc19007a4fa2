"""The online combination (combination.py) against numbers computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from tbptt_online import combination
from tbptt_online.combination import CAP, DISCOUNT, ETA

f64 = torch.float64


def member_tensor(values: list[float]) -> torch.Tensor:
    """One row, one horizon, one feature: [1, 1, E, 1]."""
    return torch.tensor(values, dtype=f64).view(1, 1, -1, 1)


def weights_of(loss: list[float], count: float, allowed: list[bool] | None = None) -> list[float]:
    allowed = allowed or [True] * len(loss)
    w = combination.weights(
        member_tensor(loss),
        torch.tensor([[[count]]], dtype=f64),
        torch.tensor(allowed).view(1, -1, 1),
    )
    return w.flatten().tolist()


def test_fold_discounts_the_losses_and_adds_each_error_in_units_of_the_scale():
    loss, count = combination.fold(
        member_tensor([2.0, 4.0]),
        torch.tensor([[[3.0]]], dtype=f64),
        member_tensor([1.0, 6.0]),
        torch.tensor([[[True]]]),
        torch.tensor([[2.0]], dtype=f64),
    )
    # rho * 2 + 1 / 2 and rho * 4 + 6 / 2; the count rho * 3 + 1
    assert loss.flatten().tolist() == pytest.approx([DISCOUNT * 2 + 0.5, DISCOUNT * 4 + 3.0], rel=1e-14, abs=0)
    assert count.flatten().tolist() == pytest.approx([DISCOUNT * 3 + 1], rel=1e-14, abs=0)


def test_fold_caps_what_one_target_adds():
    loss, _ = combination.fold(
        member_tensor([0.0, 1.0]),
        torch.zeros(1, 1, 1, dtype=f64),
        member_tensor([1e6, 1e300]),
        torch.tensor([[[True]]]),
        torch.tensor([[1.0]], dtype=f64),
    )
    assert loss.flatten().tolist() == [CAP, DISCOUNT + CAP]


def test_fold_leaves_unscored_horizons_bit_identical_and_scores_the_others():
    loss = torch.tensor([[[[1.5], [2.5]], [[3.5], [4.5]]]], dtype=f64)  # [1, H=2, E=2, 1]
    count = torch.tensor([[[2.0], [7.0]]], dtype=f64)  # [1, 2, 1]
    error = torch.tensor([[[[1.0], [1.0]], [[9.0], [9.0]]]], dtype=f64)
    scored = torch.tensor([[[True], [False]]])
    new_loss, new_count = combination.fold(loss, count, error, scored, torch.tensor([[1.0]], dtype=f64))
    assert new_loss[0, 1].flatten().tolist() == [3.5, 4.5]  # horizon 2: not scored, untouched
    assert new_count[0, 1].item() == 7.0
    assert new_loss[0, 0].flatten().tolist() == pytest.approx([DISCOUNT * 1.5 + 1, DISCOUNT * 2.5 + 1], rel=1e-14)
    assert new_count[0, 0].item() == pytest.approx(DISCOUNT * 2 + 1, rel=1e-14)


def test_weights_fall_exponentially_with_the_ratio_of_the_mean_loss_to_the_best():
    w = weights_of([1.0, 1.1, 2.0], count=1.0)
    raw = [math.exp(-ETA * 1.0), math.exp(-ETA * 1.1), math.exp(-ETA * 2.0)]
    assert w == pytest.approx([r / sum(raw) for r in raw], rel=1e-12)
    assert w[1] / w[0] == pytest.approx(math.exp(-ETA / 10), rel=1e-12)  # 10 % above the best: exp(-eta / 10)
    assert sum(w) == pytest.approx(1.0, rel=1e-15)


def test_weights_are_free_of_the_series_scale_and_use_the_mean_loss():
    # mean losses 2 / 4 = 0.5 and 3 / 4 = 0.75: the second is 1.5 times the best
    w = weights_of([2.0, 3.0], count=4.0)
    assert w[1] / w[0] == pytest.approx(math.exp(-ETA * 0.5), rel=1e-12)
    assert weights_of([2000.0, 3000.0], count=4.0) == pytest.approx(w, rel=1e-12)


def test_members_not_allowed_get_exactly_zero_and_the_best_allowed_sets_the_ratio():
    w = weights_of([1.0, 2.0, 2.2], count=1.0, allowed=[False, True, True])
    assert w[0] == 0.0
    # the best allowed mean loss is 2.0 (not the excluded 1.0): 2.2 is 10 % above it
    tenth = math.exp(-ETA / 10)
    assert w[1:] == pytest.approx([1 / (1 + tenth), tenth / (1 + tenth)], rel=1e-12)


def test_nothing_scored_gives_equal_weights_to_the_members_allowed():
    assert weights_of([5.0, 1.0, 3.0], count=0.0) == [1 / 3, 1 / 3, 1 / 3]
    assert weights_of([5.0, 1.0, 3.0], count=0.0, allowed=[True, False, True]) == [0.5, 0.0, 0.5]


def test_a_member_without_loss_takes_all_the_weight():
    assert weights_of([0.0, 0.5, 1e-3], count=3.0) == [1.0, 0.0, 0.0]


def test_each_horizon_row_and_feature_is_weighted_on_its_own():
    # [B=2, H=2, E=2, d=2]; row 1 feature 0 horizon 1 has the losses of the test above
    loss = torch.ones(2, 2, 2, 2, dtype=f64)
    loss[1, 0, :, 0] = torch.tensor([1.0, 1.1], dtype=f64)
    count = torch.ones(2, 2, 2, dtype=f64)
    count[0, 1, 1] = 0.0  # nothing scored at horizon 2 of row 0, feature 1
    loss[0, 1, :, 1] = torch.tensor([1.0, 9.0], dtype=f64)
    w = combination.weights(loss, count, torch.ones(2, 2, 2, dtype=torch.bool))
    tenth = math.exp(-ETA / 10)
    assert w[1, 0, :, 0].tolist() == pytest.approx([1 / (1 + tenth), tenth / (1 + tenth)], rel=1e-12)
    assert w[0, 1, :, 1].tolist() == [0.5, 0.5]  # its losses are ignored until something is scored
    w[1, 0, :, 0] = 0.5
    w[0, 1, :, 1] = 0.5
    assert bool((w == 0.5).all())  # every other cell: equal losses, equal weights


def test_the_compiled_arithmetic_divides_by_zero_as_ieee_754_not_with_an_exception():
    # numba's default raises ZeroDivisionError inside a tick; the tensor code it replaced gave inf
    assert combination.discounted(1.0, 2.0, 0.0) == DISCOUNT * 1.0 + CAP  # 2 / 0 = inf: at the cap
    assert combination.discounted(0.0, 0.0, 0.0) == CAP  # 0 / 0 = NaN: at the cap, not a perfect forecast
