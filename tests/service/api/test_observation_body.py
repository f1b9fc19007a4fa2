"""The fast validation of observation bodies agrees with the pydantic schema on every input."""

from __future__ import annotations

import random
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from tbptt_online.series_store import MAX_NAME_LENGTH
from tbptt_online.values import MAX_ABS_VALUE
from tbptt_service.api.observation_body import observations_of, plain_observations
from tbptt_service.api.schemas import ObservationBatchIn, ObservationsBody
from tbptt_service.storage.observation import Observation

SCHEMA = TypeAdapter(ObservationsBody)


def through_schema(raw: Any) -> list[Observation]:
    body = SCHEMA.validate_python(raw)
    items = body.observations if isinstance(body, ObservationBatchIn) else [body]
    return [item.to_observation() for item in items]


PLAIN = [
    {"series": "a", "value": 1.5},
    {"series": "a", "value": 2},
    {"series": "a", "value": None},
    {"series": "a", "value": [1, None, 2.5]},
    {"series": "a", "value": []},
    {"series": "a", "value": -0.0, "timestamp": 1_700_000_000},
    {"series": "a", "value": 1.0, "timestamp": 1.5e9},
    {"series": "a", "value": 1.0, "timestamp": None},
    {"series": "x" * MAX_NAME_LENGTH, "value": MAX_ABS_VALUE},
    {"series": "a", "value": [-MAX_ABS_VALUE, 10**36]},
    {"series": "ünï cødé", "value": 3},
    {"observations": [{"series": "a", "value": 1}, {"series": "b", "value": [None], "timestamp": 7}]},
]
UNUSUAL = [  # the fast path passes these on: pydantic refuses them, or accepts a rarer shape
    {"series": "a", "value": 1.0, "timestamp": "2024-01-01T00:00:00Z"},
    {"series": "a", "value": True},
    {"series": "a", "value": "1.5"},
    {"series": "a", "value": [1, "2"]},
    {"series": "a", "value": [1, False]},
    {"series": "a", "value": [[1.0]]},
    {"series": "a", "value": {"x": 1}},
    {"series": "a", "value": float("nan")},
    {"series": "a", "value": float("inf")},
    {"series": "a", "value": [float("-inf")]},
    {"series": "a", "value": 10**400},
    {"series": "a", "value": 1e308},  # beyond MAX_ABS_VALUE
    {"series": "a", "value": [1.0, -1e37]},
    {"series": "a", "value": 10**37},
    {"series": "a", "value": 1.0, "timestamp": True},
    {"series": "a", "value": 1.0, "timestamp": float("nan")},
    {"series": "a", "value": 1.0, "timestamp": 1.7e12},  # past year 9999
    {"series": "a", "value": 1.0, "timestamp": "yesterday"},
    {"series": "", "value": 1.0},
    {"series": "x" * (MAX_NAME_LENGTH + 1), "value": 1.0},
    {"series": 5, "value": 1.0},
    {"series": "a"},
    {"value": 1.0},
    {"series": "a", "value": 1.0, "extra": 1},
    {"observations": []},
    {"observations": [{"series": "a", "value": 1}], "extra": 1},
    {"observations": [{"series": "a", "value": 1}, {"series": "b", "value": "2"}]},
    {"observations": {"series": "a", "value": 1}},
    {"observations": None},
    [{"series": "a", "value": 1}],
    "a",
    None,
]


def outcome(validate: Any, raw: Any) -> Any:
    try:
        return validate(raw)
    except ValidationError as error:
        return error.errors(include_url=False)


@pytest.mark.parametrize("raw", PLAIN, ids=range(len(PLAIN)))
def test_aplain_observations_takes_the_fast_path_and_gives_what_the_schema_gives(raw: Any) -> None:
    fast = plain_observations(raw)
    assert fast is not None
    assert fast == through_schema(raw) == observations_of(raw)
    assert [type(o.value) for o in fast] == [type(o.value) for o in through_schema(raw)]  # 2 -> 2.0, not 2


@pytest.mark.parametrize("raw", UNUSUAL, ids=range(len(UNUSUAL)))
def test_any_other_body_goes_through_the_schema_with_the_same_errors(raw: Any) -> None:
    assert plain_observations(raw) is None
    expected = outcome(through_schema, raw)
    got = outcome(observations_of, raw)
    if isinstance(expected, list) and expected and isinstance(expected[0], dict):
        assert [(e["loc"], e["msg"], e["type"]) for e in got] == [(e["loc"], e["msg"], e["type"]) for e in expected]
    else:
        assert got == expected  # an accepted rarer shape (an ISO timestamp)


def test_random_bodies_get_the_same_answer_both_ways() -> None:
    rng = random.Random(5)
    atoms: list[Any] = [0, 1, -3, 2.5, 1e300, None, True, "1", [], [1.0], [None, 2], [True], float("nan"), 2**70]
    keys = ["series", "value", "timestamp", "other"]
    for _ in range(2000):
        elements = []
        for _ in range(rng.randint(1, 3)):
            element = {key: rng.choice(atoms) for key in rng.sample(keys, rng.randint(1, 4))}
            if "series" in element and rng.random() < 0.8:
                element["series"] = rng.choice(["a", "b", ""])
            elements.append(element)
        raw: Any = {"observations": elements} if rng.random() < 0.5 else elements[0]
        fast = plain_observations(raw)
        expected = outcome(through_schema, raw)
        if fast is not None:
            assert fast == expected, raw
        got = outcome(observations_of, raw)
        if isinstance(expected, list) and expected and isinstance(expected[0], dict):
            assert [(e["loc"], e["msg"]) for e in got] == [(e["loc"], e["msg"]) for e in expected], raw
        else:
            assert got == expected, raw
