"""ModelState's plain (checkpointable) form keeps what a repeated observation is answered with."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.host.admission import SeriesMark
from tbptt_service.host.applied_keys import KeyedAnswer
from tbptt_service.host.cadence import UNKNOWN, Cadence
from tbptt_service.host.model_state import (
    ModelState,
    decode_model_checkpoint,
    encode_model_checkpoint,
    from_plain,
    to_plain,
)
from tbptt_service.host.recent_results import RecentResults
from tbptt_service.storage.checkpoints import decode_checkpoint, encode_checkpoint
from tbptt_service.storage.observation import Observation


def state_with_a_spike() -> ModelState:
    """Two series' marks (the last one a spike, flagged as an outlier) and a key answering both."""
    f = Forecaster(ForecasterConfig(hidden_size=4, season_length=12))
    for i in range(40):
        f.observe_many([("a", 10.0 + (i % 12) / 4), ("b", 5.0 + (i % 12) / 4)])
    results = list(f.observe_many([("a", 1e6), ("b", 6.0)]))
    assert [r.outlier for r in results] == [True, False]
    marks = {r.series: SeriesMark(100.0 + i, r.value, r) for i, r in enumerate(results)}
    key = ("key-1", KeyedAnswer("digest", tuple(results), (0, 1), results[-1].update_count))
    return ModelState("m", 3, f.state_dict(), marks, (key,))


def test_the_outlier_flags_of_marks_and_keyed_answers_survive_a_checkpoint():
    state = state_with_a_spike()
    back = from_plain(to_plain(state))
    assert back.marks == state.marks and back.keys == state.keys
    assert back.marks["a"].result.outlier and not back.marks["b"].result.outlier


def test_the_held_flags_of_marks_and_keyed_answers_survive_a_checkpoint():
    f = Forecaster(ForecasterConfig(hidden_size=4))
    values = [round(10.0 + (i % 12) / 4 + 0.01 * (i % 7), 2) for i in range(60)] + [12.34] * 25
    f.observe_many([(s, v) for v in values[:-1] for s in ("a", "b")])
    results = list(f.observe_many([("a", values[-1]), ("b", 7.0)]))
    assert [(r.held, r.outlier) for r in results] == [(True, False), (False, False)]
    marks = {r.series: SeriesMark(100.0 + i, r.value, r) for i, r in enumerate(results)}
    key = ("key-1", KeyedAnswer("digest", tuple(results), (0, 1), results[-1].update_count))
    state = ModelState("m", 3, f.state_dict(), marks, (key,))
    plain = to_plain(state)
    assert plain["marks"]["held"] == [True, False] and "outlier" not in plain["marks"]  # (a column where one is set)
    back = from_plain(plain)
    assert back.marks == state.marks and back.keys == state.keys
    assert back.marks["a"].result.held and not back.marks["b"].result.held


def test_a_checkpoint_from_before_the_flags_reads_them_as_false():
    plain = to_plain(state_with_a_spike())
    del plain["marks"]["outlier"], plain["keys"]["outlier"]
    back = from_plain(plain)
    assert not any(mark.result.outlier for mark in back.marks.values())
    assert not any(r.outlier for _, answer in back.keys for r in answer.results)


@pytest.mark.parametrize("flags", [[True], "yes", [True, 1]])
def test_malformed_flags_are_refused_naming_the_column(flags):
    plain = to_plain(state_with_a_spike())
    plain["marks"]["outlier"] = flags
    with pytest.raises(ValueError, match=r"marks\.outlier is invalid: must be a list of 2 booleans"):
        from_plain(plain)
    plain["marks"]["outlier"], plain["marks"]["held"] = [True, False], flags
    with pytest.raises(ValueError, match=r"marks\.held is invalid: must be a list of 2 booleans"):
        from_plain(plain)


def test_the_series_cadences_survive_a_checkpoint():
    state = state_with_a_spike()
    marks = dict(state.marks)
    marks["a"] = dataclasses.replace(marks["a"], cadence=Cadence(60.0, 9))
    state = dataclasses.replace(state, marks=marks)
    plain = to_plain(state)
    assert plain["marks"]["cadence_steps"] == [60.0, None] and plain["marks"]["cadence_runs"] == [9, 0]
    back = from_plain(plain)
    assert back.marks == state.marks and back.marks["a"].cadence.known and back.marks["b"].cadence == UNKNOWN


def test_a_cadences_count_of_whole_multiples_survives_a_checkpoint():
    state = state_with_a_spike()
    marks = dict(state.marks)
    marks["a"] = dataclasses.replace(marks["a"], cadence=Cadence(60.0, 9, 3))
    state = dataclasses.replace(state, marks=marks)
    plain = to_plain(state)
    assert plain["marks"]["cadence_multiples"] == [3, 0]
    assert from_plain(plain).marks == state.marks
    plain["marks"]["cadence_off_grid"] = plain["marks"].pop("cadence_multiples")  # its name in sessions 54-60
    assert from_plain(plain).marks == state.marks
    del plain["marks"]["cadence_off_grid"]  # a checkpoint from before session 54: no multiples counted
    assert from_plain(plain).marks["a"].cadence == Cadence(60.0, 9, 0)
    for name in ("cadence_multiples", "cadence_off_grid"):
        for bad in ([3], [8, 0], [-1, 0], [True, 0], [0, 2]):  # one of two, past MULTIPLES_RUN, beside no step
            plain["marks"][name] = bad
            with pytest.raises(ValueError, match=rf"marks\.{name}.* is invalid"):
                from_plain(plain)
        del plain["marks"][name]


def test_a_checkpoint_from_before_the_cadences_learns_them_again():
    plain = to_plain(state_with_a_spike())
    assert "cadence_steps" not in plain["marks"]  # none known: no columns
    assert all(mark.cadence == UNKNOWN for mark in from_plain(plain).marks.values())


@pytest.mark.parametrize(
    ("steps", "runs", "named"),
    [
        ([60.0], [9], "cadence_steps"),  # one of two
        ([-60.0, None], [9, 0], r"cadence_steps\[0\]"),
        ([float("inf"), None], [9, 0], r"cadence_steps\[0\]"),
        (["60", None], [9, 0], r"cadence_steps\[0\]"),
        ([60.0, None], [0, 0], r"cadence_runs\[0\]"),  # a step with no run
        ([60.0, None], [9, 3], r"cadence_runs\[1\]"),  # a run with no step
        ([60.0, None], [True, 0], r"cadence_runs\[0\]"),
    ],
)
def test_malformed_cadences_are_refused_naming_the_field(steps, runs, named):
    plain = to_plain(state_with_a_spike())
    plain["marks"]["cadence_steps"], plain["marks"]["cadence_runs"] = steps, runs
    with pytest.raises(ValueError, match=rf"marks\.{named}.* is invalid"):
        from_plain(plain)


def test_a_state_saved_with_a_bound_since_tightened_says_so_once_when_rebuilt(caplog):
    # the recovery of such a checkpoint logged each note twice: once for ModelState.config (the
    # factory's config) and once for load_state (the state's own config); now where the state loads
    f = Forecaster(ForecasterConfig(hidden_size=4, k1=2, k2=4, max_season_length=12))
    for t in range(6):
        f.observe("s", float(t % 3))
    saved = f.state_dict()
    old = ModelState("m", 3, {**saved, "config": {**saved["config"], "interval_level": 0.3}}, {})
    with caplog.at_level("WARNING"):
        assert old.config.interval_level == 0.5  # read alone: the value moved, nothing logged
        assert caplog.records == []
        rebuilt = old.build()
    notes = [r.getMessage() for r in caplog.records]
    note = "interval_level=0.3 is outside [0.5, 0.999] since session 26: taken as 0.5"
    assert notes == [f"a saved state's config: {note}"]
    assert rebuilt.config.interval_level == 0.5


def test_the_marks_of_a_model_of_several_features_survive_a_checkpoint_and_keep_their_width():
    # the marks' rows are checked one number per feature: a list value in a mark of a one-feature model
    # was taken (a hostile test's import); a model of two features' own rows, missing values and the
    # first value's empty forecast among them, must still be
    f = Forecaster(ForecasterConfig(hidden_size=4, n_features=2))
    first = f.observe("a", [1.0, None])
    last = [f.observe("b", [float(i), float(-i)]) for i in range(1, 5)][-1]
    marks = {"a": SeriesMark(1_700_000_000.0, first.value, first, cadence=Cadence(60.0, 9))}
    marks["b"] = SeriesMark(1_700_000_060.0, last.value, last)
    state = ModelState("m", 3, f.state_dict(), marks, ())
    assert from_plain(to_plain(state)).marks == state.marks
    plain = to_plain(state)
    plain["marks"]["results"][1][5] = [1.0, 2.0, 3.0]
    with pytest.raises(
        ValueError, match=r"marks\.results\[1\]\[5\]=\[1.0, 2.0, 3.0\] is invalid: .* a list of 2 of them"
    ):
        from_plain(plain, imported=True)
    assert from_plain(plain).marks["b"].result.forecast_next.mean == [1.0, 2.0, 3.0]  # a model's own: as it was


def test_a_models_own_mark_of_before_the_years_rule_loads_and_an_imported_one_is_refused():
    # a review (session 49): a mark of before session 35 may be 1.7e12 (milliseconds taken as seconds); the
    # import's new checks applied at recovery too would have quarantined its model
    plain = to_plain(state_with_a_spike())
    plain["marks"]["timestamps"][0] = 1.7e12
    assert from_plain(plain).marks["a"].timestamp == 1.7e12
    with pytest.raises(ValueError, match=r"marks\.timestamps\[0\]=1700000000000\.0 is invalid: .* years 1 to 9999"):
        from_plain(plain, imported=True)


def test_an_import_journaled_before_the_marks_checks_is_replayed_and_a_new_one_refused():
    # a second review (session 49): recovery replays an import record through read_import, and an import journaled
    # before the marks' checks (a mark past the years) would have quarantined its model
    from tbptt_service.host.model_state import encode_model_checkpoint, read_import

    state = state_with_a_spike()
    marks = dict(state.marks)
    marks["a"] = dataclasses.replace(marks["a"], timestamp=1.7e12)
    data = encode_model_checkpoint(dataclasses.replace(state, marks=marks))
    replayed, _ = read_import(data, state.config, journaled=True)
    assert replayed.marks["a"].timestamp == 1.7e12
    with pytest.raises(ValueError, match=r"marks\.timestamps\[0\]=1700000000000\.0 is invalid"):
        read_import(data, state.config)


def test_an_import_of_more_slots_than_the_model_may_hold_is_refused_before_it_is_built():
    # a hostile test (session 49): a 0.18 MB state of no series and 5,000 free slots (a load makes the free slots
    # past its rows blank rows) made 300 MB of rows, and the import's limit counted live series alone
    from tbptt_service.errors import Conflict
    from tbptt_service.host.memory_budget import SeriesLimit
    from tbptt_service.host.model_state import encode_model_checkpoint, read_import

    f = Forecaster(ForecasterConfig(hidden_size=4))
    plain = f.state_dict()
    plain["store"]["names"], plain["store"]["free"] = [None] * 5000, list(range(5000))
    data = encode_model_checkpoint(ModelState("m", 3, plain, {}, ()))
    built: list[ForecasterConfig] = []

    def factory(config: ForecasterConfig) -> Forecaster:
        built.append(config)
        return Forecaster(config)

    with pytest.raises(Conflict, match=r"it holds 0 series and 5000 free slots and this model may hold 10 here \(x\)"):
        read_import(data, f.config, factory, slots=SeriesLimit(10, "x"))
    assert built == []  # refused before anything was built


def state_with_recent_results() -> ModelState:
    """A model of two series whose recent results hold their last values."""
    f = Forecaster(ForecasterConfig(hidden_size=4))
    recent = RecentResults(capacity=5)
    for i in range(8):
        batch = [Observation("a", float(i % 3), 60.0 * i), Observation("b", None if i == 2 else float(i))]
        recent.record(batch, f.observe_many([(o.series, o.value) for o in batch]))
    return ModelState("m", 3, f.state_dict(), {}, (), recent.saved())


def test_the_recent_results_survive_a_checkpoint_bit_for_bit():
    state = state_with_recent_results()
    plain = to_plain(state)
    assert plain["recent"]["rows"].shape == (10, 7) and plain["recent"]["counts"] == [5, 5]
    back = from_plain(decode_checkpoint(encode_checkpoint(3, plain)).state)
    assert back.recent is not None and back.recent.rows.tobytes() == state.recent.rows.tobytes()
    assert (back.recent.series, back.recent.counts, back.recent.features) == (("a", "b"), (5, 5), 1)
    before, after = RecentResults.restored(state.recent), RecentResults.restored(back.recent)
    assert after.read("b", limit=10) == before.read("b", limit=10) and len(after.read("a", limit=10)) == 5


def test_an_export_holds_no_recent_results_and_an_import_reads_none():
    state = state_with_recent_results()
    assert decode_model_checkpoint(encode_model_checkpoint(state)).recent is None
    plain = to_plain(state)
    plain["recent"]["counts"] = "bad"  # an export made by hand with them: not read, so not refused either
    data = encode_checkpoint(3, {"format": 1, "model": plain})
    assert decode_model_checkpoint(data).recent is None


@pytest.mark.parametrize(
    ("field", "bad", "message"),
    [
        ("features", 2, r"recent\.features=2 is invalid: the model has 1 feature"),
        ("series", ["a", "a"], r"recent\.series is invalid"),
        ("counts", [5, 0], r"recent\.counts is invalid: must be a list of 2 integers >= 1"),
        ("counts", [5, True], r"recent\.counts is invalid"),
        (
            "rows",
            torch.zeros(10, 7, dtype=torch.float32),
            r"recent\.rows is invalid: must be float64 of shape \(10, 7\)",
        ),
        ("rows", torch.zeros(9, 7, dtype=torch.float64), r"recent\.rows is invalid: must be float64 of shape"),
        ("rows", torch.full((10, 7), 0.5, dtype=torch.float64), r"recent\.rows is invalid: its steps must be whole"),
    ],
)
def test_malformed_recent_results_are_refused_naming_the_field(field, bad, message):
    plain = to_plain(state_with_recent_results())
    plain["recent"][field] = bad
    with pytest.raises(ValueError, match=message):
        from_plain(plain)
