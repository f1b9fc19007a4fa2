"""The hybrid's tick in three compiled calls (``tick_kernels``, from ``hybrid_tick``) gives what
the kernels it groups give called one by one from Python, as the tick called them before: every
row field, the shared rings and tables, and every output, bit for bit (NaN where NaN)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from tbptt_online import (
    Forecaster,
    ForecasterConfig,
    calibration,
    combination,
    compiled,
    expert_kernels,
    experts,
    hybrid,
    hybrid_kernels,
    hybrid_tick,
    level_widths,
)
from tbptt_online.expert_kernels import REFERENCE, UNIT_FLOOR, UNIT_RELATIVE


def grown_rows(n_features: int) -> tuple[dict[str, torch.Tensor], torch.Tensor, ForecasterConfig]:
    """The rows of four series after 80 values each (seasons found, weights and widths learned,
    one series at 0 for a while, one flat, a value missing now and then), as gathered copies with the
    shared tables and the origins' ring copied too; and the series' steps."""
    config = ForecasterConfig(seed=0, n_features=n_features)
    f = Forecaster(config)
    rng = random.Random(3)
    for t in range(80):
        items = []
        for s in range(4):
            value = [10 + s + 4 * math.sin(2 * math.pi * t / 8) + rng.gauss(0, 1) for _ in range(n_features)]
            value = [math.nan if rng.random() < 0.05 else v for v in value]
            value = [0.0] * n_features if s == 1 and 30 <= t < 50 else value
            value = [7.0] * n_features if s == 2 else value  # flat: its unit is a share of its level
            items.append((f"s{s}", value))
        f.observe_many(items)
    slots = torch.tensor([f.store.slot_of(f"s{s}") for s in range(4)])
    tensors = {k: v.clone() for k, v in f.store.tensors.items() if k.startswith(hybrid.PREFIXES)}
    rows = {k: v if k in experts.SHARED or k in hybrid.ORIGIN_RING else v[slots] for k, v in tensors.items()}
    rows["slot"] = slots
    return rows, f.store.get("steps", slots) + 1, config


def copied(rows: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in rows.items()}


def one_by_one(rows, y, observed, shifted, steps, level, pred, horizons, sent):
    """The tick's hybrid part as the kernels called one at a time (its order before the three
    compiled calls): returns the network's target, where defined, its input, the served one-step
    forecast and the served mean."""
    b, d = y.shape
    slot, step = rows["slot"].numpy(), steps.numpy()
    a = {k: v.numpy() for k, v in rows.items()}
    normal, multiplier = calibration.normals(level)
    factor = np.empty((b, d))  # the scored values' phase factors, for the far widths
    growth = np.empty((b, d))  # the levels' growth a value (``level_widths``)
    level_widths.growths(slot, step, a["x_raw"], a["x_season_length"], a["x_trend"], a["x_positive"], growth)
    combined = [a[name] for name in hybrid.SCORED]
    hybrid_kernels.score(
        slot, step, y, observed, a["x_seen"], a["x_scale"], a["x_level"], a["c_origin"], a["c_origin_ref"],
        *combined, level, normal, multiplier,
        (a["c_phase"], a["c_phase_of"], a["c_phase_fit"], a["x_season_length"], a["x_raw"], factor, growth),
        (sent, a["x_nonneg"].copy(), a["o_shift_at"]),
    )  # fmt: skip
    far_at = calibration.far_array(horizons)
    hybrid_kernels.score_far(
        slot, step, y, observed, a["x_seen"], a["x_scale"], a["x_level"], a["c_far_origin"], a["c_far_q"],
        a["c_far_spread"], far_at, level, multiplier, factor, growth, a["c_far_coverage"],
        (sent, a["x_nonneg"].copy(), a["o_shift_at"]),
    )  # fmt: skip
    target, defined = np.empty((b, d)), np.empty((b, d), dtype=bool)
    hybrid_kernels.target(y, observed, a["x_seen"], a["n_base"], a["n_scale"], target, defined)
    expert_kernels.advance(slot, step, y, observed, shifted, *(a[name] for name in experts.ADVANCED))
    level_widths.follow(
        growth, a["x_positive"], shifted, a["c_q"], a["c_spread"], a["c_far_q"], a["c_far_spread"]
    )  # the widths grown with the level (``level_widths``)
    longest = np.empty((b, far_at[-1], experts.N_EXPERTS, d))  # to the longest far horizon, past Hc as a forecast
    expert_kernels.paths(longest, horizons, experts.NO_FAR, 1, slot, step, *(a[name] for name in experts.READ))
    paths = np.concatenate([longest[:, :horizons], longest[:, far_at - 1]], axis=1)  # [B, Hc + F, E - 1, d]
    paths[step % calibration.FAR_EVERY != 0, horizons:] = np.nan  # no far forecast from this origin
    extended = paths.shape[1]
    path, partial = np.empty((b, extended, d)), np.empty((b, extended, 1 + combination.COMBINERS, d))
    net = np.empty((b, horizons, 1 + combination.COMBINERS, d))
    weights = [a[name] for name in combination.FIELDS] + [a["x_positive"], a["x_season_length"], a["c_member_n"]]
    changed = (slot, step, a["o_shift_at"], a["c_origin"], a["c_origin_ref"], a["x_raw"])  # (``after_change``)
    hybrid_kernels.base(paths, *weights, changed, path, partial, net)
    a["n_base"][:] = path[:, 0]
    level_now = np.abs(a["x_level"][:, 0, REFERENCE])
    a["n_scale"][:] = np.maximum(np.maximum(a["x_scale"], UNIT_RELATIVE * level_now), UNIT_FLOOR)
    x = np.empty((b, hybrid.FEATURES * d))
    hybrid_kernels.features(
        slot, step, y, a["x_raw"], a["x_season_length"], a["x_scale"], a["x_level"], target, path[:, 0].copy(), x
    )
    a["n_correction"][:] = pred[:, :d].numpy()
    half = hybrid.half_widths(rows, horizons).numpy()  # [B, Hc, d]
    q, far_q = rows["c_q"].numpy(), rows["c_far_q"].numpy()
    far_half = np.empty(far_q.shape)
    calibration.fill_far_widths(q, far_q, far_at, half, far_half)
    own = np.where(q > 0, half, 0.0)
    full = half.copy()
    for i, k in zip(*np.nonzero(a["x_missing"]), strict=True):  # after values missing in a row: the widths of
        far_half[i, :, k] = 0.0  # (the far widths: none of their own)
        for h in range(horizons):  # that many more steps, past the calibrated horizon ``beyond`` or SLACK
            j = a["x_missing"][i, k] + h + 1
            known = calibration.beyond(q, far_q, far_at, i, k, j, math.sqrt(j / horizons))
            widest = max(
                [full[i, :, k].max()]
                + [w for h, w in zip(far_at, far_q[i, :, k], strict=True) if horizons < h < j and w > 0]
            )
            beyond = max(known, calibration.SLACK * widest)
            half[i, h, k] = full[i, j - 1, k] if j <= horizons else beyond
            own[i, h, k] = half[i, h, k] if q[i, min(j, horizons) - 1, k] > 0 else 0.0
    phased = (a["c_phase"], a["c_phase_of"], a["c_phase_fit"], a["x_season_length"], step)
    calibration.phase_widths(*phased, far_at, half, far_half)  # times the targets' phase factors
    calibration.phase_widths(*phased, far_at[:0], own, far_half[:, :0])
    mean = np.empty((b, horizons, d))
    hybrid_kernels.remember(
        paths[:, :horizons], path[:, :horizons], partial[:, :horizons], net, a["n_correction"], a["x_scale"],
        a["x_level"], a["x_nonneg"], own, slot, step % horizons, a["c_origin"], a["c_origin_ref"], mean,
    )  # fmt: skip
    hybrid_kernels.remember_far(
        path, partial, net, a["n_correction"], a["x_scale"], a["x_level"], a["x_nonneg"], a["x_seen"], far_half, slot,
        step % a["c_far_origin"].shape[1], a["c_far_origin"],
    )  # fmt: skip
    # served: nothing before a value was seen, the lower bound not below 0 where no value was
    first, width = np.where(a["x_seen"], mean[:, 0], np.nan), half[:, 0]
    lower = np.where(a["x_nonneg"] & (first - width < 0.0), 0.0, first - width)
    return target, defined, x, np.stack([first, first, lower, first + width], axis=1), mean


def equal(a: np.ndarray, b: np.ndarray) -> bool:
    same = (a == b) | (np.isnan(a) & np.isnan(b)) if a.dtype.kind == "f" else a == b
    return a.shape == b.shape and bool(np.all(same))


@pytest.mark.parametrize(("n_features", "parts"), [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_the_three_compiled_calls_give_what_the_kernels_give_one_by_one(
    n_features: int, parts: int, monkeypatch, torch_threads
) -> None:
    # parts = 2: over_rows gives each of two threads a part of the rows (the row-wise arrays sliced,
    # the shared ones whole), as at 2,048 series and more on two threads
    monkeypatch.setattr(compiled, "PARALLEL_MIN_ROWS", 1)
    torch_threads(parts)
    check_against_kernels(n_features)


def check_against_kernels(n_features: int) -> None:
    rows, steps, config = grown_rows(n_features)
    horizons, level = config.calibrated_horizon, config.interval_level
    rng = np.random.default_rng(0)
    y = 10.0 + rng.normal(size=(4, n_features))
    y[2] = 7.0  # the flat series stays flat
    observed = np.ones((4, n_features), dtype=bool)
    observed[1, 0] = False  # a value missing
    pred = torch.from_numpy(rng.normal(size=(4, n_features)).astype(np.float32))
    by_kernel = copied(rows)
    shifted = np.zeros_like(observed)
    shifted[0, 0] = True  # a level shift: the trend's level starts again there
    sent = y.copy()
    sent[3, 0] = 1e6  # a spike the outliers took at its bound: the coverage counts it as sent
    expected = one_by_one(by_kernel, y, observed, shifted, steps, level, pred, horizons, sent)

    origin = tuple(rows[name] for name in hybrid.ORIGIN_RING)
    target, defined = hybrid_tick.score_and_advance(rows, y, observed, shifted, steps, level, origin, sent)
    x, paths, base = hybrid_tick.base_and_input(rows, y, steps, target, horizons, origin)
    served, mean = hybrid_tick.remember_and_serve(rows, steps, pred, paths, base, origin)

    for name, got, want in zip(
        ("target", "defined", "input", "served", "mean"),
        (target, defined, x.numpy(), served.numpy(), mean.numpy()),
        expected,
        strict=True,
    ):
        assert equal(got, want), name
    for name in hybrid.COVERAGE:
        assert equal(rows[name].numpy(), by_kernel[name].numpy()), name
    assert not np.isnan(expected[3][:, 0]).all()  # something was served
    for name in rows:
        assert equal(rows[name].numpy(), by_kernel[name].numpy()), name  # every field, the shared ones whole
