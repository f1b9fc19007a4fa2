"""A view reads the hybrid's in-place fields, and any field past ROW_COPY_BYTES, as of its
making (copy on write by rows, saved_rows.py): ticks after it write those fields in place,
saving only the rows they change for the views still held, never copying a whole field
because a view exists."""

from __future__ import annotations

import math
import weakref

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig, series_store
from tbptt_online.saved_rows import AsOfSnapshot, SavedRows
from tbptt_online.series_store import HYBRID_ROWS, IN_PLACE

SERIES = ("a", "b", "c")


def fed(n: int) -> Forecaster:
    f = Forecaster(ForecasterConfig(hidden_size=4, dtype="float64", seed=3, k1=4, k2=8, max_season_length=24))
    for t in range(n):
        f.observe_many(
            [(s, 10.0 + i + 3.0 * math.sin(2 * math.pi * t / 12) + 0.1 * (t % 5)) for i, s in enumerate(SERIES)]
        )
    return f


def readings(view, horizon: int) -> list:
    """Everything the view answers that reads the in-place fields: forecasts past the
    calibrated horizon (the members run again) and the stats (the members' losses)."""
    return [(view.forecast(s, horizon=horizon), view.series_stats(s)) for s in SERIES]


def test_a_view_answers_as_of_its_making_after_ticks_a_new_series_and_a_state_dict() -> None:
    f = fed(60)
    view = f.view()
    horizon = f.config.calibrated_horizon + 6
    before = readings(view, horizon)
    for t in range(40):  # ticks that change every in-place field of a and b
        f.observe_many([("a", 20.0 + t), ("b", -5.0 + 0.5 * t)])
        if t == 10:
            f.state_dict()  # hands the fields out whole: the next write copies them
        if t == 20:
            f.observe("d", 1.0)  # a new series in a new slot
    assert readings(view, horizon) == before
    assert readings(f.view(), horizon) != before  # the live model did move on


def test_a_tick_after_a_view_writes_in_place_and_saves_only_its_rows() -> None:
    f = fed(30)
    fields = {k: f.store.tensors[k] for k in IN_PLACE}
    view = f.view()
    f.observe("b", 3.0)
    assert all(f.store.tensors[k] is fields[k] for k in IN_PLACE)  # written in place, not copied whole
    slot_b = f.store.slots["b"]
    for k in IN_PLACE:
        saved = view.tensors[k].saved
        assert (saved.where >= 0).nonzero().flatten().tolist() == [slot_b], k  # only the row the tick wrote
        assert saved.size == 1 and saved.copy.shape[0] <= 16, k  # kept packed: not a whole field's copy


def test_a_view_no_longer_held_costs_the_next_tick_nothing() -> None:
    f = fed(30)
    view = f.view()
    saved = weakref.ref(view.tensors["x_raw"].saved)
    del view
    assert saved() is None  # the view took its saved rows with it
    f.observe("a", 1.0)
    # and the store dropped the field at the write: later ticks take the rows without asking (hybrid_rows)
    assert f.store.saving == {}


def test_the_rows_a_view_reads_are_bit_identical_to_a_copy_taken_when_it_was_made() -> None:
    f = fed(30)
    view = f.view()
    slots = torch.arange(len(SERIES))
    copies = {k: f.store.tensors[k][slots].clone() for k in IN_PLACE}
    for t in range(5):
        f.observe_many([(s, 100.0 * t) for s in SERIES])
    for k in IN_PLACE:
        assert torch.equal(view.tensors[k][slots], copies[k]), k
        assert not torch.equal(f.store.tensors[k][slots], copies[k]), k  # the store's rows did change


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal, NaN where NaN."""
    return torch.equal(a.nan_to_num(-1.0), b.nan_to_num(-1.0)) if a.is_floating_point() else torch.equal(a, b)


def test_the_fields_a_view_holds_whole_are_written_in_place_and_copied_only_after_a_view() -> None:
    f = fed(30)
    copied = f.store.copied_on_write
    assert set(HYBRID_ROWS) - set(IN_PLACE) <= set(copied) and "hist_x" in copied
    small = [k for k in copied if k.startswith(("x_", "c_"))]
    fields = {k: f.store.tensors[k] for k in copied}
    f.observe_many([(s, 1.0) for s in SERIES])  # one run of slots, no view: the ticks' rows are the store's
    assert all(f.store.tensors[k] is fields[k] for k in copied)
    view = f.view()
    held = {k: f.store.tensors[k].clone() for k in copied}
    f.observe_many([(s, 50.0) for s in SERIES])
    for k in copied:
        assert view.tensors[k] is fields[k] and same(view.tensors[k], held[k]), k  # as of the view
        assert f.store.tensors[k] is not fields[k], k  # the first write after the view copied the field
    assert any(not same(f.store.tensors[k], held[k]) for k in small)  # and the tick did write
    after = {k: f.store.tensors[k] for k in copied}
    f.observe("b", 2.0)  # no view since: in place again
    assert all(f.store.tensors[k] is after[k] for k in copied)


def test_a_state_dict_or_a_view_between_ticks_changes_nothing_the_model_computes() -> None:
    """The ticks write the store's rows in place (through views kept from tick to tick): a
    state_dict or a view taken between them gets tensors the next tick copies first, so it
    keeps what it was given, and the model goes on as one nobody looked at."""
    looked, alone = fed(30), fed(30)
    taken = []
    for t in range(12):
        values = [(s, 5.0 + math.sin(t + i)) for i, s in enumerate(SERIES)]
        if t % 3 == 0:
            state = looked.state_dict()
            taken.append((state, {k: v.clone() for k, v in state["store"]["tensors"].items()}))
        if t % 4 == 1:
            looked.view()
        if t % 2:  # one series at a time (a run of one slot each), or all three (one run)
            assert all(looked.observe(s, v) == alone.observe(s, v) for s, v in values)
        else:
            assert looked.observe_many(values) == alone.observe_many(values)
    for state, copy in taken:
        assert all(same(state["store"]["tensors"][k], v) for k, v in copy.items())
    assert all(
        same(a, b)
        for a, b in zip(
            looked.state_dict()["store"]["tensors"].values(),
            alone.state_dict()["store"]["tensors"].values(),
            strict=True,
        )
    )


def test_a_snapshot_field_read_by_rows_answers_every_index_as_the_tensor_did() -> None:
    base = torch.arange(5 * 4 * 3, dtype=torch.float64).view(5, 4, 3)
    kept = base.clone()
    saved = SavedRows(base)
    field = AsOfSnapshot(base, saved)
    saved.save(torch.tensor([1, 3]))
    base[1], base[3] = -1.0, -3.0  # written after the snapshot: it reads the rows as they were
    slots = torch.tensor([3, 0, 3, 1])  # repeated, unordered
    at = torch.tensor([2, 0, 1, 3])
    rows, ring = torch.tensor([[1, 4]]), torch.tensor([[0, 1], [3, 2], [1, 1]])  # [1, B] against [L, B]
    for key in (slots, (slots, at), (slots, slice(None, 2)), (rows, ring), (slots, at, torch.tensor(2)), (slots, 1)):
        assert torch.equal(field[key], kept[key]), key


def test_a_field_past_row_copy_bytes_is_read_by_rows_and_a_tick_copies_it_no_more() -> None:
    # A hostile test: a service publishes a view after every batch, and every field but the six
    # IN_PLACE ones was copied whole at the next write, at any size: a long request of one series in
    # a model of 2,000 series copied 5.6 MB a tick and the process grew from 600 MB to 1.45 GB
    few = fed(3)
    assert "hist_x" in few.store.copied_on_write  # 16 rows: 17 KB, a whole copy is cheaper
    many = Forecaster(few.config)
    many.observe_many([(f"s{i}", float(i % 7)) for i in range(300)])
    assert many.store.tensors["hist_x"].numel() * 4 > series_store.ROW_COPY_BYTES
    assert "hist_x" not in many.store.copied_on_write  # 512 rows: 541 KB (the carried states of 4: 16 KB, whole)
    fields = {k: many.store.tensors[k] for k in many.store.tensors if k not in series_store.PRIVATE}
    view = many.view()
    many.observe("s7", 3.0)
    assert [k for k, v in fields.items() if many.store.tensors[k] is not v] == list(many.store.copied_on_write)
    slot = many.store.slots["s7"]
    for k in fields:
        if many.store.by_rows(k) and view.tensors[k].saved.where is not None:
            assert (view.tensors[k].saved.where >= 0).nonzero().flatten().tolist() == [slot], k


@pytest.mark.parametrize(
    "overrides", [{}, {"hybrid": False}, {"hybrid": False, "mode": "stateless"}, {"hybrid": False, "cell": "lstm"}]
)
def test_a_view_whose_every_field_is_read_by_rows_answers_as_of_its_making(monkeypatch, overrides) -> None:
    monkeypatch.setattr(series_store, "ROW_COPY_BYTES", 0)  # every field a snapshot holds: by rows
    f = Forecaster(ForecasterConfig(hidden_size=4, dtype="float64", seed=3, k1=4, k2=8, **overrides))
    for t in range(40):
        f.observe_many([(s, 10.0 + i + 3.0 * math.sin(t / 2) + 0.1 * (t % 5)) for i, s in enumerate(SERIES)])
    fields = {k: f.store.tensors[k] for k in f.store.tensors if k not in series_store.PRIVATE}
    view = f.view()
    assert all(isinstance(view.tensors[k], AsOfSnapshot) for k in fields)
    horizon = f.config.calibrated_horizon + 6
    before = readings(view, horizon)
    for t in range(20):
        f.observe_many([("a", 20.0 + t), ("b", -5.0 + 0.5 * t)])
    assert all(f.store.tensors[k] is v for k, v in fields.items())  # nothing copied whole
    assert readings(view, horizon) == before
    assert readings(f.view(), horizon) != before


def test_every_ar_experts_covariance_is_copied_on_write_by_rows() -> None:
    # each P is [C, d, 13, 13] float64, 1.35 KB a series: copied whole after every view at 2,000
    # series, 2.7 MB a tick (a review: the long AR on the levels' P was left out of IN_PLACE)
    from tbptt_online.state_check import COVARIANCES

    assert set(COVARIANCES) <= set(IN_PLACE)
