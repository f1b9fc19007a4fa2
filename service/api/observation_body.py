"""The observations body, validated fast: a plain well-formed body goes straight to ``Observation`` s.

``ObservationsBody`` (pydantic) validates each element with Python callbacks and builds
an ``ObservationIn`` per element, which the route then turns into an ``Observation``:
about 1.5 µs per element, the largest cost of a 1,000-observation POST outside the
model. ``observations_of`` accepts the common shape in one pass of plain type checks:
elements whose keys are ``series``, ``value`` and optionally ``timestamp``, a name of
the allowed length, numbers, lists of numbers or null, a numeric timestamp. Anything
else (an error, an ISO-8601 timestamp) goes through ``ObservationsBody`` unchanged, so
every error is reported exactly as before and every accepted body gives the same
observations (tests/service/test_observation_body.py holds the two to that).

>>> observations_of({"observations": [{"series": "a", "value": 1}, {"series": "b", "value": [2.5, None]}]})
[Observation(series='a', value=1.0, timestamp=None), Observation(series='b', value=[2.5, None], timestamp=None)]
>>> observations_of({"series": "a", "value": 1.5, "timestamp": "1970-01-01T00:01:00Z"})  # through pydantic
[Observation(series='a', value=1.5, timestamp=60.0)]
>>> try:
...     observations_of({"series": "a", "value": "1.5"})
... except ValueError as error:
...     print(error.errors()[0]["loc"], error.errors()[0]["msg"])
('single', 'value') Value error, "1.5" is not a number, a list of numbers or null
"""

from __future__ import annotations

from math import isfinite
from operator import itemgetter
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidatorFunctionWrapHandler, WrapValidator

from tbptt_online.series_store import MAX_NAME_LENGTH
from tbptt_online.values import MAX_ABS_VALUE
from tbptt_service.api.schemas import MAX_FEATURES, ObservationBatchIn, ObservationsBody
from tbptt_service.api.series_names import RESERVED_SERIES_SUFFIXES, has_dot_segment, showable
from tbptt_service.storage.observation import EARLIEST_TIMESTAMP, LATEST_TIMESTAMP, Observation

_NOT_PLAIN = object()


def _number(item: Any) -> Any:
    """A finite float from a JSON number (never a bool), or _NOT_PLAIN."""
    kind = type(item)
    if kind is float:
        return item if isfinite(item) else _NOT_PLAIN
    if kind is int and -(2**1023) < item < 2**1023:  # well inside the float range
        return float(item)
    return _NOT_PLAIN


def _feature(item: Any) -> Any:
    """A value's number within MAX_ABS_VALUE, or _NOT_PLAIN (pydantic's path names the problem)."""
    number = _number(item)
    return number if number is _NOT_PLAIN or -MAX_ABS_VALUE <= number <= MAX_ABS_VALUE else _NOT_PLAIN


def _value(value: Any) -> Any:
    """A value as ``ObservationIn`` gives it (None, a float, a list of floats or None), or _NOT_PLAIN."""
    if value is None:
        return None
    if type(value) is list:
        if len(value) > MAX_FEATURES:  # (pydantic's path refuses it, naming the count, before any element)
            return _NOT_PLAIN
        features = [None if item is None else _feature(item) for item in value]
        return _NOT_PLAIN if _NOT_PLAIN in features else features
    return _feature(value)


def plain_observations(raw: Any) -> list[Observation] | None:
    """The observations of a plain, valid body; None when it needs the full validation."""
    if type(raw) is not dict:
        return None
    if "observations" in raw:
        elements = raw["observations"]
        if len(raw) != 1 or type(elements) is not list or not elements:
            return None
    else:
        elements = [raw]
    observations = []
    for element in elements:
        if type(element) is not dict or "series" not in element or "value" not in element:
            return None
        timestamp = element.get("timestamp")
        if len(element) != (3 if "timestamp" in element else 2):  # no other key
            return None
        series, value = element["series"], element["value"]
        if (
            type(series) is not str
            or not 0 < len(series) <= MAX_NAME_LENGTH
            or series.endswith(RESERVED_SERIES_SUFFIXES)
            or has_dot_segment(series)
        ):
            return None
        if type(value) is not float or not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # the common case: no more checks
            value = _value(value)
            if value is _NOT_PLAIN:
                return None
        if timestamp is not None:
            timestamp = _number(timestamp)
            if timestamp is _NOT_PLAIN or not EARLIEST_TIMESTAMP <= timestamp <= LATEST_TIMESTAMP:
                return None
        observations.append(Observation(series, value, timestamp))
    if not showable("".join(map(itemgetter(0), observations))):  # one pass over the names (series_names.py)
        return None
    return observations


def _validate(raw: Any, handler: ValidatorFunctionWrapHandler) -> list[Observation]:
    plain = plain_observations(raw)
    if plain is not None:
        return plain
    body = handler(raw)  # ObservationsBody: its errors, or the rarer valid shapes (ISO timestamps)
    items = body.observations if isinstance(body, ObservationBatchIn) else [body]
    return [item.to_observation() for item in items]


# What the route declares: documented (OpenAPI) as ObservationsBody, validated into Observations.
ObservationsBodyIn = Annotated[ObservationsBody, WrapValidator(_validate)]
_ADAPTER: TypeAdapter[list[Observation]] = TypeAdapter(ObservationsBodyIn)


def observations_of(raw: Any) -> list[Observation]:
    """The observations of a parsed JSON body, or pydantic's ``ValidationError`` naming the problem."""
    return _ADAPTER.validate_python(raw)
