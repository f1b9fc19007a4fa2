"""The online combination (combination.py) against numbers computed by hand."""

from __future__ import annotations

import math
import random
import struct

import pytest
import torch

from tbptt_online import combination, compiled
from tbptt_online.combination import CAP, DISCOUNT, ETA, EVIDENCE, META_ETA, SLOW_DISCOUNT

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
    w = weights_of([1.0, 1.1, 2.0], count=EVIDENCE)
    raw = [math.exp(-ETA * 1.0), math.exp(-ETA * 1.1), math.exp(-ETA * 2.0)]
    assert w == pytest.approx([r / sum(raw) for r in raw], rel=1e-12)
    assert w[1] / w[0] == pytest.approx(math.exp(-ETA / 10), rel=1e-12)  # 10 % above the best: exp(-eta / 10)
    assert sum(w) == pytest.approx(1.0, rel=1e-15)


def test_weights_are_free_of_the_series_scale_and_use_the_mean_loss():
    # mean losses 2 / 4 = 0.5 and 3 / 4 = 0.75: the second is 1.5 times the best, on a
    # count of 4: the factor sqrt(4 / 100) = 0.2
    w = weights_of([2.0, 3.0], count=4.0)
    assert w[1] / w[0] == pytest.approx(math.exp(-ETA * 0.5 * 0.2), rel=1e-12)
    assert weights_of([2000.0, 3000.0], count=4.0) == pytest.approx(w, rel=1e-12)


def test_a_difference_of_mean_losses_weighs_by_the_square_root_of_its_evidence():
    # 10 % above the best: exp(-eta / 10) at a count of EVIDENCE, its square root at a quarter
    # of it, its square at four times it (the slow combiner's counts reach 1,000)
    tenth = math.exp(-ETA / 10)
    for count, power in ((EVIDENCE / 4, 0.5), (EVIDENCE, 1.0), (4 * EVIDENCE, 2.0)):
        w = weights_of([10.0, 11.0], count=count)
        assert w[1] / w[0] == pytest.approx(tenth**power, rel=1e-12)


def test_at_horizon_h_the_evidence_counts_as_n_over_sqrt_h():
    # the same losses (10 % apart) and count at horizons 1, 4 and 9: the factor sqrt(N / (E sqrt(h)))
    # is 1, 1 / sqrt(2) and 1 / sqrt(3), so the second member keeps exp(-eta / 10) to that power
    loss = torch.tensor([10.0, 11.0], dtype=f64).view(1, 1, 2, 1).expand(1, 9, 2, 1).contiguous()
    w = combination.weights(loss, torch.full((1, 9, 1), EVIDENCE, dtype=f64), torch.ones(1, 2, 1, dtype=torch.bool))
    tenth = math.exp(-ETA / 10)
    for horizon, power in ((1, 1.0), (4, 1 / math.sqrt(2)), (9, 1 / math.sqrt(3))):
        assert (w[0, horizon - 1, 1, 0] / w[0, horizon - 1, 0, 0]).item() == pytest.approx(tenth**power, rel=1e-12)


def test_members_not_allowed_get_exactly_zero_and_the_best_allowed_sets_the_ratio():
    w = weights_of([1.0, 2.0, 2.2], count=EVIDENCE, allowed=[False, True, True])
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
    count = torch.full((2, 2, 2), EVIDENCE, dtype=f64)
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
    error, cap = combination.scored_error(2.0, 0.0, True)  # 2 / 0 = inf: at the cap
    assert combination.discounted(1.0, error, cap, DISCOUNT) == DISCOUNT * 1.0 + CAP
    error, cap = combination.scored_error(0.0, 0.0, True)  # 0 / 0 = NaN: at the cap, not a perfect forecast
    assert combination.discounted(0.0, error, cap, DISCOUNT) == CAP


def test_the_slow_combiner_folds_errors_in_the_series_units_capped_at_cap_local_scales():
    loss, count = combination.fold(
        member_tensor([2.0, 4.0, 0.0]),
        torch.tensor([[[3.0]]], dtype=f64),
        member_tensor([1.0, 6.0, 1e6]),
        torch.tensor([[[True]]]),
        torch.tensor([[2.0]], dtype=f64),
        rho=SLOW_DISCOUNT,
        local=False,
    )
    # rho * 2 + 1 and rho * 4 + 6 (not divided by the scale 2); 1e6 capped at CAP * 2
    expected = [SLOW_DISCOUNT * 2 + 1.0, SLOW_DISCOUNT * 4 + 6.0, CAP * 2.0]
    assert loss.flatten().tolist() == pytest.approx(expected, rel=1e-14, abs=0)
    assert count.flatten().tolist() == pytest.approx([SLOW_DISCOUNT * 3 + 1], rel=1e-14, abs=0)


def softmax_by_hand(x: list[float]) -> list[float]:
    top = max(x)
    raw = [math.exp(v - top) for v in x]
    return [r / sum(raw) for r in raw]


def test_the_served_weights_mix_the_fast_and_the_slow_combiners_by_their_own_losses_by_hand():
    # one series, one horizon, one feature, three members (the second not allowed)
    rows = {
        "c_loss": member_tensor([2.0, 0.5, 2.2]),  # fast: the third 10 % above the first
        "c_count": torch.tensor([[[4.0]]], dtype=f64),
        "c_slow_loss": member_tensor([30.0, 1.0, 24.0]),  # slow: the first 25 % above the third
        "c_slow_count": torch.tensor([[[50.0]]], dtype=f64),
        # the fast one 10 % worse than the slow one, the pooled one 20 %
        "c_meta_loss": torch.tensor([11.0, 10.0, 12.0], dtype=f64).view(1, 1, 3, 1),
        "c_meta_count": torch.tensor([[[20.0]]], dtype=f64),
    }
    allowed = torch.tensor([True, False, True]).view(1, 3, 1)
    served, combiners, mu = combination.served_weights(rows, allowed)
    # L / min L over the allowed, times sqrt(N / EVIDENCE): counts 4, 50 and 20
    fast = softmax_by_hand([-ETA * 1.0 * 0.2, -ETA * 1.1 * 0.2])  # 2 / 2, 2.2 / 2
    slow = softmax_by_hand([-ETA * 1.25 * math.sqrt(0.5), -ETA * 1.0 * math.sqrt(0.5)])  # 30 / 24, 24 / 24
    root = math.sqrt(0.2)
    three = softmax_by_hand([-META_ETA * 1.1 * root, -META_ETA * 1.0 * root, -META_ETA * 1.2 * root])  # over 10
    # at one step the pooled combiner is the fast one: it takes no weight, the fast and slow ones share it
    both = three[0] + three[1]
    mix = [three[0] / both, three[1] / both, 0.0]
    assert mix[:2] == pytest.approx(softmax_by_hand([-META_ETA * 1.1 * root, -META_ETA * 1.0 * root]), rel=1e-12)
    assert combiners[0, 0, 0, :, 0].tolist() == pytest.approx([fast[0], 0.0, fast[1]], rel=1e-12, abs=0)
    assert combiners[0, 0, 1, :, 0].tolist() == pytest.approx([slow[0], 0.0, slow[1]], rel=1e-12, abs=0)
    assert combiners[0, 0, 2].tolist() == combiners[0, 0, 0].tolist()  # at one step the pooled one is the fast one
    assert mu[0, 0, :, 0].tolist() == pytest.approx(mix, rel=1e-12, abs=0)
    expected = [mix[0] * fast[0] + mix[1] * slow[0], 0.0, mix[0] * fast[1] + mix[1] * slow[1]]
    assert served[0, 0, :, 0].tolist() == pytest.approx(expected, rel=1e-12, abs=0)
    assert served[0, 0, 1, 0].item() == 0.0  # not allowed: exactly none
    assert served.sum().item() == pytest.approx(1.0, rel=1e-15)


def test_nothing_scored_by_the_combiners_mixes_them_evenly():
    rows = {
        "c_loss": member_tensor([1.0, 3.0, 2.0]),
        "c_count": torch.tensor([[[1.0]]], dtype=f64),
        "c_slow_loss": member_tensor([5.0, 1.0, 2.0]),
        "c_slow_count": torch.tensor([[[1.0]]], dtype=f64),
        "c_meta_loss": torch.tensor([7.0, 1.0, 3.0], dtype=f64).view(1, 1, 3, 1),  # ignored until something is scored
        "c_meta_count": torch.zeros(1, 1, 1, dtype=f64),
    }
    served, combiners, mu = combination.served_weights(rows, torch.ones(1, 3, 1, dtype=torch.bool))
    # one horizon: at one step the pooled combiner is the fast one and takes no weight
    assert mu.flatten().tolist() == pytest.approx([1 / 2, 1 / 2, 0.0], rel=1e-15)
    evenly = (combiners[0, 0, 0] + combiners[0, 0, 1]).flatten() / 2
    assert served[0, 0, :, 0].tolist() == pytest.approx(evenly.tolist(), rel=1e-15)


def test_the_pooled_combiner_weighs_members_by_the_mean_of_the_fast_ones_weights_at_h_and_at_one_step_by_hand():
    """Three horizons, three members: the fast combiner has led with member 0 at one step and with member 1 at 2 and
    3 steps; the pooled combiner weighs members by the mean of the fast one's weights at h and at one step, and the
    mixture takes it by its own losses (here the best at horizon 3 only)."""
    rows = {
        "c_loss": torch.tensor([[1.0, 1.5, 4.0], [2.0, 1.6, 4.0], [3.0, 2.4, 4.0]], dtype=f64).view(1, 3, 3, 1),
        "c_count": torch.tensor([25.0, 25.0, 25.0], dtype=f64).view(1, 3, 1),
        "c_slow_loss": torch.ones(1, 3, 3, 1, dtype=f64),
        "c_slow_count": torch.tensor([25.0, 25.0, 25.0], dtype=f64).view(1, 3, 1),
        # per horizon the losses of the fast, slow and pooled combiners
        "c_meta_loss": torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.2], [3.0, 3.0, 2.5]], dtype=f64).view(1, 3, 3, 1),
        "c_meta_count": torch.tensor([25.0, 25.0, 25.0], dtype=f64).view(1, 3, 1),
    }
    served, combiners, mu = combination.served_weights(rows, torch.ones(1, 3, 1, dtype=torch.bool))
    one_step = softmax_by_hand([-ETA * 1.0 * 0.5, -ETA * 1.5 * 0.5, -ETA * 4.0 * 0.5])  # h = 1: sqrt(25 / 100)
    assert one_step[0] > 0.99
    before = None  # the fast combiner's logits at the horizon before: a young horizon borrows them by its count
    for h in range(3):
        evidence = math.sqrt(25.0 / (EVIDENCE * math.sqrt(h + 1.0)))
        losses = rows["c_loss"][0, h, :, 0].tolist()
        own = [-ETA * evidence * v / min(losses) for v in losses]
        if before is not None:  # n = 25 / sqrt(h) of its own against NEIGHBOUR of the one before
            a = (25.0 / math.sqrt(h + 1.0)) / (25.0 / math.sqrt(h + 1.0) + combination.NEIGHBOUR)
            own = [a * x + (1 - a) * y for x, y in zip(own, before, strict=True)]
        before = [x - max(own) for x in own]
        fast = softmax_by_hand(before)
        pooled = [(f + o) / 2 for f, o in zip(fast, one_step, strict=True)]
        meta = rows["c_meta_loss"][0, h, :, 0].tolist()
        mix = softmax_by_hand([-META_ETA * evidence * v / min(meta) for v in meta])
        if h == 0:  # at one step the pooled combiner is the fast one: it takes no weight
            mix = [mix[0] / (mix[0] + mix[1]), mix[1] / (mix[0] + mix[1]), 0.0]
        assert combiners[0, h, 0, :, 0].tolist() == pytest.approx(fast, rel=1e-12, abs=1e-300)
        assert combiners[0, h, 2, :, 0].tolist() == pytest.approx(pooled, rel=1e-12, abs=1e-300)
        assert mu[0, h, :, 0].tolist() == pytest.approx(mix, rel=1e-12, abs=1e-300)
        expected = [mix[0] * f + mix[1] / 3 + mix[2] * p for f, p in zip(fast, pooled, strict=True)]
        assert served[0, h, :, 0].tolist() == pytest.approx(expected, rel=1e-12, abs=1e-300)
    # at h = 3 the fast combiner's member 1 leads (0.97), the pooled one's is half-way to the one-step leader's 0
    assert fast[1] > 0.9 and pooled[0] > 0.45 and pooled[1] > 0.45
    assert served[0, 2, 0, 0].item() == pytest.approx(mix[0] * fast[0] + mix[1] / 3 + mix[2] * pooled[0], rel=1e-12)


def test_a_young_horizon_of_the_fast_combiner_borrows_the_ranking_of_the_one_before_by_its_count_by_hand():
    """Three horizons, three members: at one step member 0 leads on 16 scored targets, at two steps member 1 on 4,
    at three nothing is scored yet. The fast combiner's logits at two steps are a * own + (1 - a) * those at one
    step, a = n / (n + NEIGHBOUR), n = 4 / sqrt(2); at three steps (n = 0) they are those at two steps: its weights
    are theirs, not equal (a young series' long horizons spread over every member, levels and all, while the
    shorter ones had found the trend). The slow combiner keeps its own at every horizon."""
    rows = {
        "c_loss": torch.tensor([[1.0, 2.0, 4.0], [3.0, 1.5, 3.0], [7.0, 1.0, 2.0]], dtype=f64).view(1, 3, 3, 1),
        "c_count": torch.tensor([16.0, 4.0, 0.0], dtype=f64).view(1, 3, 1),
        "c_slow_loss": torch.tensor([[1.0, 2.0, 4.0], [3.0, 1.5, 3.0], [7.0, 1.0, 2.0]], dtype=f64).view(1, 3, 3, 1),
        "c_slow_count": torch.tensor([16.0, 4.0, 0.0], dtype=f64).view(1, 3, 1),
        "c_meta_loss": torch.ones(1, 3, 3, 1, dtype=f64),
        "c_meta_count": torch.zeros(1, 3, 1, dtype=f64),
    }
    _, combiners, _ = combination.served_weights(rows, torch.ones(1, 3, 1, dtype=torch.bool))
    one = [-ETA * math.sqrt(16.0 / EVIDENCE) * v for v in (1.0, 2.0, 4.0)]  # min loss 1
    own = [-ETA * math.sqrt(4.0 / (EVIDENCE * math.sqrt(2.0))) * v / 1.5 for v in (3.0, 1.5, 3.0)]
    n = 4.0 / math.sqrt(2.0)
    a = n / (n + combination.NEIGHBOUR)
    two = [a * x + (1 - a) * (y - max(one)) for x, y in zip(own, one, strict=True)]
    assert combiners[0, 0, 0, :, 0].tolist() == pytest.approx(softmax_by_hand(one), rel=1e-12)
    assert combiners[0, 1, 0, :, 0].tolist() == pytest.approx(softmax_by_hand(two), rel=1e-12)
    assert combiners[0, 2, 0].tolist() == combiners[0, 1, 0].tolist()  # nothing scored: the horizon before's
    # member 1's own lead at two steps, on 4 targets, does not outweigh member 0's at one step, on 16
    assert combiners[0, 1, 0, 0, 0].item() > 0.8 and combiners[0, 1, 0, 1, 0].item() > 0.1
    # the slow combiner: its own at each horizon (equal where nothing is scored)
    slow_two = softmax_by_hand([-ETA * math.sqrt(4.0 / (EVIDENCE * math.sqrt(2.0))) * v / 1.5 for v in (3.0, 1.5, 3.0)])
    assert combiners[0, 1, 1, :, 0].tolist() == pytest.approx(slow_two, rel=1e-12)
    assert combiners[0, 2, 1, :, 0].tolist() == pytest.approx([1 / 3] * 3, rel=1e-15)


def exp_by_hand(x: float) -> float:
    """``compiled.exp_weight`` in plain Python, its operations in its order (a float's bits
    through ``struct``)."""
    if not x >= compiled.EXP_FLOOR:
        return 0.0
    shifted = x * compiled._LOG2E + compiled._SHIFTER
    n = shifted - compiled._SHIFTER
    r = (x - n * compiled._LN2_HI) - n * compiled._LN2_LO
    p = 1.0 / math.factorial(13)
    for i in range(12, -1, -1):
        p = p * r + 1.0 / math.factorial(i)
    bits = struct.unpack("<q", struct.pack("<d", shifted))[0] - compiled._SHIFTER_BITS  # n
    return p * struct.unpack("<d", struct.pack("<q", (bits + 1023) << 52))[0]


def logits_by_hand(
    loss: list[float], count: float, allowed: list[bool], eta: float, horizon: int, before: list[float] | None = None
) -> list[float]:
    """``ewa``'s logits at ``horizon`` (1-based) in plain Python in its order of operations (a member not allowed:
    -inf). The largest is the best loss's (factor <= 0). With ``before`` (the fast combiner's logits at horizon - 1,
    as this gave them) they are ``a * own + (1 - a) * before``, ``a = n / (n + NEIGHBOUR)``, ``n = count /
    sqrt(horizon)``, less the largest again."""
    best = math.inf
    for value, ok in zip(loss, allowed, strict=True):
        if ok and value < best:
            best = value
    evidence = math.sqrt(count / (EVIDENCE * math.sqrt(float(horizon))))
    factor = -eta * evidence / max(best, 1e-12 * max(count, 1e-12)) if count > 0 else 0.0
    top = best * factor
    assert top == max(value * factor for value, ok in zip(loss, allowed, strict=True) if ok)
    own = [value * factor - top if ok else -math.inf for value, ok in zip(loss, allowed, strict=True)]
    if before is None:
        return own
    n = count / math.sqrt(float(horizon))
    a = n / (n + combination.NEIGHBOUR)
    mixed = [a * x + (1.0 - a) * y if ok else -math.inf for x, y, ok in zip(own, before, allowed, strict=True)]
    largest = max(mixed)
    return [x - largest if ok else -math.inf for x, ok in zip(mixed, allowed, strict=True)]


def weights_by_hand(logits: list[float]) -> list[float]:
    """``ewa``'s weights from its logits, in its order of operations (-inf: weight 0): the sum is four partial sums
    (i mod 4); each weight is multiplied by the sum's inverse."""
    raw = [exp_by_hand(x) if x > -math.inf else 0.0 for x in logits]
    sums = [0.0] * 4
    for i, r in enumerate(raw):
        sums[i % 4] += r
    inverse = 1.0 / ((sums[0] + sums[1]) + (sums[2] + sums[3]))
    return [r * inverse for r in raw]


def fast_by_hand(loss: list[list[float]], count: list[float], allowed: list[bool]) -> list[list[float]]:
    """The fast combiner's weights at horizons 1 .. len(loss) (``loss[h]``, ``count[h]``): each horizon's logits
    after h = 1 borrow from the one before's (``logits_by_hand``)."""
    out, before = [], None
    for h, (row, n) in enumerate(zip(loss, count, strict=True)):
        before = logits_by_hand(row, n, allowed, ETA, h + 1, before)
        out.append(weights_by_hand(before))
    return out


def ewa_by_hand(loss: list[float], count: float, allowed: list[bool], eta: float, horizon: int) -> list[float]:
    """``ewa``'s rule at ``horizon`` (1-based) without a neighbour (the slow combiner's, the mixture's, ``weights``)
    in plain Python in its order of operations (a member not allowed: its logit -inf, its weight 0): what the kernel
    must equal to the last bit (``logits_by_hand``, then ``weights_by_hand``)."""
    return weights_by_hand(logits_by_hand(loss, count, allowed, eta, horizon))


def random_losses(rng: random.Random, shape: tuple[int, ...]) -> torch.Tensor:
    """Losses within 30 % of each other (the weights spread over many members, each exp and sum
    counts), a few exactly 1 (ties) and one in a hundred 0 (a flat series)."""

    def draw() -> float:
        u = rng.random()
        return 0.0 if u < 0.01 else 1.0 if u < 0.06 else rng.uniform(1.0, 1.3)

    return torch.tensor([draw() for _ in range(math.prod(shape))], dtype=f64).view(shape)


def random_counts(rng: random.Random, shape: tuple[int, ...]) -> torch.Tensor:
    draws = [rng.choice([rng.uniform(20.0, 100.0)] * 9 + [0.0]) for _ in range(math.prod(shape))]
    return torch.tensor(draws, dtype=f64).view(shape)


@pytest.mark.parametrize("seed", range(8))
def test_the_weights_equal_the_rule_written_out_to_the_last_bit(seed):
    rng = random.Random(seed)
    b, horizons, members, d = 2, 3, 21, 2
    loss, count = random_losses(rng, (b, horizons, members, d)), random_counts(rng, (b, horizons, d))
    allowed = torch.rand(b, members, d, generator=torch.Generator().manual_seed(seed)) < 0.6
    allowed[:, -1] = True  # the network's member: always
    w = combination.weights(loss, count, allowed)
    spread = 0
    for i in range(b):
        for h in range(horizons):
            for k in range(d):
                ok = allowed[i, :, k].tolist()
                expected = ewa_by_hand(loss[i, h, :, k].tolist(), count[i, h, k].item(), ok, ETA, h + 1)
                assert w[i, h, :, k].tolist() == expected
                spread += len({x for x in expected if x > 0}) >= 4
    assert spread >= 6  # most rows weigh several members apart: the exps and the sums are what is compared


@pytest.mark.parametrize("seed", range(4))
def test_the_served_weights_equal_the_mixture_written_out_to_the_last_bit(seed):
    """Each combiner by ``ewa_by_hand`` (the pooled one: the mean of the fast one's at h and at one step), their
    mixture (three members) by it too (at one step the pooled one's weight 0, the fast and slow ones' divided by
    their sum), and the served weights mu_fast w_fast + mu_slow w_slow + mu_pooled
    w_pooled, in the kernel's order: (mu_fast + mu_pooled / 2) w_fast + mu_slow w_slow, plus mu_pooled / 2 times
    the fast one's one-step weight."""
    rng = random.Random(100 + seed)
    b, horizons, members, d = 2, 3, 23, 1
    rows = {
        "c_loss": random_losses(rng, (b, horizons, members, d)),
        "c_count": random_counts(rng, (b, horizons, d)),
        "c_slow_loss": random_losses(rng, (b, horizons, members, d)),
        "c_slow_count": random_counts(rng, (b, horizons, d)),
        "c_meta_loss": random_losses(rng, (b, horizons, combination.COMBINERS, d)),
        "c_meta_count": random_counts(rng, (b, horizons, d)),
    }
    allowed = torch.rand(b, members, d, generator=torch.Generator().manual_seed(seed)) < 0.7
    allowed[:, -1] = True
    served, combiners, mu = combination.served_weights(rows, allowed)
    for i in range(b):
        ok = allowed[i, :, 0].tolist()
        chain = fast_by_hand(rows["c_loss"][i, :, :, 0].tolist(), rows["c_count"][i, :, 0].tolist(), ok)
        for h in range(horizons):
            fast = chain[h]
            slow = ewa_by_hand(
                rows["c_slow_loss"][i, h, :, 0].tolist(), rows["c_slow_count"][i, h, 0].item(), ok, ETA, h + 1
            )
            mix = ewa_by_hand(
                rows["c_meta_loss"][i, h, :, 0].tolist(),
                rows["c_meta_count"][i, h, 0].item(),
                [True] * combination.COMBINERS,
                META_ETA,
                h + 1,
            )
            if h == 0:  # the pooled combiner is the fast one at one step: no weight, the other two share it
                both = mix[0] + mix[1]
                mix = [mix[0] / both, mix[1] / both, 0.0]
            one = chain[0]
            assert one == ewa_by_hand(rows["c_loss"][i, 0, :, 0].tolist(), rows["c_count"][i, 0, 0].item(), ok, ETA, 1)
            assert combiners[i, h, 0, :, 0].tolist() == fast and combiners[i, h, 1, :, 0].tolist() == slow
            assert combiners[i, h, 2, :, 0].tolist() == [0.5 * (f + o) for f, o in zip(fast, one, strict=True)]
            assert mu[i, h, :, 0].tolist() == mix
            half = 0.5 * mix[2]
            pooled = [((mix[0] + half) * f + mix[1] * s) + half * o for f, s, o in zip(fast, slow, one, strict=True)]
            assert served[i, h, :, 0].tolist() == pooled
