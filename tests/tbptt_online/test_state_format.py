"""Format-2 states written before the truncation probe and the instability guards: migrated exactly
(the network-only model continues bit for bit; the hybrid's own rules changed since, see the test);
format-3 hybrid states gain the long AR expert (format 4) at weight 0; format-4 hybrid states gain
the slow combiner (format 5) with the fast one's weights.

``data/format2_before_guards.pt`` was written by the library at c56a363 (the parent of the
commit that added the probe and the guards; ``data/make_format2.py`` says how): for a network
and a hybrid model, the state after 60 ticks of three series, and every result that version
gave over the next 120 ticks.
"""

from __future__ import annotations

import math
from pathlib import Path
from statistics import NormalDist

import pytest
import torch

from tbptt_online import (
    Forecaster,
    ForecasterConfig,
    ar_changes,
    ar_levels,
    calibration,
    combination,
    expert_kernels,
    hybrid,
    outliers,
)
from tbptt_online.scoring import RECENT_SCORES, STAT
from tbptt_online.state_check import check_state
from tbptt_online.state_format import (
    FORMAT_26_COMBINERS,
    FORMAT_VERSION,
    NEW_COMBINER_FIELDS,
    NEW_EXPERT,
    OLD_MEMBERS,
    OLD_SEASON_NAMES,
    SHORT_AR,
    SHORT_AR_FIELDS,
    _with_one_table,
    current_state,
)
from tests.tbptt_online.old_formats import (
    FORMAT_10_MEMBERS,
    FORMAT_17,
    FORMAT_20,
    FORMAT_21,
    FORMAT_24,
    FORMAT_25,
    FORMAT_27,
    LEVELS_AR,
    MEDIAN,
    MEMBER_FIELDS,
    SINCE_16,
    as_format_3,
    as_format_4,
    as_format_5,
    as_format_6,
    as_format_8,
    as_format_9,
    as_format_10,
    as_format_11,
    as_format_12,
    as_format_13,
    as_format_14,
    as_format_15,
    as_format_16,
    as_format_17,
    as_format_19,
    as_format_20,
    as_format_23,
    as_format_26,
    format_10_layout,
    format_17_layout,
    format_23_layout,
    same,
    without_levels_ar,
)

FIXTURE = Path(__file__).parent / "data" / "format2_before_guards.pt"
SERIES = ("a", "b", "c")


def value(series: int, t: int) -> float:  # as data/make_format2.py
    return 10.0 * (series + 1) + 3.0 * math.sin(2 * math.pi * t / 12) + math.sin(1.7 * t * (series + 2))


def as_saved(old: dict) -> list:
    """An old state's store fields that its migration keeps as they are (format 15 makes ``x_missing``
    of ``x_last_observed``; format 18 inserts the short AR's column into the members' fields: those
    are checked by ``test_a_format_17_state_gains_the_short_ar_on_the_levels_blank_at_no_weight``; format 25
    appends the recent errors' rows to ``stats``: ``saved_stats``)."""
    changed = ("x_last_observed", "stats", *MEMBER_FIELDS)
    return [(k, v) for k, v in old["store"]["tensors"].items() if k not in changed]


def saved_stats(old: dict, migrated: dict) -> bool:
    """Whether ``migrated``'s stats are ``old``'s with format 25's recent errors' rows appended at 0."""
    stats, before = migrated["stats"], old["store"]["tensors"]["stats"]
    return torch.equal(stats[:, : before.shape[1]], before) and not stats[:, RECENT_SCORES:].any()


def as_format_17_migrated(state: dict) -> dict:
    """``state`` as format 17 wrote it, migrated (the short AR on the levels blank, at no weight):
    what a model loaded from an older state of the same series goes on as, bit for bit."""
    return current_state(as_format_17(state))


def continue_from(forecaster: Forecaster, start: int, ticks: int) -> torch.Tensor:
    rows = []
    for t in range(start, start + ticks):
        for r in forecaster.observe_many([(s, value(i, t)) for i, s in enumerate(SERIES)]):
            served = (r.forecast_next.mean, r.forecast_next.lower, r.forecast_next.upper)  # None: no interval yet
            rows.append([math.nan if v is None else v for v in served] + [float(r.updated)])
    return torch.tensor(rows, dtype=torch.float64)


def from_format_26(forecaster: Forecaster) -> Forecaster:
    """``forecaster`` as a format-26 state of it loads (its pooled combiner's record the fast one's: format 27):
    what a model loaded from any older state of the same series serves, the rest alike."""
    return Forecaster.from_state_dict(as_format_26(forecaster.state_dict()))


@pytest.fixture(scope="module")
def old_states() -> dict:
    return torch.load(FIXTURE, weights_only=True)


@pytest.mark.parametrize("kind", ["network", "hybrid"])
def test_a_checkpoint_from_before_the_guards_continues_as_the_version_that_wrote_it(old_states, kind):
    saved = old_states[kind]
    state = saved["state"]
    assert state["format"] == 2 and "probe" not in state and "guard" not in state["engine"]
    check_state(state)  # an imported checkpoint is checked as it will load: migrated
    forecaster = Forecaster.from_state_dict(state)
    after = continue_from(forecaster, 60, 120)
    if kind == "network":
        # Every forecast and interval as that version gave them, to float32's rounding: the fixture
        # was written on another CPU, and torch's float32 GRU kernels round differently on another
        # instruction set (on an AMD EPYC the served values differ by 2.8e-8 relative at most, from
        # the 8th tick on; equal bit for bit on the machine that wrote it). The updates are the same.
        assert torch.equal(after[:, 3], saved["after"][:, 3])
        assert torch.allclose(after, saved["after"], rtol=1e-6, atol=0, equal_nan=True)
    else:  # the hybrid's rules changed after c56a363: its intervals (the calibration's miss count and
        # rate) and its reseasoned trend (the seasons are looked for again at step 72, the 12th tick);
        # the long AR joins at weight 0; the slow combiner joins with the fast one's weights and parts
        # from it from the first new value on (the served means 4.1e-5 apart at most over the first 11
        # ticks, measured; 1.5e-11 before it, from the compiled sums' order alone); and since session
        # 20 the combiners' weights sharpen with their evidence (the served means up to 1.03 % apart
        # over the 120 ticks, measured; rtol 1e-4 before)
        assert torch.equal(after[:, 3], saved["after"][:, 3])  # the same updates
        assert torch.allclose(after[:, 0], saved["after"][:, 0], rtol=2e-2, atol=0)
    assert forecaster.engine.updates == saved["updates"]
    stats = forecaster.update_stats()
    assert (stats.explosions, stats.divergences, stats.blowups, stats.rollbacks) == (0, 0, 0, 0)


@pytest.mark.parametrize("kind", ["network", "hybrid"])
def test_the_migrated_state_starts_the_probe_and_guards_fresh_and_keeps_the_rest(old_states, kind):
    state = old_states[kind]["state"]
    before = {k: v.clone() for k, v in state["network"].items()}
    migrated = current_state(state)
    assert migrated["format"] == FORMAT_VERSION == 27
    assert state["format"] == 2 and "probe" not in state  # the input is left as it was
    guard = migrated["engine"]["guard"]
    assert guard["lr_scale"] == 1.0 and guard["norms"] == [] and set(guard["counts"].values()) == {0}
    assert guard["good"]["at"] == state["engine"]["attempts"]
    forecaster = Forecaster.from_state_dict(state)
    names = [name for name, _ in forecaster.network.named_parameters()]
    for good, name in zip(guard["good"]["params"], names, strict=True):
        assert torch.equal(good, before[name])  # the last good copy: the saved weights
    assert guard["good"]["optimizer"].keys() == state["engine"]["optimizer"]["state"].keys()
    assert [r[5] for r in migrated["engine"]["recent"]] == [0] * len(state["engine"]["recent"])  # not recorded
    assert [r[:5] for r in migrated["engine"]["recent"]] == state["engine"]["recent"]
    assert forecaster.probe.tensors["slots"][:3].tolist() == [0, 1, 2] and forecaster.probe.probes == 0
    assert forecaster.config == ForecasterConfig.from_dict(state["config"])  # the new fields at their defaults
    for key in ("observations", "sampler"):
        assert migrated[key] is state[key]
    tensors, kept = state["store"]["tensors"], format_10_layout(migrated["store"]["tensors"])  # formats 11, 12: below
    old = [k for k in range(OLD_MEMBERS + 1) if k != NEW_EXPERT]  # the old members' columns
    ring = [k for k in range(OLD_MEMBERS + 2) if k != NEW_EXPERT]  # and in the ring: then served
    half, combiners = FORMAT_10_MEMBERS + 1, slice(FORMAT_10_MEMBERS + 2, None)  # the new ring's columns
    for key, value in tensors.items():  # every field as saved; the hybrid's ring of past forecasts
        if key == "c_origin":  # gains the served half-widths' slot, 0 = unknown, the long AR's and the
            # combiners' columns (written before the half-widths' slot)
            assert torch.equal(kept[key][:, :, :, ring], value)
            assert kept[key][:, :, :, half].abs().max() == 0
            assert torch.equal(kept[key][:, :, :, NEW_EXPERT], value[:, :, :, OLD_MEMBERS])  # the served ones
            for column in range(FORMAT_26_COMBINERS):  # (format 27's pooled combiner's: the fast one's, below)
                assert torch.equal(kept[key][:, :, :, combiners][:, :, :, column], value[:, :, :, OLD_MEMBERS])
        elif key in ("c_loss", "c_member_abs"):  # the long AR's column: at the cap, and the naive's
            assert torch.equal(kept[key].index_select(-2, torch.tensor(old)), value)
        elif key == "stats":  # gains interval_n (format 7), equal to the scored forecasts; restarts (10), none
            torch.testing.assert_close(kept[key][:, :-3], value, rtol=0, atol=0, equal_nan=True)  # (NaN: no value)
            assert torch.equal(kept[key][:, STAT["interval_n"]], value[:, STAT["score_n"]])
            assert not kept[key][:, STAT["restarts"] :].any()
        elif key == "x_last_observed":  # format 15's x_missing (0 or 1), read back as the flag
            assert torch.equal(kept[key], value)
        elif key == "x_ar_p":  # made symmetric (format 19): rounding had left it 1e-17 off
            assert torch.equal(kept[key], (value + value.transpose(-2, -1)) / 2)
            assert 0 < (value - value.transpose(-2, -1)).abs().max() < 1e-15
        else:
            assert same(kept[key], value, key), key
    if kind == "hybrid":
        assert torch.equal(kept["c_loss"][:, :, NEW_EXPERT], combination.CAP * tensors["c_count"])
        assert torch.equal(kept["c_member_abs"][:, NEW_EXPERT], tensors["c_member_abs"][:, 0])
        assert torch.equal(kept["x_arc"], torch.zeros_like(kept["x_arc"]))
        assert torch.equal(kept["x_arc_p"][0, 0], ar_changes.PRIOR * torch.eye(ar_changes.K, dtype=torch.float64))
        rows = hybrid.rows_at(forecaster.store.tensors, torch.tensor([0, 1, 2]))
        weights = hybrid.served_weights(rows)
        # it starts with no weight: its loss at the cap (an exact 0 until session 20; since the weights
        # sharpen with the combiners' evidence, a young horizon's can be 1e-307; since session 28, when a
        # long horizon's evidence counts as N / sqrt(h), 1.8e-262)
        assert weights[:, :, NEW_EXPERT].abs().max() < 1e-250
    else:
        assert "c_loss" not in kept and "x_arc" not in kept and "c_slow_loss" not in kept
    again = Forecaster.from_state_dict(forecaster.state_dict())  # written back in the current format
    assert forecaster.state_dict()["format"] == FORMAT_VERSION
    assert torch.equal(continue_from(again, 60, 8), continue_from(forecaster, 60, 8))


def test_a_format_2_state_that_has_the_probe_is_read_as_it_is():
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, hybrid=False, probe_every=2))
    continue_from(forecaster, 0, 30)
    state = as_format_6(forecaster.state_dict())  # without what format 7 added
    assert forecaster.probe.probes > 0
    state["format"] = 2  # as 43e0739 wrote it: the probe and the guards, numbered 2
    copy = Forecaster.from_state_dict(state)
    assert torch.equal(copy.probe.tensors["phi"], forecaster.probe.tensors["phi"])
    assert torch.equal(continue_from(copy, 30, 10), continue_from(forecaster, 30, 10))


def test_a_format_2_state_that_cannot_be_migrated_says_why(old_states):
    state = dict(old_states["network"]["state"])
    state["network"] = {k: v for k, v in state["network"].items() if not k.startswith("head")}
    with pytest.raises(ValueError, match=r"format=2 state \(written before the truncation probe .*cannot be migrated"):
        Forecaster.from_state_dict(state)
    with pytest.raises(ValueError, match=r"cannot be migrated to format 27: it has no '.*' where format 2 has one"):
        check_state(state)


def test_a_malformed_format_24_state_is_told_which_part_is_missing_or_malformed():
    # a hostile test (session 57): these were told the exception alone ("KeyError: 'stats'", "AttributeError: 'list'
    # object has no attribute 'shape'")
    from tests.tbptt_online.old_formats import as_format_24

    forecaster = Forecaster(ForecasterConfig(hidden_size=4))
    forecaster.observe_many([("a", 1.0), ("a", 2.0), ("a", 3.0)])
    old = as_format_24(forecaster.state_dict())
    missing = {
        **old,
        "store": {**old["store"], "tensors": {k: v for k, v in old["store"]["tensors"].items() if k != "stats"}},
    }
    with pytest.raises(ValueError, match=r"format=24 .*: it has no 'stats' where format 24 has one \(a part"):
        check_state(missing)
    as_list = {**old, "store": {**old["store"], "tensors": {**old["store"]["tensors"], "stats": [1.0, 2.0]}}}
    with pytest.raises(ValueError, match=r"format=24 .*: a part of it is not of the type or shape format 24 writes"):
        check_state(as_list)


@pytest.mark.parametrize(
    ("found", "message"),
    [
        (1, "format=1 is a checkpoint of tbptt-online 0.1"),
        (28, "format=28 is invalid: this version reads formats 2 to 27"),
    ],
)
def test_formats_it_cannot_read_are_refused_naming_why(found, message):
    state = Forecaster(ForecasterConfig(hidden_size=4)).state_dict()
    state["format"] = found
    with pytest.raises(ValueError, match=message):
        Forecaster.from_state_dict(state)
    with pytest.raises(ValueError, match=message):
        check_state(state)


def test_a_format_3_hybrid_state_gains_the_long_ar_at_no_weight():
    """A format-3 state as the previous version wrote it (the long AR's fields and columns
    removed): migrated, the old experts go on as they would have, the long AR learns from the
    next values on and keeps (next to) no weight while its loss comes down from the cap (the
    outliers' fields, which format 3 had not either, start cleared: off, so they play no part)."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, lr=0.0, seed=1, max_season_length=12, outlier_sigmas=None)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    old = as_format_3(state)
    check_state(old)
    migrated = Forecaster.from_state_dict(old)
    fresh = Forecaster.from_state_dict(state)
    continue_from(migrated, 40, 10)
    continue_from(fresh, 40, 10)
    rows = hybrid.rows_at(migrated.store.tensors, torch.tensor([0, 1, 2]))
    weights = hybrid.served_weights(rows)
    # still (next to) no weight: its loss started at the cap (below 1e-100 until session 20; the
    # weights now sharpen with the combiners' evidence, and 50 values are little: 5.8e-93; 5.4e-65 since
    # session 28, where a long horizon's evidence counts as N / sqrt(h))
    assert weights[:, :, NEW_EXPERT].max() < 1e-50
    assert bool((rows["x_arc"].abs().sum(dim=-1) > 0).all())  # and it learns from the new values
    fresh_rows = hybrid.rows_at(fresh.store.tensors, torch.tensor([0, 1, 2]))
    for key in ("x_level", "x_trend", "x_ar", "c_count"):  # the old experts went on as they would have
        assert torch.equal(rows[key], fresh_rows[key]), key


def test_a_format_4_hybrid_state_gains_the_slow_combiner_with_the_fast_ones_weights():
    """A format-4 state as the previous version wrote it (no slow combiner, no mixture, no
    combiners' columns in the ring): migrated, the slow combiner starts from the fast one's
    losses in the series' units (the same weights), the mixture even, so the served weights are
    the fast combiner's to within an ulp (and, from format 27, the pooled combiner's: the mean of the fast one's
    and of its one-step ones); then both learn from the next values."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, lr=0.0, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    old = as_format_4(forecaster.state_dict())
    assert old["format"] == 4 and not set(NEW_COMBINER_FIELDS) & set(old["store"]["tensors"])
    check_state(old)
    migrated = current_state(old)
    tensors, before = format_10_layout(migrated["store"]["tensors"]), old["store"]["tensors"]  # formats 11, 12: below
    unit = torch.maximum(before["x_scale"], 1e-9 * (before["x_level"][:, 0, 3].abs() + 1.0))  # [C, d] local scale
    assert torch.equal(tensors["c_slow_loss"], before["c_loss"] * unit[:, None, None, :])
    assert torch.equal(tensors["c_slow_count"], before["c_count"])
    assert tensors["c_meta_loss"].abs().max() == 0 and tensors["c_meta_count"].abs().max() == 0
    ring, served = tensors["c_origin"], before["c_origin"][:, :, :, FORMAT_10_MEMBERS]
    assert torch.equal(ring[:, :, :, : FORMAT_10_MEMBERS + 2], before["c_origin"])
    for column in (FORMAT_10_MEMBERS + 2, FORMAT_10_MEMBERS + 3):  # past forecasts: the served ones
        assert torch.equal(ring[:, :, :, column], served)
    loaded = Forecaster.from_state_dict(old)
    rows = hybrid.rows_at(loaded.store.tensors, torch.tensor([0, 1, 2]))
    plain = combination.weights(rows["c_loss"], rows["c_count"], hybrid.allowed(rows))  # an EWA of the fast losses
    _, each, _ = combination.served_weights(rows, hybrid.allowed(rows))  # [B, Hc, COMBINERS, E, d]
    # the slow combiner's weights are that EWA (its losses the fast one's in units); the fast one's are too at one
    # step, past it they borrow the horizon before's (session 63); the pooled one's (format 27) are the mean of the
    # fast one's and of its one-step ones; the mixture even (at one step the fast and slow ones alone)
    assert torch.allclose(each[:, :, 1], plain, rtol=1e-12, atol=1e-300)
    assert torch.allclose(each[:, 0, 0], plain[:, 0], rtol=1e-12, atol=1e-300)
    fast = each[:, :, 0]
    expected = (fast + plain + (fast + fast[:, :1]) / 2) / 3
    expected[:, 0] = plain[:, 0]
    assert torch.allclose(hybrid.served_weights(rows), expected, rtol=1e-12, atol=1e-300)
    continue_from(loaded, 40, 20)
    rows = hybrid.rows_at(loaded.store.tensors, torch.tensor([0, 1, 2]))
    assert bool((rows["c_meta_count"] > 0).all())  # the mixture scores the combiners from the next values on
    check_state(loaded.state_dict())


def test_a_format_5_hybrid_state_gains_the_outliers_fields_as_a_new_series_has_them():
    """A format-5 state (before the outliers' fields): migrated, every saved field is kept and
    the new ones start as a new series' (no run, nothing taken at a bound, no error taken), so
    the model goes on exactly as the same state with those fields cleared does."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    forecaster.observe("a", 1e6)  # an outlier: its run and count are not 0 when saved
    state = forecaster.state_dict()
    assert state["store"]["tensors"]["o_count"].sum() == 1
    old = as_format_5(state)
    assert old["format"] == 5 and not any(k.startswith("o_") for k in old["store"]["tensors"])
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION
    kept, before = format_10_layout(migrated["store"]["tensors"]), old["store"]["tensors"]  # formats 11, 12: below
    for key, value in before.items():
        if key == "stats":  # gains interval_n (format 7), restarts and restarted_steps (format 10)
            torch.testing.assert_close(kept[key][:, :-3], value, rtol=0, atol=0, equal_nan=True)
        elif key in MEMBER_FIELDS or key == "x_last_observed":  # out by format_10_layout (and format 15's
            assert torch.equal(kept[key], value), key  # x_missing read back as the flag)
        else:
            assert same(kept[key], value, key), key
    for key in outliers.FIELDS:  # (format 16's o_recent too: format_10_layout leaves it out)
        assert torch.equal(migrated["store"]["tensors"][key], torch.zeros_like(state["store"]["tensors"][key])), key
    cleared = current_state(as_format_8(state))  # its ring as format 8 held it (the same as the migrated one's)
    cleared = {**cleared, "store": {**cleared["store"], "tensors": {**cleared["store"]["tensors"]}}}
    for key in outliers.FIELDS:
        cleared["store"]["tensors"][key] = torch.zeros_like(state["store"]["tensors"][key])
    loaded, reference = Forecaster.from_state_dict(old), Forecaster.from_state_dict(cleared)
    assert torch.equal(continue_from(loaded, 40, 20), continue_from(reference, 40, 20))


def test_a_format_8_hybrid_state_gains_the_rings_references_at_zero_and_continues():
    # format 8's ring held the forecasts themselves: a reference of 0 means just that, so the
    # migrated model scores them as before; later origins are written relative to their one-step mean
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12))
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    old = as_format_8(state)
    assert old["format"] == 8 and "c_origin_ref" not in old["store"]["tensors"]
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    kept = format_10_layout(migrated["store"]["tensors"])  # the median's and levels AR's columns: formats 11, 12
    assert torch.equal(kept["c_origin"], old["store"]["tensors"]["c_origin"])
    assert torch.equal(kept["c_origin_ref"], torch.zeros_like(state["store"]["tensors"]["c_origin_ref"]))
    # (format 21's scales and multipliers as a format-20 state gains them: format 8 had none either)
    loaded, original = Forecaster.from_state_dict(old), Forecaster.from_state_dict(as_format_20(state))
    # the same to float32's rounding of the ring at the series' level (format 8's precision)
    torch.testing.assert_close(continue_from(loaded, 40, 20), continue_from(original, 40, 20), rtol=1e-5, atol=1e-5)
    assert bool((loaded.store.tensors["c_origin_ref"] != 0).any())  # the new origins' references


def test_a_format_9_state_gains_the_series_restart_counts_at_zero_and_continues_bit_identically():
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12))
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    old = as_format_9(state)
    assert old["format"] == 9 and old["store"]["tensors"]["stats"].shape[1] == STAT["restarts"]
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    stats = migrated["store"]["tensors"]["stats"]  # (the restarts' rows zeros: none; format 25's recent ones 0)
    assert torch.equal(stats[:, :RECENT_SCORES], state["store"]["tensors"]["stats"][:, :RECENT_SCORES])
    # against the same state without the long AR on the levels (format 12's, which a format-9 state
    # gains blank, below): bit for bit
    loaded, original = Forecaster.from_state_dict(old), Forecaster.from_state_dict(as_format_11(state))
    assert torch.equal(continue_from(loaded, 40, 20), continue_from(original, 40, 20))


def test_a_format_10_state_gains_the_excursions_with_the_usual_difference_measured_on_its_ring():
    """Format 10 had no excursions (``excursions.py``): a migrated series has none under way, and
    the usual size of its seasonal differences is the median of |y_t - y_{t-12}| over the values
    its ring holds (computed here from the values sent), as a season found now starts it; the
    model goes on as the one that never stopped (no excursion in these series either way)."""
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, season_length=12))
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    old = as_format_10(state)
    assert old["format"] == 10 and "x_sdiff" not in old["store"]["tensors"]
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    kept = migrated["store"]["tensors"]
    for key in ("x_excursion", "x_repaired"):  # none under way, none repaired
        assert torch.equal(kept[key], torch.zeros_like(state["store"]["tensors"][key])), key
    # and the median expert (format 11 too) starts at the median of the values its ring holds; its
    # columns below are as format 4 gave the long AR's (torch's median: the lower of the middle two)
    held = min(40, kept["x_raw"].shape[1])  # the values the ring holds: the last ones sent
    for i, name in enumerate(SERIES):
        sent = [value(i, t) for t in range(40 - held, 40)]
        differences = sorted(abs(sent[t] - sent[t - 12]) for t in range(12, held))
        slot = forecaster.store.slot_of(name)
        assert kept["x_sdiff"][slot, 0].item() == pytest.approx(differences[(len(differences) - 1) // 2], rel=1e-12)
        assert kept["x_median"][slot, 0].item() == sorted(sent)[(held - 1) // 2]
    tensors, count = state["store"]["tensors"], kept["c_count"]
    at, served = MEDIAN, hybrid.N_MEMBERS  # the ring's served column (after the members)
    assert torch.equal(kept["c_loss"][:, :, at], combination.CAP * count)  # the worst it could be: weight 0
    assert torch.equal(kept["c_member_abs"][:, at], kept["c_member_abs"][:, 0])  # the naive's
    assert torch.equal(kept["c_origin"][:, :, :, at], kept["c_origin"][:, :, :, served])  # the served ones
    assert torch.equal(format_10_layout(kept)["c_slow_loss"], old["store"]["tensors"]["c_slow_loss"])
    unit = torch.maximum(kept["x_scale"], 1e-9 * kept["x_level"][:, 0, 3].abs()).clamp(min=1e-100)  # [C, d]
    assert torch.equal(kept["c_slow_loss"][:, :, at], combination.CAP * unit[:, None] * kept["c_slow_count"])
    assert tensors["c_loss"].shape == kept["c_loss"].shape
    loaded, original = Forecaster.from_state_dict(old), Forecaster.from_state_dict(as_format_11(state))
    assert torch.equal(continue_from(loaded, 40, 20), continue_from(original, 40, 20))  # seasonal: no median weight


def test_a_format_11_state_gains_the_long_ar_on_the_levels_blank_at_no_weight():
    """Format 11 had no long AR on the levels (``ar_levels.py``): migrated, its fields are a new
    series' (no coefficients, the prior's P, no reference), its columns the worst it could be
    (the cap, as format 4 gave the long AR on the changes); the other members go on exactly as
    they would have, and it learns from the next values with (next to) no weight."""
    state, old, kept = older_hybrid(as_format_11, 11, "x_arl")
    blank = ar_levels.fields(*state["store"]["tensors"]["x_scale"].shape)
    for key, value in blank.items():
        assert torch.equal(kept[key], value), key
    for key, value in as_saved(old):  # every other field as saved (format 15's names)
        if key not in MEMBER_FIELDS:
            assert same(kept[OLD_SEASON_NAMES.get(key, key)], value, key), key
    assert torch.equal(without_levels_ar(kept)["c_loss"], old["store"]["tensors"]["c_loss"])
    others = ("x_level", "x_trend", "x_ar", "x_arc", "x_median", "c_count")
    joins_at_no_weight(state, old, kept, LEVELS_AR, ("x_arl", "x_arl_unit"), others)


def older_hybrid(as_older, number: int, prefix: str) -> tuple[dict, dict, dict]:
    """A hybrid model's state after 40 values (learning rate 0), as format ``number`` wrote it
    (``as_older``: none of its store's fields starts with ``prefix``), checked and migrated: the
    state, the older one and the migrated store's tensors."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, lr=0.0, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    old = as_older(state)
    assert old["format"] == number and not any(k.startswith(prefix) for k in old["store"]["tensors"])
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    return state, old, migrated["store"]["tensors"]


def joins_at_no_weight(state: dict, old: dict, kept: dict, at: int, fields: tuple[str, str], others: tuple) -> None:
    """What a migration that adds an expert (formats 12 and 18) gives it, in ``kept`` (the migrated
    store's tensors): its columns in the members' fields at ``at`` the worst it could be (its losses
    at the cap times each combiner's count, its one-step errors the naive's, its past forecasts the
    old ring's served ones); a model loaded from ``old``, after 10 more ticks, gives it (next to) no
    weight while it learns (``fields``: its coefficients and its unit, no longer 0), and ``others``
    (the other members' states) went on as a model loaded from ``state`` (the current format)."""
    assert torch.equal(kept["c_loss"][:, :, at], combination.CAP * kept["c_count"])
    unit = torch.maximum(kept["x_scale"], 1e-9 * kept["x_level"][:, 0, 3].abs()).clamp(min=1e-100)  # [C, d]
    assert torch.equal(kept["c_slow_loss"][:, :, at], combination.CAP * unit[:, None] * kept["c_slow_count"])
    assert torch.equal(kept["c_member_abs"][:, at], kept["c_member_abs"][:, 0])  # the naive's
    served = old["store"]["tensors"]["c_origin"].shape[3] - 4  # the old ring's served column: after its members
    assert torch.equal(kept["c_origin"][:, :, :, at], old["store"]["tensors"]["c_origin"][:, :, :, served])
    loaded, fresh = Forecaster.from_state_dict(old), Forecaster.from_state_dict(state)
    continue_from(loaded, 40, 10)
    continue_from(fresh, 40, 10)
    rows = hybrid.rows_at(loaded.store.tensors, torch.tensor([0, 1, 2]))
    # its loss started at the cap: 2.6e-77 (since session 28, a long horizon's evidence N / sqrt(h))
    assert hybrid.served_weights(rows)[:, :, at].max() < 1e-50
    coefficients, its_unit = fields
    assert bool((rows[coefficients].abs().sum(dim=-1) > 0).all()) and bool((rows[its_unit] > 0).all())  # it learns
    fresh_rows = hybrid.rows_at(fresh.store.tensors, torch.tensor([0, 1, 2]))
    for key in others:  # the others went on as they would have
        assert torch.equal(rows[key], fresh_rows[key]), key


def test_a_format_17_state_gains_the_short_ar_on_the_levels_blank_at_no_weight():
    """Format 17 had no short AR on the levels (``ar_short``): migrated, its fields are a new
    series' (no coefficients, the prior's P, no units) after ``x_arl_from``, its columns the worst
    it could be (the cap, as format 12 gave the long one); every other field is the one saved, the
    other members go on exactly as they would have, and it learns from the next values with (next
    to) no weight."""
    state, old, kept = older_hybrid(as_format_17, 17, "x_ars")
    assert list(kept) == list(state["store"]["tensors"])  # names and order
    blank = ar_levels.fields(*state["store"]["tensors"]["x_scale"].shape)
    for key in SHORT_AR_FIELDS:
        assert torch.equal(kept[key], blank[key]), key
    assert all(same(kept[k], v, k) for k, v in as_saved(old))  # every other field as saved
    for key in MEMBER_FIELDS:  # the old members' columns as saved
        assert torch.equal(format_17_layout(kept)[key], old["store"]["tensors"][key]), key
    others = ("x_level", "x_trend", "x_ar", "x_arc", "x_arl", "x_median", "c_count")
    joins_at_no_weight(state, old, kept, SHORT_AR, ("x_ars", "x_ars_unit"), others)


def test_a_format_18_state_has_its_p_made_symmetric_and_a_drifted_or_indefinite_fit_started_again():
    """Format 18's least-squares P drifted from symmetry (``rls``): migrated, each P is (P + P') / 2; a
    fit whose P was off by ``rls.ASYMMETRY`` of its largest entry or more, or is indefinite once
    symmetric, starts again at its prior with no coefficients; a fit within rounding keeps its
    coefficients, and a store whose P were exactly symmetric is kept as it was saved."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, lr=0.0, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    state = as_format_19(forecaster.state_dict())
    clean = current_state({**state, "format": 18})
    assert all(same(clean["store"]["tensors"][k], v, k) for k, v in as_saved({**state, "format": 18}))  # as saved
    tensors = {k: v.clone() for k, v in state["store"]["tensors"].items()}
    p = tensors["x_arc_p"]  # [C, d, K, K]
    saved = p.clone()
    p[0, 0, 0, 1] += 1e-9 * p[0, 0].abs().max()  # a: rounding's drift, within ASYMMETRY
    p[1, 0, 2, 3] += 1e-3 * p[1, 0].abs().max()  # b: drifted
    k = p.shape[-1]
    p[2, 0] = 1.5 * torch.eye(k, dtype=p.dtype) - 0.5  # c: symmetric, a positive diagonal, indefinite (1 - K / 2)
    old = {**state, "format": 18, "store": {**state["store"], "tensors": tensors}}
    migrated = current_state(old)["store"]["tensors"]
    assert torch.equal(migrated["x_arc_p"][0, 0], (p[0, 0] + p[0, 0].T) / 2)
    assert torch.equal(migrated["x_arc"][0], tensors["x_arc"][0])  # a keeps its fit
    for row in (1, 2):  # b and c start again
        assert torch.equal(migrated["x_arc_p"][row, 0], ar_changes.PRIOR * torch.eye(k, dtype=p.dtype))
        assert migrated["x_arc"][row].abs().max() == 0
    assert torch.equal(saved[0, 0], state["store"]["tensors"]["x_arc_p"][0, 0])  # the input is not changed
    for key in ("x_ar_p", "x_arl_p", "x_ars_p", "x_ar", "x_arl", "x_ars"):  # exactly symmetric: as saved
        assert migrated[key] is tensors[key], key
    check_state({**state, "format": FORMAT_VERSION, "store": {**state["store"], "tensors": migrated}})
    with pytest.raises(ValueError, match=r"x_arc_p.* is invalid: not symmetric"):
        check_state({**old, "format": FORMAT_VERSION, "store": current_state({**old, "format": 19})["store"]})


def test_a_state_saved_with_a_bound_since_tightened_loads_with_the_value_moved_to_it(caplog):
    # interval_level below 0.5 and truncation_bias above 1 were taken until session 26: a state saved then
    # loads (from_state_dict, load_state, check_state) with the values at the nearest ends, and says so in
    # the log; the upgrade quarantined such models before (a hostile test)
    f = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, max_season_length=12))
    for t in range(12):
        f.observe("s", float(t % 4))
    state = f.state_dict()
    old = {**state, "config": {**state["config"], "interval_level": 0.3, "truncation_bias": 2.0}}
    check_state(old)
    loaded = Forecaster.from_state_dict(old)
    assert (loaded.config.interval_level, loaded.config.truncation_bias) == (0.5, 1.0)
    assert old["config"]["interval_level"] == 0.3  # the caller's state is not changed
    assert "interval_level=0.3 is outside [0.5, 0.999] since session 26: taken as 0.5" in caplog.text
    loaded.observe("s", 1.0)
    forecast = loaded.forecast("s", horizon=2)
    assert forecast.level == 0.5 and all(math.isfinite(x) for x in forecast.lower + forecast.upper)
    with pytest.raises(ValueError, match=r"interval_level=0.3 is invalid"):
        ForecasterConfig.from_dict(old["config"])  # a new config is refused as before


def test_a_format_12_state_gains_the_season_runs_as_if_each_season_had_just_been_found():
    """Format 12 had no ``x_season_runs``: migrated, a series with a season has a run of 1, one
    without 0 (the next detection that gives the season again holds it); every other field is
    as saved, and the model goes on as a fresh one would until a detection asks."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, lr=0.0, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    forecaster.observe("flat", 1.0)  # a fourth series, too young for a season
    state = forecaster.state_dict()
    tensors = state["store"]["tensors"]
    seasonal = tensors["x_season_length"][:, :, 0] > 0  # [C, d]
    assert int(seasonal.sum()) == 3 and tensors["x_season_runs"][:, 0].tolist()[:3] == [4, 1, 2]
    old = as_format_12(state)
    assert old["format"] == 12 and {"x_period"} == {"x_period", "x_period_runs"} & old["store"]["tensors"].keys()
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    kept = migrated["store"]["tensors"]
    assert torch.equal(kept["x_season_runs"], seasonal.long())
    assert all(same(kept[OLD_SEASON_NAMES.get(k, k)], v, k) for k, v in as_saved(old))  # the rest as saved
    loaded, fresh = Forecaster.from_state_dict(old), Forecaster.from_state_dict(as_format_17_migrated(state))
    assert torch.equal(continue_from(loaded, 40, 7), continue_from(fresh, 40, 7))  # to 47: no detection yet


def test_a_format_13_state_gains_the_never_negative_flags_from_what_it_kept():
    """Format 13 had no ``x_nonneg``: migrated, it is true where every value was > 0
    (``x_positive``) or where all the series' values are in its ring and none is below 0, false
    where one was below 0 or older values are unknown; every other field is as saved."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12)
    ring = config.values_ring_size  # 39
    forecaster = Forecaster(config)
    for t in range(ring + 11):
        forecaster.observe("positive", 5.0 + t % 3)
        forecaster.observe("old counter", float(t % 2))  # 0 and 1: its first values left the ring
        if t < 10:
            forecaster.observe("young counter", float(t % 2))
            forecaster.observe("once below 0", -1.0 if t == 4 else 2.0)
    state = forecaster.state_dict()
    old = as_format_13(state)
    assert old["format"] == 13 and not {"x_nonneg", "c_shape"} & old["store"]["tensors"].keys()
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    kept = migrated["store"]["tensors"]
    names = ("positive", "old counter", "young counter", "once below 0")
    slots = [state["store"]["names"].index(name) for name in names]
    assert kept["x_nonneg"][slots, 0].tolist() == [True, False, True, False]
    assert state["store"]["tensors"]["x_nonneg"][slots, 0].tolist() == [True, True, True, False]  # as it was kept
    assert torch.equal(kept["c_shape"], torch.ones_like(state["store"]["tensors"]["c_shape"]))
    assert not torch.equal(state["store"]["tensors"]["c_shape"], kept["c_shape"])  # learned since; unknown before
    assert all(same(kept[OLD_SEASON_NAMES.get(k, k)], v, k) for k, v in as_saved(old))  # the rest as saved
    loaded, fresh = Forecaster.from_state_dict(old), Forecaster.from_state_dict(as_format_17_migrated(state))
    assert loaded.forecast("young counter", horizon=3).mean == fresh.forecast("young counter", horizon=3).mean
    tracked, half = loaded.forecast("positive", horizon=3), loaded.forecast("positive", horizon=3, level=0.5)
    ratio = NormalDist().inv_cdf(0.75) / NormalDist().inv_cdf(0.95)  # as format 13 served level 0.5
    for wide, narrow, mean in zip(tracked.upper, half.upper, half.mean, strict=True):
        assert narrow - mean == pytest.approx(ratio * (wide - mean), rel=1e-12)


def test_a_format_14_state_loads_with_its_season_fields_renamed_and_goes_on_bit_for_bit():
    """Format 14 called a season's length ``x_period`` (and its runs ``x_period_runs``): migrated,
    the same tensors are under the new names, in the same order, and a model loaded from it
    forecasts and learns as the one that never left format 15, through a detection."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    old = as_format_14(state)
    assert old["format"] == 14 and {"x_period", "x_period_runs"} <= old["store"]["tensors"].keys()
    assert not {"x_season_length", "x_season_runs"} & old["store"]["tensors"].keys()
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    assert list(migrated["store"]["tensors"]) == list(state["store"]["tensors"])  # names and order
    kept = migrated["store"]["tensors"]
    later = ("x_missing", *SINCE_16, *SHORT_AR_FIELDS, *MEMBER_FIELDS, *FORMAT_20, *FORMAT_21, *FORMAT_24, *FORMAT_25)
    later += ("stats",)  # (format 25's recent errors' rows)
    assert all(same(kept[k], v, k) for k, v in state["store"]["tensors"].items() if k not in later)
    assert torch.equal(kept["x_missing"], state["store"]["tensors"]["x_missing"])  # no value missing: 0
    loaded, fresh = Forecaster.from_state_dict(old), Forecaster.from_state_dict(as_format_17_migrated(state))
    assert torch.equal(continue_from(loaded, 40, 60), continue_from(fresh, 40, 60))  # past a detection
    assert loaded.series_stats("a").seasons == fresh.series_stats("a").seasons != []


def test_a_format_14_flag_that_is_not_a_bool_is_refused_naming_it():
    # a review (session 35): a uint8 flag was inverted into runs of 254 and 255, which loaded
    state = as_format_14(Forecaster(ForecasterConfig(hidden_size=4, max_season_length=12)).state_dict())
    flag = state["store"]["tensors"]["x_last_observed"]
    state["store"]["tensors"] = {**state["store"]["tensors"], "x_last_observed": flag.to(torch.uint8)}
    with pytest.raises(ValueError, match=r"x_last_observed'\] is invalid: torch.uint8, expected torch.bool"):
        current_state(state)


def checked_migration(state: dict, as_older, number: int, fields: tuple[str, ...], saved=as_saved) -> tuple[dict, dict]:
    """``state`` as format ``number`` wrote it (``as_older``: without ``fields``) and its migrated store's
    tensors, checked as every such migration is: the older state passes ``check_state``, the migrated one
    is the current format with the names and order of ``state``'s fields, and every field the older one
    had (``saved`` of it) is the one saved."""
    old = as_older(state)
    assert old["format"] == number and not set(fields) & set(old["store"]["tensors"])
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    assert list(migrated["store"]["tensors"]) == list(state["store"]["tensors"])  # names and order
    kept = migrated["store"]["tensors"]
    assert all(same(kept[k], v, k) for k, v in saved(old)) and saved_stats(old, kept)
    return old, kept


def migrated_from_older(as_older, number: int, fields: tuple[str, ...]) -> dict:
    """A model's state after 40 values of series that meet no outlier and no change, as format
    ``number`` wrote it (``as_older``: without ``fields``, each 0 in the state), and migrated: the
    migrated state's tensors. Checks what every such migration keeps: the older
    state passes ``check_state``, the migrated one is the current format with the names and order of
    a current state, every field the older one had is the one saved (the members' fields: format 18
    inserts a column), and a model loaded from the older state forecasts and learns as the one that
    never left format 17, migrated."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    assert not any(state["store"]["tensors"][name].any() for name in fields)  # none met in these series
    old, kept = checked_migration(state, as_older, number, fields, as_saved)
    loaded, fresh = Forecaster.from_state_dict(old), Forecaster.from_state_dict(as_format_17_migrated(state))
    assert torch.equal(continue_from(loaded, 40, 60), continue_from(fresh, 40, 60))
    return kept


def test_a_format_15_state_gains_no_recent_outliers_and_goes_on_bit_for_bit_where_none_was_due():
    """Format 15 kept no steps of the values beyond their bounds nor the long AR's start: migrated,
    ``o_recent`` and ``x_arl_from`` are 0 at their places, every other field is the one saved, and a
    model loaded from it forecasts and learns as the one that never left format 17 (these series
    meet no outlier and no shift)."""
    kept = migrated_from_older(as_format_15, 15, SINCE_16)
    assert kept["o_recent"].dtype == torch.int64 and kept["o_recent"].shape == (len(kept["steps"]), 1, outliers.RECENT)
    assert kept["x_arl_from"].dtype == torch.int64 and kept["x_arl_from"].shape == (len(kept["steps"]), 1)
    assert kept["o_recent_value"].dtype == torch.float64 and kept["o_recent_value"].shape == kept["o_recent"].shape
    assert not kept["o_recent"].any() and not kept["x_arl_from"].any() and not kept["o_recent_value"].any()


def test_a_format_16_state_gains_no_change_steps_and_goes_on_bit_for_bit_where_none_was_found():
    """Format 16 kept no step of a series' last change: migrated, ``o_shift_at`` is 0 at its place
    (after ``o_recent_value``), every other field is the one saved, and a model loaded from it
    forecasts and learns as the one that never left format 17 (these series meet no change)."""
    kept = migrated_from_older(as_format_16, 16, FORMAT_17)
    assert kept["o_shift_at"].dtype == torch.int64 and kept["o_shift_at"].shape == (len(kept["steps"]), 1)
    assert not kept["o_shift_at"].any()


def test_recent_outlier_steps_past_a_series_count_are_refused():
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, max_season_length=12))
    for t in range(30):
        forecaster.observe("a", value(0, t))
    state = forecaster.state_dict()
    recent = state["store"]["tensors"]["o_recent"].clone()
    slot = state["store"]["names"].index("a")
    recent[slot, 0, 3] = -31  # below its bound at step 31, one past the 30 it has seen
    state["store"]["tensors"] = {**state["store"]["tensors"], "o_recent": recent}
    with pytest.raises(ValueError, match=r"o_recent'\] is invalid: a step past the series' count of steps"):
        check_state(state)
    recent[slot, 0, 3] = -30
    check_state(state)


@pytest.mark.parametrize(("step", "why"), [(31, "a step past the series' count of steps"), (-1, "negative")])
def test_a_change_step_past_a_series_count_or_below_0_is_refused(step, why):
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, max_season_length=12))
    for t in range(30):
        forecaster.observe("a", value(0, t))
    state = forecaster.state_dict()
    at = state["store"]["tensors"]["o_shift_at"].clone()
    slot = state["store"]["names"].index("a")
    at[slot, 0] = step
    state["store"]["tensors"] = {**state["store"]["tensors"], "o_shift_at": at}
    with pytest.raises(ValueError, match=r"o_shift_at'\] is invalid: .*" + why):
        check_state(state)
    at[slot, 0] = 30
    check_state(state)


def test_recent_outlier_steps_at_the_int64_edge_are_refused():
    # a review: abs(-2**63) is -2**63, so such a step passed the bound on its magnitude (o_run's check too)
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, max_season_length=12))
    for t in range(30):
        forecaster.observe("a", value(0, t))
    for field, at in (("o_recent", (0, 0, 0)), ("o_run", (0, 0))):
        state = forecaster.state_dict()
        tensor = state["store"]["tensors"][field].clone()
        tensor[at] = -(2**63)
        state["store"]["tensors"] = {**state["store"]["tensors"], field: tensor}
        with pytest.raises(ValueError, match=field + r"'\] is invalid"):
            check_state(state)


def test_a_format_19_state_gains_no_far_widths_serves_past_the_calibrated_horizon_as_before_then_learns_them():
    """Format 19 kept no far horizons: migrated, ``c_far_q`` is 0 and ``c_far_origin`` NaN at their
    places (after ``c_origin_ref``), every other field is the one saved; the loaded model serves the
    widths past the calibrated horizon by the rule of before (``q_H sqrt(h / H)``, at least SLACK of
    the widest shorter one) until each far horizon's first value is scored, 24 and 48 values after the
    first even step (``calibration.FAR_EVERY``)."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 100)
    state = forecaster.state_dict()
    assert state["store"]["tensors"]["c_far_q"].min() > 0  # scored at 24 and 48 by now
    old, kept = checked_migration(state, as_format_19, 19, FORMAT_20)
    assert not kept["c_far_q"].any() and kept["c_far_origin"].isnan().all()
    assert kept["c_far_origin"].shape == (len(kept["steps"]), 48, 2, 2, 1)
    loaded = Forecaster.from_state_dict(old)
    slot = loaded.store.slot_of("b")
    q = loaded.store.tensors["c_q"][slot : slot + 1]  # [1, 12, 1]
    horizons = torch.arange(13, 61, dtype=torch.float64)
    before = torch.maximum(q[0, -1, 0] * (horizons / 12).sqrt(), calibration.SLACK * q[0, :, 0].max())
    forecast, knowing = loaded.forecast("b", 60), from_format_26(forecaster).forecast("b", 60)
    assert forecast.mean == knowing.mean
    served = torch.tensor(forecast.upper[12:], dtype=torch.float64) - torch.tensor(forecast.mean[12:])
    assert torch.allclose(served, before, rtol=1e-5, atol=0)  # (a forecast's values: float32's rounding)
    far = torch.tensor(knowing.upper[12:], dtype=torch.float64) - torch.tensor(knowing.mean[12:])
    assert (far - served).abs().max() > 0.1 * served.max()  # the model that kept them serves its far widths
    continue_from(loaded, 100, 25)  # its first far forecasts: made after value 102, of values 126 and 150
    assert not loaded.store.tensors["c_far_q"][slot].any()
    continue_from(loaded, 125, 1)
    assert loaded.store.tensors["c_far_q"][slot, 0, 0] > 0 and loaded.store.tensors["c_far_q"][slot, 1, 0] == 0
    continue_from(loaded, 126, 24)
    assert loaded.store.tensors["c_far_q"][slot].min() > 0


@pytest.mark.parametrize("level", [0.0, 0, 1.0])
def test_a_format_20_state_with_a_level_that_has_no_start_is_refused_naming_the_level(level):
    # a review (session 47): the migration computed the new series' start multiplier at the level before the
    # config was checked, and a level of 0 raised ZeroDivisionError instead of the config's ValueError
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, season_length=None)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 20)
    state = as_format_20(forecaster.state_dict())
    state = {**state, "config": {**state["config"], "interval_level": level}}
    with pytest.raises(ValueError, match="interval_level"):
        check_state(state)
    with pytest.raises(ValueError, match="interval_level"):
        Forecaster.from_state_dict(state)


def test_a_format_20_state_gains_the_scale_and_multiplier_that_serve_its_widths_as_they_were():
    """Format 20 served each horizon's width as it was stepped (``c_q``, ``c_far_q``): migrated, a known width
    gains the scale of one error that serves it with the normal multiplier (S = q / M(level), N = 1, m = 1) and
    an unknown one a new series' (0, 0, the start multiplier of its level), each after its width (``c_spread``
    after ``c_q``, ``c_far_spread`` after ``c_far_q``); every other field is the one saved, the loaded model serves
    the widths it had, and the scale then follows the new errors."""
    config = ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12, interval_level=0.8)
    forecaster = Forecaster(config)
    continue_from(forecaster, 0, 60)
    forecaster.observe("d", 1.0)  # nothing scored yet: no width known
    state = forecaster.state_dict()
    old, kept = checked_migration(state, as_format_20, 20, FORMAT_21)
    multiplier, start = calibration.normal_multiplier(0.8), calibration.start_multiplier(0.8)
    assert start != 1.0  # (the unknown widths' multiplier is a new series', not the known ones')
    assert torch.equal(kept["c_spread"][:, 0], calibration.blank_spread(len(kept["steps"]), 1, 1, start)[:, 0])  # h = 1
    for width, spread in (("c_q", "c_spread"), ("c_far_q", "c_far_spread")):
        q, got = kept[width], kept[spread]  # [C, H, d], [C, H, 3, d]
        if width == "c_q":  # (past one step)
            q, got = q[:, 1:], got[:, 1:]
        known = q > 0
        assert bool(known.any()) and bool((~known).any())  # (the rows of series and the empty ones)
        assert torch.equal(got[:, :, 0], torch.where(known, q / multiplier, 0.0))
        assert torch.equal(got[:, :, 1], known.to(torch.float64))
        assert torch.equal(got[:, :, 2], torch.full_like(got[:, :, 2], start).masked_fill(known, 1.0))
    loaded = Forecaster.from_state_dict(old)
    for series in ("a", "b", "d"):  # (d: no interval yet, None)
        served, knowing = loaded.forecast(series, 60), from_format_26(forecaster).forecast(series, 60)
        assert served == knowing
    slot = loaded.store.slot_of("b")
    continue_from(loaded, 60, 5)
    count = loaded.store.tensors["c_spread"][slot, 1:, 1, 0]  # (past one step: five errors since the one)
    assert torch.allclose(
        count,
        torch.full_like(count, calibration.SPREAD_DISCOUNT**5 + sum(calibration.SPREAD_DISCOUNT**i for i in range(5))),
    )


def test_a_format_21_state_has_the_gamma_0_1_familys_two_tables_of_a_weekly_multiple_made_one():
    """Format 21 held a second season that is a multiple of the first (24 and 168) in two tables in every
    variant; format 22's gamma-0.1 family holds it as one table of 168 (``expert_kernels.ONE_TABLE``). Migrated,
    that table's index at phase p is the first's at p mod 24 plus the second's at p, the second 0; the gamma-0.4
    family and every other field are as saved, and the loaded model forecasts as the one whose tables were made
    one as it went (the format-21 state below is that one's, its tables split in two)."""
    t = torch.arange(24 * 7 * 3, dtype=torch.float64)
    values = 100 + 30 * torch.sin(2 * math.pi * t / 24) - 40 * ((t % 168) >= 120).double() + torch.sin(t / 7)
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, season_length=[24, 168]))
    for i, value in enumerate(values.tolist()):
        forecaster.observe("a", value + i % 3)
        forecaster.observe("b", 10.0 + (i % 24 == 0))  # a row whose seasons' tables stay as they are
    state = forecaster.state_dict()
    tensors = state["store"]["tensors"]
    season, slot = tensors["x_season"], forecaster.store.slot_of("a")  # [C, V, 2, d, S]
    assert tensors["x_season_length"][slot, 0].tolist() == [24, 168]
    one_table = [v for v, whole in enumerate(expert_kernels.ONE_TABLE) if whole]
    assert one_table == [0, 2]  # the gamma-0.1 family, in units and in logs
    old_season = season.clone()  # format 21: each one-table variant's week split into a day and the rest
    for v in one_table:
        day = season[slot, v, 0, 0, :24]
        old_season[slot, v, 0, 0] = 0.0
        old_season[slot, v, 0, 0, :24] = day
        old_season[slot, v, 1, 0, :168] = season[slot, v, 0, 0, :168] - day.repeat(7)
    tensors = format_23_layout(tensors)  # (no phase statistics: format 24's)
    old = {**state, "format": 21, "store": {**state["store"], "tensors": {**tensors, "x_season": old_season}}}
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    got = migrated["store"]["tensors"]["x_season"]
    for v in range(4):
        if v in one_table:
            phases = torch.arange(168)
            assert torch.equal(
                got[slot, v, 0, 0, :168], old_season[slot, v, 0, 0, phases % 24] + old_season[slot, v, 1, 0]
            )
            assert not got[slot, v, 1].any()
            assert torch.allclose(got[slot, v, 0, 0, :168], season[slot, v, 0, 0, :168], rtol=0, atol=1e-12)
        else:
            assert torch.equal(got[slot, v], season[slot, v])  # Taylor's two tables, as saved
    assert torch.equal(got[forecaster.store.slot_of("b")], season[forecaster.store.slot_of("b")])
    kept = (name for name in migrated["store"]["tensors"] if name not in ("x_season", "stats", *FORMAT_24, *FORMAT_25))
    assert all(same(migrated["store"]["tensors"][name], tensors[name], name) for name in kept)
    loaded = Forecaster.from_state_dict(old)
    served, made_one = loaded.forecast("a", 48), from_format_26(forecaster).forecast("a", 48)
    assert max(abs(x - y) for x, y in zip(served.mean, made_one.mean, strict=True)) < 1e-9


def test_the_one_table_migration_folds_a_multiple_pair_in_either_order_and_leaves_the_rest():
    # a review (session 51): a detection can hold the longer season first ((336, 168): a held 24 moved to its
    # multiple beside a second season of 168); and the fold is one step per distinct pair, not per series
    generator = torch.Generator().manual_seed(0)
    season = torch.randn(4, 4, 2, 2, 8, generator=generator, dtype=torch.float64)  # [C, V, 2, d, S]
    lengths = torch.tensor([[[3, 6], [6, 3]], [[3, 5], [4, 0]], [[0, 0], [2, 8]], [[3, 6], [9, 3]]])  # [C, d, 2]
    state = {"format": 21, "store": {"tensors": {"x_season": season, "x_season_length": lengths}}}
    got = _with_one_table(state)["store"]["tensors"]["x_season"]
    assert got is not season and torch.equal(state["store"]["tensors"]["x_season"], season)  # a copy
    for c in range(4):
        for k in range(2):
            m0, m1 = lengths[c, k].tolist()
            folds = m0 > 0 and m1 > 0 and max(m0, m1) % min(m0, m1) == 0 and max(m0, m1) <= 8
            for v in range(4):
                if folds and expert_kernels.ONE_TABLE[v]:
                    hand = [season[c, v, 0, k, p % m0] + season[c, v, 1, k, p % m1] for p in range(max(m0, m1))]
                    assert got[c, v, 0, k, : max(m0, m1)].tolist() == [x.item() for x in hand], (c, k, v)
                    assert not got[c, v, 1, k].any()
                else:
                    assert torch.equal(got[c, v, :, k], season[c, v, :, k]), (c, k, v)


def test_a_format_22_state_loads_with_its_alpha_0_5_levels_as_the_slow_ones_and_they_go_on_slowly():
    """Format 23 made each smoothing variant's second level a slow one (alpha 0.03, ``expert_kernels.SLOW``):
    a format-22 state keeps every tensor, the alpha-0.5 levels and their members' records the slow ones' start,
    and a model loaded from it steps that level at alpha 0.03 (by hand) and the others as they were."""
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, max_season_length=12))
    for t in range(60):
        forecaster.observe("a", 10.0 + 3.0 * math.sin(2 * math.pi * t / 7) + (t % 3))
    state = forecaster.state_dict()
    old = as_format_23(state, 22)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    later = ("stats", *FORMAT_24, *FORMAT_25, *FORMAT_27)  # (format 27's: the pooled combiner's columns, below)
    kept = (name for name in migrated["store"]["tensors"] if name not in later)
    assert all(migrated["store"]["tensors"][name] is state["store"]["tensors"][name] for name in kept)
    loaded = Forecaster.from_state_dict(old)
    slot = loaded.store.slot_of("a")
    before = loaded.store.tensors["x_level"][slot, 0, :, 0].clone()  # [4] the units gamma-0.1 variant's levels
    phase = loaded.store.tensors["x_season"][slot, 0, :, 0]  # [2, S]
    step, y = 61, 12.5  # (a value within its interval: taken as it came)
    season = phase[0, step % 7].item()  # the value's seasonal index (one season of 7: the table's first)
    assert loaded.series_stats("a").seasons == [7]
    loaded.observe("a", y)
    after = loaded.store.tensors["x_level"][slot, 0, :, 0]
    alphas = expert_kernels.ALPHAS
    for a in range(3):
        assert after[a].item() == pytest.approx(
            alphas[a] * (y - season) + (1 - alphas[a]) * before[a].item(), rel=1e-12
        )
    assert alphas[expert_kernels.SLOW] == 0.03


def test_a_format_26_state_gains_the_pooled_combiner_as_the_fast_one_and_goes_on():
    """Format 27 added the pooled combiner (``combination.POOLED``): a format-26 state (two combiners in the
    mixture's losses and the ring) gains its column of both as the fast combiner's, every other tensor kept as it
    was; the state checks, loads, serves the mixture of three from the load on and scores the pooled combiner's
    own forecasts from the next values."""
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, seed=1, max_season_length=12))
    continue_from(forecaster, 0, 40)
    state = forecaster.state_dict()
    old = as_format_26(state)
    tensors = old["store"]["tensors"]
    members = tensors["c_loss"].shape[2]
    assert old["format"] == 26 and tensors["c_meta_loss"].shape[2] == 2 and tensors["c_origin"].shape[3] == members + 4
    check_state(old)
    migrated = current_state(old)
    assert migrated["format"] == FORMAT_VERSION == 27
    new = migrated["store"]["tensors"]
    assert torch.equal(new["c_meta_loss"][:, :, :2], tensors["c_meta_loss"])
    assert torch.equal(new["c_meta_loss"][:, :, 2], tensors["c_meta_loss"][:, :, 0])  # the fast one's record
    assert torch.equal(new["c_origin"][:, :, :, : members + 4], tensors["c_origin"])
    assert torch.equal(new["c_origin"][:, :, :, members + 4], tensors["c_origin"][:, :, :, members + 2])
    kept = (name for name in new if name not in FORMAT_27)
    assert all(new[name] is tensors[name] for name in kept)
    check_state(migrated)
    loaded = Forecaster.from_state_dict(old)
    before = loaded.store.tensors["c_meta_loss"].clone()
    continue_from(loaded, 40, 20)
    after = loaded.store.tensors["c_meta_loss"]
    assert not torch.equal(after[..., 2, :], after[..., 0, :])  # its own errors at h >= 2 part it from the fast one
    assert not torch.equal(after, before)
    check_state(loaded.state_dict())


def test_a_format_26_state_whose_mixture_has_not_two_combiners_is_refused_naming_them():
    forecaster = Forecaster(ForecasterConfig(hidden_size=4, max_season_length=12))
    continue_from(forecaster, 0, 5)
    old = {**forecaster.state_dict(), "format": 26}  # the current layout, three combiners, said to be format 26
    with pytest.raises(ValueError, match=r"format=26 hybrid state has 3 combiners' losses and \d+ ring columns"):
        current_state(old)
