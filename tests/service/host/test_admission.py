"""A micro-batch's jobs admitted together give what admitting them one by one gives."""

from __future__ import annotations

import dataclasses

import pytest

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.errors import ApiError, Conflict, Unprocessable
from tbptt_service.host.admission import BatchAdmission
from tbptt_service.storage.observation import Observation


def one_by_one(forecaster: Forecaster, jobs: list[list[Observation]]) -> tuple[list, list]:
    admission = BatchAdmission(forecaster, marks={}, max_series=3)
    outcomes = []
    for job in jobs:
        try:
            outcomes.append(admission.admit(job))
        except ApiError as error:
            outcomes.append(error)
    return outcomes, admission.merged


def described(outcomes: list) -> list:
    return [(type(o).__name__, o.body()) if isinstance(o, ApiError) else o for o in outcomes]


@pytest.mark.parametrize(
    "bad_job",
    [
        [Observation("a", 0.5, 5.0)],  # valid values, refused by the timestamp rule (one library validation)
        [Observation("b", [1.0, 2.0])],  # a value the library refuses (each job validated on its own)
        [Observation("c", 1.0), Observation("d", 1.0)],  # a fourth series over max_series=3
    ],
    ids=["older-timestamp", "bad-value", "too-many-series"],
)
def test_admitting_jobs_together_refuses_the_bad_one_alone(bad_job: list[Observation]) -> None:
    forecaster = Forecaster(ForecasterConfig(hidden_size=4))
    jobs = [
        [Observation("a", 1.0, 10.0), Observation("b", 2.0)],
        bad_job,
        [Observation("a", 1.0, 10.0), Observation("a", 3.0, 20.0)],  # an idempotent repeat, then a new value
    ]
    together = BatchAdmission(forecaster, marks={}, max_series=3)
    outcomes = together.admit_all(jobs)
    expected, expected_merged = one_by_one(forecaster, jobs)
    assert described(outcomes) == described(expected)
    assert together.merged == expected_merged
    assert isinstance(outcomes[1], Conflict | Unprocessable)
    assert outcomes[0] == [0, 1] and outcomes[2] == [0, 2]  # the repeat points at the first job's element


def test_missing_steps_are_inserted_within_each_request_and_the_batch_allowance() -> None:
    from tbptt_service.host.admission import SeriesMark
    from tbptt_service.host.cadence import Cadence

    forecaster = Forecaster(ForecasterConfig(hidden_size=4))
    known = Cadence(10.0, 8)
    marks = {s: SeriesMark(100.0, 1.0, cadence=known) for s in ("a", "b", "c")}
    admission = BatchAdmission(forecaster, marks, max_series=10, max_gap_steps=5, gap_allowance=7)
    refused = admission.admit_all([[Observation("a", 2.0, 160.0), Observation("a", 3.0, 150.0)]])  # older: 409
    assert isinstance(refused[0], Conflict) and admission.merged == [] and admission.gap_allowance == 7
    first = admission.admit([Observation("a", 2.0, 160.0)])  # 5 missing: all inserted
    assert first == [5] and admission.merged == [Observation("a", None, 100.0 + 10 * k) for k in range(1, 6)] + [
        Observation("a", 2.0, 160.0)
    ]
    second = admission.admit([Observation("b", 2.0, 140.0), Observation("c", 2.0, 200.0)])  # 3 and 9 missing
    # b's 3 fit into the 2 left of the batch's 7? no: over the allowance, and no season to keep: none inserted;
    # c's 9 are over the request's 5 too: none
    assert second == [6, 7] and admission.merged[6:] == [Observation("b", 2.0, 140.0), Observation("c", 2.0, 200.0)]
    assert (admission.inserted, admission.gap_allowance) == (5, 2)
    staged = admission._staged_marks
    assert staged["a"].cadence == Cadence(10.0, 8 + 6)  # the 5 inserted and the value: one step each
    assert staged["b"].cadence == known and staged["c"].cadence == known  # a gap keeps the cadence


def test_a_gap_past_a_spent_allowance_does_not_read_the_series_seasons() -> None:
    # with no allowance left nothing can be inserted (a whole-season remainder of 0 inserts nothing either):
    # the series' statistics (0.37 ms a call, a default model of 2,000 series, measured) were computed for every
    # such gap: a request of 10,000 series back from an outage, 10,000 x 0.37 ms on the worker thread for nothing
    from tbptt_service.host.admission import SeriesMark
    from tbptt_service.host.cadence import Cadence

    class Counting(Forecaster):
        stats_calls = 0

        def series_stats(self, series):
            Counting.stats_calls += 1
            return super().series_stats(series)

    forecaster = Counting(ForecasterConfig(hidden_size=4))
    forecaster.observe_many([("a", 1.0), ("b", 1.0)])
    marks = {s: SeriesMark(100.0, 1.0, cadence=Cadence(10.0, 8)) for s in ("a", "b")}
    admission = BatchAdmission(forecaster, marks, max_series=10, max_gap_steps=5, gap_allowance=5)
    assert admission.admit([Observation("a", 2.0, 200.0)]) == [0]  # 9 missing, over 5: the seasons are read
    assert Counting.stats_calls == 1 and admission.inserted == 0
    spent = BatchAdmission(forecaster, marks, max_series=10, max_gap_steps=5, gap_allowance=0)
    assert spent.admit([Observation("a", 2.0, 200.0), Observation("b", 2.0, 140.0)]) == [0, 1]
    assert Counting.stats_calls == 1 and spent.merged == [Observation("a", 2.0, 200.0), Observation("b", 2.0, 140.0)]


def test_values_without_a_timestamp_since_the_mark_take_the_first_steps_of_a_gap() -> None:
    from tbptt_service.host.admission import SeriesMark
    from tbptt_service.host.cadence import Cadence

    forecaster = Forecaster(ForecasterConfig(hidden_size=4))
    applied = forecaster.observe_many([("a", 1.0), ("a", 2.0), ("b", 1.0)])  # a: its mark, then one untimed value
    known = Cadence(10.0, 8)
    past = dataclasses.replace(applied[2], step=5)  # b's mark says step 5, its steps are 1 (a crafted import)
    marks = {"a": SeriesMark(100.0, 1.0, applied[0], cadence=known), "b": SeriesMark(100.0, 1.0, past, cadence=known)}
    admission = BatchAdmission(forecaster, marks, max_series=10, max_gap_steps=100, gap_allowance=100)
    # a: 4 missing, 1 taken by the applied untimed value; b: 4 missing, 2 taken by this request's untimed values
    sources = admission.admit(
        [Observation("a", 3.0, 150.0), Observation("b", 5.0), Observation("b", 6.0), Observation("b", 7.0, 150.0)]
    )
    nulls = [Observation("a", None, 100.0 + 10 * k) for k in (2, 3, 4)]
    assert sources == [3, 4, 5, 8] and admission.merged[:4] == [*nulls, Observation("a", 3.0, 150.0)]
    assert admission.merged[6:] == [
        Observation("b", None, 130.0),
        Observation("b", None, 140.0),
        Observation("b", 7.0, 150.0),
    ]
    assert admission.inserted == 3 + 2


def test_values_without_a_timestamp_after_a_restart_are_counted_from_the_reported_step() -> None:
    # The store's steps start again when a series restarts (its forecast blew up) while its results
    # go on counting: the untimed values since the mark were counted as 0 and 4 nulls inserted for 1.
    import math

    from tbptt_service.host.admission import SeriesMark
    from tbptt_service.host.cadence import Cadence

    forecaster = Forecaster(ForecasterConfig(hidden_size=4))
    for t in range(60):
        forecaster.observe("a", 5.0 + math.sin(t / 3))
    forecaster.store.tensors["carried_h"][forecaster.store.slots["a"]] = math.nan  # the state past repair
    mark_result = forecaster.observe("a", 5.0)  # the restart: reported step 61, the store's steps 0
    assert mark_result.step == 61 and forecaster.series_stats("a").restarts == 1
    forecaster.observe_many([("a", 5.1), ("a", 5.2), ("a", 5.3)])  # three values without a timestamp
    marks = {"a": SeriesMark(100.0, 5.0, mark_result, cadence=Cadence(10.0, 8))}
    admission = BatchAdmission(forecaster, marks, max_series=10, max_gap_steps=100, gap_allowance=100)
    assert admission.admit([Observation("a", 5.4, 150.0)]) == [1]  # 4 steps missing, 3 of them taken: 1 null
    assert admission.merged == [Observation("a", None, 140.0), Observation("a", 5.4, 150.0)]


def test_a_timestamp_another_request_of_the_batch_gave_another_value_is_named_as_that_request_s() -> None:
    # a review (session 50): the message said the series "already has" a value only another request of the same
    # batch gave (the model held none of it)
    admission = BatchAdmission(Forecaster(ForecasterConfig(hidden_size=4)), marks={}, max_series=10)
    first, second = [Observation("a", 20.0, 11.0)], [Observation("a", 99.0, 11.0)]
    outcomes = admission.admit_all([first, second])
    assert isinstance(outcomes[1], Conflict) and not isinstance(outcomes[0], ApiError)
    assert outcomes[1].detail == (
        "observation 0: a request applied in the same batch as this one gives series 'a' value 20.0 at timestamp "
        "11.0; 99.0 differs (a repeat must carry the same value)"
    )
