"""States as older versions wrote them, made from a current one (for the migration tests): of series that hold
no second season that is a multiple of the first (format 22 holds such a one in one table of the gamma-0.1
family, where older formats held two; ``test_state_format`` makes those apart)."""

from __future__ import annotations

from typing import Any

import torch

from tbptt_online import ar_levels, excursions, hybrid, outliers
from tbptt_online.scoring import RECENT_SCORES, STAT
from tbptt_online.state_format import (
    FORMAT_10_MEMBERS,
    FORMAT_26_COMBINERS,
    LEVELS_AR,
    MEDIAN,
    NEW_COMBINER_FIELDS,
    NEW_EXPERT,
    OLD_SEASON_NAMES,
    SHORT_AR,
    SHORT_AR_FIELDS,
)

FORMAT_14 = ("x_nonneg", "c_shape")  # the fields format 14 added
FORMAT_16 = ("o_recent", "o_recent_value", "x_arl_from")  # and format 16
FORMAT_17 = ("o_shift_at",)  # and format 17
SINCE_16 = (*FORMAT_16, *FORMAT_17)  # the fields formats 16 and 17 added
MEMBER_FIELDS = {"c_loss": 2, "c_slow_loss": 2, "c_member_abs": 1, "c_origin": 3}  # the member's dimension
FORMAT_20 = ("c_far_q", "c_far_origin")  # the fields format 20 added
FORMAT_21 = ("c_spread", "c_far_spread")  # and format 21
FORMAT_24 = ("c_phase", "c_phase_of", "c_phase_fit")  # and format 24
FORMAT_25 = ("c_coverage", "c_far_coverage")  # and format 25
FORMAT_27 = ("c_meta_loss", "c_origin")  # the fields format 27 gave a column (the pooled combiner's)


def same(kept: torch.Tensor, saved: torch.Tensor, name: str) -> bool:
    """Whether a migrated field ``kept`` is the ``saved`` one: the same tensor, or where format 27 gave the field
    ``name`` a column (``FORMAT_27``), equal over the columns both have (a migration from an older format makes
    both anew)."""
    if kept is saved:
        return True
    if name not in FORMAT_27:
        return False
    kept, saved = format_26_layout({name: kept})[name], format_26_layout({name: saved})[name]
    return kept.shape == saved.shape and torch.equal(kept, saved)


def format_26_layout(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 26's layout (and every older one's): no pooled combiner (its column of the
    mixture's losses and of the ring of past forecasts, the last of each, dropped)."""
    layout = dict(tensors)
    if "c_meta_loss" in tensors and tensors["c_meta_loss"].shape[2] > FORMAT_26_COMBINERS:
        layout["c_meta_loss"] = tensors["c_meta_loss"][:, :, :FORMAT_26_COMBINERS].clone()
    if "c_origin" in tensors and tensors["c_origin"].shape[3] == hybrid.ORIGIN_COLUMNS:
        layout["c_origin"] = tensors["c_origin"][:, :, :, :-1].clone()
    return layout


def as_format_26(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 26 wrote it: no pooled combiner (a copy)."""
    return {**state, "format": 26, "store": {**state["store"], "tensors": format_26_layout(state["store"]["tensors"])}}


def format_24_layout(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 24's layout: no coverage per horizon, no recent errors' rows in the stats."""
    layout = {k: v for k, v in format_26_layout(tensors).items() if k not in FORMAT_25}
    return {**layout, "stats": tensors["stats"][:, :RECENT_SCORES].clone()}


def as_format_24(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 24 wrote it: no recent errors, a hybrid no coverage per horizon (a
    copy)."""
    return {**state, "format": 24, "store": {**state["store"], "tensors": format_24_layout(state["store"]["tensors"])}}


def format_23_layout(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 23's layout (and 21's, 22's): no widths' phase statistics (nor format 25's
    fields)."""
    return {k: v for k, v in format_24_layout(tensors).items() if k not in FORMAT_24}


def as_format_23(state: dict[str, Any], number: int = 23) -> dict[str, Any]:
    """``state`` (the current format) as format ``number`` (21 to 23) wrote it: a hybrid has no widths' phase statistics
    (a copy; a format-21 state's gamma-0.1 tables as format 22's)."""
    return {
        **state,
        "format": number,
        "store": {**state["store"], "tensors": format_23_layout(state["store"]["tensors"])},
    }


def format_20_layout(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 20's layout: no widths' scales and multipliers (nor format 24's, 25's fields)."""
    return {k: v for k, v in format_23_layout(tensors).items() if k not in FORMAT_21}


def as_format_20(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 20 wrote it: a hybrid has no widths' scales and multipliers (a copy)."""
    return {**state, "format": 20, "store": {**state["store"], "tensors": format_20_layout(state["store"]["tensors"])}}


def format_19_layout(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 19's layout: no far horizons' fields (nor format 21's)."""
    return {k: v for k, v in format_20_layout(tensors).items() if k not in FORMAT_20}


def as_format_19(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 19 wrote it: a hybrid has no far horizons' fields (a copy)."""
    return {**state, "format": 19, "store": {**state["store"], "tensors": format_19_layout(state["store"]["tensors"])}}


def without_member(tensors: dict[str, Any], fields: Any, member: int) -> dict[str, Any]:
    """A store's ``tensors`` without an expert's own ``fields`` and without its column ``member``
    in the members' fields (new tensors for those; the others as they are)."""
    out = {k: v for k, v in tensors.items() if k not in fields}
    for key, dim in MEMBER_FIELDS.items():
        if key in out:
            kept = [i for i in range(out[key].shape[dim]) if i != member]
            out[key] = out[key].index_select(dim, torch.tensor(kept))
    return out


def format_17_layout(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 17's layout: no short AR on the levels' fields and no
    column of its member in the members' fields (nor format 20's fields)."""
    tensors = format_19_layout(tensors)
    return without_member(tensors, SHORT_AR_FIELDS, SHORT_AR) if "x_ars" in tensors else tensors


def as_format_17(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 17 wrote it: a hybrid has no short AR on the levels (a copy)."""
    return {**state, "format": 17, "store": {**state["store"], "tensors": format_17_layout(state["store"]["tensors"])}}


def as_format_16(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 16 wrote it: as format 17, and a hybrid has none of
    ``FORMAT_17`` (a copy)."""
    tensors = {k: v for k, v in format_17_layout(state["store"]["tensors"]).items() if k not in FORMAT_17}
    return {**state, "format": 16, "store": {**state["store"], "tensors": tensors}}


def as_format_15(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 15 wrote it: as format 17, and a hybrid has none of
    ``SINCE_16`` (a copy)."""
    tensors = {k: v for k, v in format_17_layout(state["store"]["tensors"]).items() if k not in SINCE_16}
    return {**state, "format": 15, "store": {**state["store"], "tensors": tensors}}


def old_names(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 14's fields: the season fields under their old names (the same
    tensors) and the flag ``x_last_observed`` for ``x_missing``, in the same order, without format
    16's, 17's and 18's fields."""
    new_to_old = {**{new: old for old, new in OLD_SEASON_NAMES.items()}, "x_missing": "x_last_observed"}
    layout = format_17_layout(tensors)
    return {new_to_old.get(k, k): (v == 0 if k == "x_missing" else v) for k, v in layout.items() if k not in SINCE_16}


def as_format_14(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 14 wrote it: ``old_names``' fields (a copy)."""
    return {**state, "format": 14, "store": {**state["store"], "tensors": old_names(state["store"]["tensors"])}}


def as_format_13(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 13 wrote it: as format 14 (``as_format_14``), and a hybrid has
    no ``x_nonneg`` and no ``c_shape`` (a copy)."""
    tensors = {k: v for k, v in old_names(state["store"]["tensors"]).items() if k not in FORMAT_14}
    return {**state, "format": 13, "store": {**state["store"], "tensors": tensors}}


def as_format_12(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 12 wrote it: a hybrid has no ``x_period_runs`` (nor
    format 14's fields, a copy)."""
    later = ("x_period_runs", *FORMAT_14)
    tensors = {k: v for k, v in old_names(state["store"]["tensors"]).items() if k not in later}
    return {**state, "format": 12, "store": {**state["store"], "tensors": tensors}}


def without_levels_ar(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 11's layout: no long AR on the levels' fields and no
    column of its member in the members' fields (nor format 13's ``x_period_runs`` and format
    14's), the season's length under its old name."""
    later = ("x_period_runs", *FORMAT_14)
    kept = {k: v for k, v in old_names(tensors).items() if k not in later}
    return without_member(kept, ar_levels.fields(1, 1), LEVELS_AR)


def as_format_11(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 11 wrote it: as format 12 (``as_format_12``), and a hybrid
    has no long AR on the levels (a copy)."""
    tensors = without_levels_ar(state["store"]["tensors"])
    return {**state, "format": 11, "store": {**state["store"], "tensors": tensors}}


def format_10_layout(tensors: dict[str, Any]) -> dict[str, Any]:
    """A store's ``tensors`` in format 10's layout: as format 11's (``without_levels_ar``), and
    no ``x_median`` and no median column in the members' fields."""
    return without_member(without_levels_ar(tensors), ("x_median",), MEDIAN)


def as_format_10(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 10 wrote it: no long AR on the levels (format 12), no excursions'
    fields (``excursions.FIELDS``), and a hybrid has no median expert: no ``x_median`` and no
    median column in the members' fields (a copy)."""
    tensors = format_10_layout({k: v for k, v in state["store"]["tensors"].items() if k not in excursions.FIELDS})
    return {**state, "format": 10, "store": {**state["store"], "tensors": tensors}}


def as_format_9(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 9 wrote it: as format 10 (``as_format_10``), no
    ``restarts``, ``restarted_steps`` rows in the series' statistics (a copy)."""
    state = as_format_10(state)
    tensors = dict(state["store"]["tensors"])
    tensors["stats"] = tensors["stats"][:, : STAT["restarts"]].clone()
    return {**state, "format": 9, "store": {**state["store"], "tensors": tensors}}


def as_format_8(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 8 wrote it: as format 9 (``as_format_9``), and a hybrid's
    ring of past forecasts holds the forecasts themselves (its references added, in float32 as
    format 8 stored them), no ``c_origin_ref`` (a copy)."""
    state = as_format_9(state)
    tensors = dict(state["store"]["tensors"])
    if "c_origin_ref" in tensors:
        ref, ring = tensors.pop("c_origin_ref"), tensors["c_origin"].clone()  # [C, Hc, d], [C, Hc, Hc, E + 4, d]
        widths = FORMAT_10_MEMBERS + 1  # the half-widths' column: stored as they are
        forecasts = [k for k in range(ring.shape[3]) if k != widths]
        absolute = ring[:, :, :, forecasts].double() + ref[:, :, None, None, :]
        ring[:, :, :, forecasts] = absolute.float()
        tensors["c_origin"] = ring
    return {**state, "format": 8, "store": {**state["store"], "tensors": tensors}}


def as_format_7(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 7 wrote it: as format 8 (``as_format_8``), no probe
    ``measured`` bias (a copy)."""
    state = as_format_8(state)
    probe = state["probe"]
    tensors = {k: v for k, v in probe["tensors"].items() if k != "measured"}
    return {**state, "format": 7, "probe": {**probe, "tensors": tensors}}


def as_format_6(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (the current format) as format 6 wrote it: as format 7 (``as_format_7``), no probe
    ``missed`` counts, no ``interval_n`` row in the series' statistics (a copy)."""
    state = as_format_7(state)
    probe = state["probe"]
    tensors = {k: v for k, v in probe["tensors"].items() if k != "missed"}
    store = dict(state["store"]["tensors"])
    store["stats"] = store["stats"][:, : STAT["interval_n"]].clone()  # interval_n is the last row left
    return {**state, "format": 6, "probe": {**probe, "tensors": tensors}, "store": {**state["store"], "tensors": store}}


def as_format_5(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (format 24, a hybrid) as format 5 wrote it: as format 6 (``as_format_6``), and no
    outliers' fields (a copy)."""
    state = as_format_6(state)
    tensors = {k: v for k, v in state["store"]["tensors"].items() if k not in outliers.FIELDS}
    return {**state, "format": 5, "store": {**state["store"], "tensors": tensors}}


def as_format_4(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (format 24, a hybrid) as format 4 wrote it: as format 5 (``as_format_5``), and
    no slow combiner's nor mixture's fields, no combiners' columns in the ring of past
    forecasts (a copy)."""
    state = as_format_5(state)
    tensors = {k: v for k, v in state["store"]["tensors"].items() if k not in NEW_COMBINER_FIELDS}
    tensors["c_origin"] = tensors["c_origin"][:, :, :, : FORMAT_10_MEMBERS + 2].clone()
    return {**state, "format": 4, "store": {**state["store"], "tensors": tensors}}


def as_format_3(state: dict[str, Any]) -> dict[str, Any]:
    """``state`` (format 24, a hybrid) as format 3 wrote it: as format 4 (``as_format_4``), and
    no long AR's fields, no column of its member in ``c_loss``, ``c_member_abs`` and the ring
    of past forecasts (a copy)."""
    state = as_format_4(state)
    tensors = dict(state["store"]["tensors"])
    members = torch.tensor([k for k in range(FORMAT_10_MEMBERS) if k != NEW_EXPERT])
    ring = torch.tensor([k for k in range(FORMAT_10_MEMBERS + 2) if k != NEW_EXPERT])
    for key in ("x_arc", "x_arc_p"):
        del tensors[key]
    tensors["c_loss"] = tensors["c_loss"].index_select(2, members)
    tensors["c_member_abs"] = tensors["c_member_abs"].index_select(1, members)
    tensors["c_origin"] = tensors["c_origin"].index_select(3, ring)
    return {**state, "format": 3, "store": {**state["store"], "tensors": tensors}}
