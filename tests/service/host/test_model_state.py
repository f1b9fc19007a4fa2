"""ModelState's plain (checkpointable) form keeps what a repeated observation is answered with."""

from __future__ import annotations

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.host.admission import SeriesMark
from tbptt_service.host.applied_keys import KeyedAnswer
from tbptt_service.host.model_state import ModelState, from_plain, to_plain


def state_with_a_glitch() -> ModelState:
    """Two series' marks (the last one a glitch, flagged as an outlier) and a key answering both."""
    f = Forecaster(ForecasterConfig(hidden_size=4, season_length=12))
    for i in range(40):
        f.observe_many([("a", 10.0 + (i % 12) / 4), ("b", 5.0 + (i % 12) / 4)])
    results = list(f.observe_many([("a", 1e6), ("b", 6.0)]))
    assert [r.outlier for r in results] == [True, False]
    marks = {r.series: SeriesMark(100.0 + i, r.value, r) for i, r in enumerate(results)}
    key = ("key-1", KeyedAnswer("digest", tuple(results), (0, 1), results[-1].update_count))
    return ModelState("m", 3, f.state_dict(), marks, (key,))


def test_the_outlier_flags_of_marks_and_keyed_answers_survive_a_checkpoint():
    state = state_with_a_glitch()
    back = from_plain(to_plain(state))
    assert back.marks == state.marks and back.keys == state.keys
    assert back.marks["a"].result.outlier and not back.marks["b"].result.outlier


def test_a_checkpoint_from_before_the_flags_reads_them_as_false():
    plain = to_plain(state_with_a_glitch())
    del plain["marks"]["outlier"], plain["keys"]["outlier"]
    back = from_plain(plain)
    assert not any(mark.result.outlier for mark in back.marks.values())
    assert not any(r.outlier for _, answer in back.keys for r in answer.results)


@pytest.mark.parametrize("flags", [[True], "yes", [True, 1]])
def test_malformed_flags_are_refused_naming_the_column(flags):
    plain = to_plain(state_with_a_glitch())
    plain["marks"]["outlier"] = flags
    with pytest.raises(ValueError, match=r"marks\.outlier is invalid: must be a list of 2 booleans"):
        from_plain(plain)
