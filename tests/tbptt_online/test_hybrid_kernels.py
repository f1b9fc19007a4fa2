"""The hybrid's kernels (hybrid_kernels.py) against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tbptt_online import hybrid, hybrid_kernels
from tbptt_online.combination import COMBINERS, ETA, EVIDENCE
from tbptt_online.expert_kernels import allowed_experts

MEMBERS = hybrid.N_MEMBERS
EXPERTS = MEMBERS - 1  # the network is the last member


def base_of(expert_loss: np.ndarray, network_loss: float, scale: float) -> tuple[float, np.ndarray, np.ndarray]:
    """``hybrid_kernels.base`` for one series, one horizon: both combiners' losses are
    ``expert_loss`` [E - 1] and the network's, each count EVIDENCE; the experts' paths are
    (1, 2, ..., E - 1) * ``scale``. Returns the base, the paths and which experts may take weight."""
    loss = np.empty((1, 1, MEMBERS, 1))
    loss[0, 0, :EXPERTS, 0], loss[0, 0, EXPERTS, 0] = expert_loss, network_loss
    count = np.full((1, 1, 1), EVIDENCE)
    meta = np.array([1.0, 1.01, 1.02]).reshape(1, 1, COMBINERS, 1)  # fast, slow, pooled
    paths = (1.0 + np.arange(EXPERTS, dtype=float)).reshape(1, 1, EXPERTS, 1) * scale
    positive, season_length, scored = np.ones((1, 1), bool), np.zeros((1, 1, 2), np.int64), np.full((1, 1), 500.0)
    out, partial, net = np.empty((1, 1, 1)), np.empty((1, 1, 1 + COMBINERS, 1)), np.empty((1, 1, 1 + COMBINERS, 1))
    combination_fields = (loss, count, loss.copy(), count, meta, count)  # fast, slow, the mixture's: loss and count
    none = np.zeros(1, np.int64)  # the row's slot and step; no change (o_shift_at 0): nothing read of the rest
    changed = (
        none,
        none,
        np.zeros((1, 1), np.int64),
        np.zeros((1, 1, 1, 1, 1), np.float32),
        np.zeros((1, 1, 1)),
        np.zeros((1, 1, 1)),
    )
    hybrid_kernels.base(paths, *combination_fields, positive, season_length, scored, changed, out, partial, net)
    allowed = np.empty(EXPERTS, dtype=np.bool_)
    allowed_experts(allowed, True, False, 500.0)
    return out[0, 0, 0], paths[0, 0, :, 0], allowed


def experts_softmax(loss: np.ndarray, allowed: np.ndarray, factor: float) -> np.ndarray:
    """The experts' weights among themselves, exp(factor * L_e) renormalised over the allowed ones."""
    logits = np.where(allowed, factor * (loss - loss[allowed].min()), -np.inf)
    return np.exp(logits) / np.exp(logits).sum()


@pytest.mark.parametrize("scale", [1.0, 1e-140, 1e-150, 1e30])
def test_the_base_is_the_experts_share_of_the_weights_at_any_scale_of_the_values(scale):
    """The network holds nearly all the weight (its loss 1, the experts' 18.5-19): the experts'
    weights are about 1e-190, their products with values of 1e-150 underflowed when the share
    was taken after the sum (the base read 0 where it is 2.1e-150)."""
    loss = 18.5 + np.linspace(0.0, 0.5, EXPERTS)
    out, paths, allowed = base_of(loss, 1.0, scale)
    expected = float((paths * experts_softmax(loss, allowed, -ETA)).sum())  # count EVIDENCE, best loss 1
    assert out == pytest.approx(expected, rel=1e-12)
    assert 2.0 * scale < out < 2.2 * scale


def test_where_the_network_takes_all_the_weight_the_base_is_the_experts_softmax_among_themselves():
    """The experts' weights below exp(-708) (0): the base is each combiner's softmax of the
    experts' own logits, mixed as the combiners are (both combiners alike here)."""
    loss = 1000.0 + np.linspace(0.0, 0.5, EXPERTS)
    out, paths, allowed = base_of(loss, 1.0, 1.0)
    expected = float((paths * experts_softmax(loss, allowed, -ETA)).sum())
    assert out == pytest.approx(expected, rel=1e-12)
    assert not math.isclose(expected, float(paths[allowed].mean()), rel_tol=1e-3)  # not the plain mean
