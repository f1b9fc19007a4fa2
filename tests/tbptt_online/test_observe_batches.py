"""``observe_many`` given the same series in the same order as its last batch takes that batch's slots
again (no lookup of each name): the same results as looking them up, and never a stale slot."""

from __future__ import annotations

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tests.tbptt_online.snapshots import assert_identical

CONFIG = ForecasterConfig(hidden_size=4, k1=2, k2=4)


def batches() -> list[list[tuple[str, float | None]]]:
    """Ticks of a feeder: the same six series, then one forgotten (between ticks 4 and 5, see below), one new, and
    a new order."""
    names = [f"s{i}" for i in range(6)]
    out = []
    for t in range(12):
        if t == 5:
            names = [n for n in names if n != "s2"] + ["s2", "late"]  # s2 forgotten before this tick, back as new
        if t == 8:
            names = names[::-1]
        out.append([(n, None if (t + i) % 5 == 0 else float((3 * i + t) % 7)) for i, n in enumerate(names)])
    return out


def test_the_last_batchs_slots_taken_again_give_what_looking_each_name_up_gives() -> None:
    again, looked_up = Forecaster(CONFIG), Forecaster(CONFIG)
    for t, items in enumerate(batches()):
        if t == 5:
            again.forget("s2")
            looked_up.forget("s2")
        looked_up._batch = None  # every name looked up in the store's slots
        assert_identical(again.observe_many(items), looked_up.observe_many(items))
    assert again.step_of("s2") == looked_up.step_of("s2") == 7  # forgotten after 5 values, then 7 new ones


def test_a_series_forgotten_between_two_batches_of_the_same_names_starts_again() -> None:
    f = Forecaster(CONFIG)
    items = [("a", 1.0), ("b", 2.0), ("c", 3.0)]
    for _ in range(3):
        f.observe_many(items)
    f.forget("b")
    results = f.observe_many(items)  # the same names in the same order as the last batch
    assert [r.step for r in results] == [4, 1, 4]
    assert sorted(f.series) == ["a", "b", "c"]


def test_changing_a_results_names_does_not_change_where_the_next_batch_goes() -> None:
    f = Forecaster(CONFIG)
    results = f.observe_many([("a", 1.0), ("b", 2.0)])
    results.ticks[0].lists().names[0] = "x"  # the caller's list, edited
    assert [r.step for r in f.observe_many([("x", 5.0), ("b", 2.0)])] == [1, 2]


class Anything(str):
    """A name that says it equals every other."""

    __hash__ = str.__hash__

    def __eq__(self, other: object) -> bool:
        return True

    def __ne__(self, other: object) -> bool:
        return False


@pytest.mark.parametrize("names", [["b", "a"], ["c", "a"]], ids=["swapped", "one new"])
def test_names_of_a_str_subclass_that_equal_anything_are_taken_by_their_text(names: list[str]) -> None:
    f = Forecaster(CONFIG)
    f.observe_many([("a", 1.0), ("b", 2.0)])
    f.observe_many([("a", 1.0), ("b", 2.0)])
    results = f.observe_many([(Anything(n), 3.0) for n in names])
    assert [(r.series, r.step) for r in results] == [(n, {"a": 3, "b": 3, "c": 1}[n]) for n in names]
