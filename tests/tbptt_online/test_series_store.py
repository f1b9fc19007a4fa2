"""SeriesStore's growth: the rows held kept, the new ones blank, as a concatenation made them."""

from __future__ import annotations

import pytest
import torch

from benchmarks.store_growth import grown_by_cat
from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.series_store import offsets_at
from tests.tbptt_online.snapshots import assert_identical


@pytest.mark.parametrize(
    "config",
    [ForecasterConfig(), ForecasterConfig(cell="lstm", hybrid=False), ForecasterConfig(n_features=2)],
    ids=["hybrid", "lstm-stateful", "two-features"],
)
def test_a_store_grows_to_the_rows_held_then_blank_rows_as_a_concatenation_did(config) -> None:
    f = Forecaster(config)
    d = config.n_features
    for t in range(20):  # rows that are not blank: values, seasons, combination, histories
        f.observe_many([(f"s{i}", [float((i + t) % 5 + k) for k in range(d)]) for i in range(f.store.capacity)])
    store = f.store
    rows = 4 * store.capacity
    expected, grown = grown_by_cat(store, rows), store._grown(rows)
    assert expected.keys() == grown.keys()
    for name, field in grown.items():
        assert field.dtype == expected[name].dtype and field.shape == expected[name].shape, name
        assert torch.equal(field.nan_to_num(7.5), expected[name].nan_to_num(7.5)), name


def test_a_forecaster_whose_store_grew_goes_on_as_one_made_large_enough() -> None:
    small, large = Forecaster(ForecasterConfig(seed=1)), Forecaster(ForecasterConfig(seed=1))
    large.store.tensors = large.store._grown(8 * large.store.capacity)
    for t in range(12):
        tick = [(f"s{i}", float((3 * i + t) % 11)) for i in range(5 * (t + 1))]  # new series every tick
        assert_identical(small.observe_many(tick), large.observe_many(tick))
    assert small.store.capacity < large.store.capacity
    assert_identical(small.forecast("s3", 6), large.forecast("s3", 6))


@pytest.mark.parametrize("edit", ["cut rows", "one field short", "free slot -1"])
def test_a_state_whose_rows_do_not_hold_its_series_is_refused_at_load(edit) -> None:
    # a hostile test (session 49): a state's rows cut below its live series loaded them blank (count 0, the
    # series still listed), where it raised before rows past the last series were left out; a field with fewer
    # rows than the others, or a free slot of -1, loaded and the next observe raised IndexError
    f = Forecaster(ForecasterConfig(hidden_size=4))
    for t in range(5):
        f.observe_many([(f"s{i}", float(i + t)) for i in range(6)])
    state = f.state_dict()
    tensors = state["store"]["tensors"]
    if edit == "cut rows":
        state["store"]["tensors"] = {k: v[:3].clone() for k, v in tensors.items()}
    elif edit == "one field short":
        tensors["hist_y"] = tensors["hist_y"][:4].clone()
    else:
        state["store"]["free"] = [-1]
    message = {"cut rows": "past its 3 rows", "one field short": "different numbers of rows", "free slot -1": "free"}
    with pytest.raises(ValueError, match=message[edit]):
        Forecaster(ForecasterConfig(hidden_size=4)).load_state(state)
    with pytest.raises(ValueError, match=message[edit]):
        Forecaster.from_state_dict(state)


def test_the_restarted_steps_of_a_ticks_slots_are_each_slots_own_in_the_dict_and_zero_elsewhere() -> None:
    g = torch.Generator().manual_seed(3)
    for restarted in (1, 2, 37):
        keys = torch.randperm(500, generator=g)[:restarted].tolist()
        offsets = {k: int(v) for k, v in zip(keys, torch.randint(1, 10_000, (restarted,), generator=g), strict=True)}
        slots = torch.cat([torch.tensor(keys[:1]), torch.randperm(500, generator=g)[:200]])  # one restarted at least
        expected = [offsets.get(s, 0) for s in slots.tolist()]  # the per-slot lookup the tick made until session 59
        got = offsets_at(offsets, slots)
        assert got.dtype == torch.int64 and got.tolist() == expected


@pytest.mark.parametrize("places", ["one place", "two places"])
def test_a_run_of_slots_is_read_and_written_as_by_indices(places) -> None:
    # the slices' path (slots a, a + 1, ...) against the gathers' and scatters' (the run not looked for)
    stores = []
    for by_slices in (True, False):
        f = Forecaster(ForecasterConfig(hidden_size=4))
        f.observe_many([(f"s{i}", float(i)) for i in range(12)])
        if not by_slices:
            f.store._run = lambda slots: None  # type: ignore[method-assign]
        stores.append(f.store)
    slots = torch.arange(3, 9)
    ring = torch.full((6,), 2) if places == "one place" else torch.tensor([2, 2, 2, 5, 2, 2])
    generator = torch.Generator().manual_seed(3)
    x = torch.randn(6, stores[0].tensors["hist_x"].shape[2], generator=generator)
    stats = torch.randn(6, *stores[0].tensors["stats"].shape[1:], generator=generator, dtype=torch.float64)
    for store in stores:
        assert store.get("stats", slots).data_ptr() != store.tensors["stats"][3].data_ptr()  # a copy
        store.put(slots, stats=stats, steps=torch.arange(6) + 40)
        store.put_at("hist_x", (slots, ring), x)
        store.put_state("carried", slots, torch.ones(6, 1, 4))
    for name in ("stats", "steps", "hist_x", "carried_h"):  # (their bytes: stats hold NaN)
        assert torch.equal(stores[0].tensors[name].view(torch.uint8), stores[1].tensors[name].view(torch.uint8)), name
        got = [store.get(name, slots) for store in stores]
        assert torch.equal(got[0].view(torch.uint8), got[1].view(torch.uint8)), name
    assert stores[0]._run(slots) == 3 and stores[0]._run(torch.tensor([3, 5])) is None
