"""Calls: each operation of the service API as one request description plus its decoder.

The sync :class:`~tbptt_online.client.Client` and the :class:`~tbptt_online.client.AsyncClient`
both send these, so the two twins cannot drift apart. A call is *idempotent* when
sending it twice has the effect of sending it once: GETs; observation batches sent with an
``Idempotency-Key`` (the server answers a key it still holds with the key's first answer and
applies nothing: the caller chooses to key a batch, the server holding its answer for a while,
README "Idempotency keys"); and batches in which every element carries a timestamp and each
series appears once (the server answers a repeated ``(series, timestamp, value)`` with the first
result, but it keeps only a series' last timestamp, so the retry of a batch holding two values
of one series was refused with 409 after its answer was lost, though applied: a hostile test,
session 48). Only idempotent calls are retried.

>>> call = observe("default", [{"series": "cpu", "value": 0.5, "timestamp": 1700000000}])
>>> call.method, call.path, call.idempotent
('POST', '/v1/models/default/observations', True)
>>> observe("default", [{"series": "cpu", "value": 0.5}]).idempotent
False
>>> twice = [{"series": "cpu", "value": 0.5, "timestamp": 60}, {"series": "cpu", "value": 0.6, "timestamp": 120}]
>>> observe("default", twice).idempotent
False
>>> keyed = observe("default", [{"series": "cpu", "value": 0.5}], key="k1")
>>> keyed.idempotent, keyed.request_args()["headers"]["idempotency-key"]
(True, 'k1')
>>> encode_observation(("cpu", float("nan"), datetime(2024, 1, 1)))
{'series': 'cpu', 'value': None, 'timestamp': '2024-01-01T00:00:00+00:00'}
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from tbptt_online.client.errors import UnexpectedAnswer, error_for_status
from tbptt_online.client.results import (
    Forecast,
    ForecastPage,
    ModelInfo,
    ObservationResult,
    SeriesPage,
    SeriesStats,
    SeriesStatsPage,
)

Timestamp = float | int | str | datetime | None
ObservationLike = Mapping[str, Any] | Sequence[Any]  # {"series", "value", "timestamp"?} or (series, value[, ts])


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    decode: Callable[[Any], Any]
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None  # JSON-ready, or None for no body
    idempotent: bool = False
    headers: dict[str, str] = field(default_factory=dict)  # the request's own (an observation batch's key)

    def request_args(self) -> dict[str, Any]:
        """Keyword arguments of ``httpx.Client.request`` (strict JSON: NaN was turned into null)."""
        args: dict[str, Any] = {"method": self.method, "url": self.path}
        if self.params:
            args["params"] = self.params
        if self.body is not None:
            args["content"] = json.dumps(self.body, allow_nan=False, separators=(",", ":")).encode()
            args["headers"] = {"content-type": "application/json"}
        if self.headers:
            args["headers"] = {**args.get("headers", {}), **self.headers}
        return args

    def result(self, response: httpx.Response) -> Any:
        """The decoded result of a success, or the :class:`ApiError` of anything else;
        :class:`UnexpectedAnswer` for a success that is not the API's answer to this call."""
        if response.is_success:
            try:
                return self.decode(strict_json(response.content) if response.content else None)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError) as error:
                why = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                raise UnexpectedAnswer(
                    f"{self.method} {self.path}: the answer ({response.status_code}, {len(response.content)} bytes) "
                    f"is not the tbptt-online API's ({why[:200]}): is the address a tbptt-online server?"
                ) from error
        try:
            body = strict_json(response.content)
        except (ValueError, RecursionError):
            body = response.text
        raise error_for_status(response.status_code, body)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number (the service sends null)")


def strict_json(content: bytes) -> Any:
    """An answer's JSON as the service writes it: NaN and the infinities refused (Python's ``json``
    takes them; a forecast of NaN was printed as one, its lower bound above its upper one)."""
    return json.loads(content, parse_constant=_no_constant)


def _segment(name: str) -> str:
    """A model or series name as one URL path segment ('/' and spaces escaped; a name that is
    '.' or '..' as '%2E' and '%2E%2E', which httpx sends as they are: a literal dot segment is
    removed from the URL, and '/series/./forecast' would ask for the series 'forecast').

    >>> _segment("web 1/cpu"), _segment(".."), _segment("a.b")
    ('web%201%2Fcpu', '%2E%2E', 'a.b')
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name {name!r} is invalid: must be a non-empty string")
    if name in (".", ".."):
        return "%2E" * len(name)
    return quote(name, safe="")


def _model_path(model: str) -> str:
    return f"/v1/models/{_segment(model)}"


def _series_path(model: str, series: str) -> str:
    return f"{_model_path(model)}/series/{_segment(series)}"


def _ignore(_: Any) -> None:
    return None


MAX_ABS_VALUE = 1e36  # the service's bound on a value's magnitude (tbptt_online.values'; a test checks they agree)


def encode_value(value: Any) -> Any:
    """A number, a list of numbers or None, as JSON: NaN becomes None (missing); infinities are refused,
    and so are booleans and text, as the service refuses them (``True`` was sent as 1.0, ``"3"`` as 3.0).

    >>> encode_value([1, float("nan")])
    [1, None]
    >>> try:
    ...     encode_value(True)
    ... except ValueError as error:
    ...     print(error)
    value True is invalid: must be a number, a list of numbers or None
    """
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):  # numpy or torch: Python's numbers and lists
        value = value.tolist()  # (a numpy bool a bool, refused below: float() took it as 1.0)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if isinstance(value, bool | str | bytes):  # float() would take them: the service does not
        raise ValueError(f"value {value!r} is invalid: must be a number, a list of numbers or None")
    if not isinstance(value, int | float):
        try:  # numpy scalars and the like
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"value {value!r} is invalid: must be a number, a list of numbers or None") from None
    try:
        number = float(value)  # an int past a float's range: refused here (math.isnan raised OverflowError)
    except OverflowError:
        raise ValueError(f"value {value!r} is invalid: too large for a 64-bit float") from None
    if math.isnan(number):
        return None
    if math.isinf(number):
        raise ValueError(f"value {value!r} is invalid: must be finite (use None or NaN for a missing value)")
    if abs(number) > MAX_ABS_VALUE:  # (README said so since session 48; a hostile test found it was not checked)
        raise ValueError(f"value {value!r} is invalid: past the service's bound of ±{MAX_ABS_VALUE:g}")
    return value


def encode_timestamp(timestamp: Timestamp) -> float | int | str | None:
    """Unix seconds pass through; a ``datetime`` becomes ISO-8601 (a naive one is taken as UTC)."""
    if isinstance(timestamp, datetime):
        return (timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)).isoformat()
    if timestamp is None or isinstance(timestamp, str):
        return timestamp
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float) or not math.isfinite(timestamp):
        raise ValueError(f"timestamp {timestamp!r} is invalid: must be unix seconds, ISO-8601 text or a datetime")
    return timestamp


def encode_observation(item: ObservationLike) -> dict[str, Any]:
    """One observation as the JSON the service takes (the timestamp left out when None)."""
    if isinstance(item, Mapping):
        series, value, timestamp = item["series"], item.get("value"), item.get("timestamp")
    elif isinstance(item, Sequence) and not isinstance(item, str) and len(item) in (2, 3):
        series, value, timestamp = item[0], item[1], (item[2] if len(item) == 3 else None)
    else:
        raise ValueError(f"observation {item!r} is invalid: must be a mapping or a (series, value[, timestamp]) tuple")
    out: dict[str, Any] = {"series": series, "value": encode_value(value)}
    if timestamp is not None:
        out["timestamp"] = encode_timestamp(timestamp)
    return out


def encode_batch(chunk: list[ObservationLike], offset: int) -> list[dict[str, Any]]:
    """``observe_many``'s request of the caller's elements ``offset`` .. encoded; a ``ValueError`` names the
    caller's element and, past the first request, that the earlier requests were sent (a review, session 57: a bad
    value in a later request raised the bare message, 200 values already applied)."""
    out = []
    for j, item in enumerate(chunk):
        try:
            out.append(encode_observation(item))
        except ValueError as error:
            sent = f" (the {offset} before this request's were sent and applied)" if offset else ""
            raise ValueError(f"observation {offset + j}: {error}{sent}") from None
    return out


def observe(model: str, observations: list[dict[str, Any]], key: str | None = None) -> Call:
    """POST one batch of already-encoded observations, with the ``Idempotency-Key`` ``key`` if
    given (then idempotent, whatever its timestamps); decodes to a list of results. A key is 1 to 255
    characters (the server's rule, checked before sending: ``observe_many``'s ``/i`` counts)."""
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= MAX_KEY_LENGTH):
        raise ValueError(f"idempotency key {key!r:.80} is invalid: must be 1 to {MAX_KEY_LENGTH} characters")
    timestamped = all("timestamp" in o for o in observations)
    once = len({o["series"] for o in observations}) == len(observations)  # (a repeat of two values of one: 409)
    return Call(
        "POST",
        f"{_model_path(model)}/observations",
        lambda data: [ObservationResult.from_json(r) for r in data["results"]],
        body={"observations": observations},
        idempotent=key is not None or (timestamped and once),
        headers={"idempotency-key": key} if key is not None else {},
    )


MAX_KEY_LENGTH = 255  # the server's bound on an Idempotency-Key


def batch_key(key: str | None, batch: int) -> str | None:
    """The ``Idempotency-Key`` of batch ``batch`` (0-based) of a call keyed ``key``: ``key/batch``.

    >>> batch_key("feed-7", 0), batch_key(None, 3)
    ('feed-7/0', None)
    """
    return None if key is None else f"{key}/{batch}"


def forecast(model: str, series: str, horizon: int, level: float | None) -> Call:
    params: dict[str, Any] = {"horizon": horizon}
    if level is not None:
        params["level"] = level
    return Call("GET", f"{_series_path(model, series)}/forecast", Forecast.from_json, params, idempotent=True)


def create_model(name: str, config: dict[str, Any]) -> Call:
    return Call("POST", "/v1/models", ModelInfo.from_json, body={"name": name, "config": encode_config(config)})


def encode_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """ForecasterConfig fields as JSON: a numpy scalar as the Python number it holds, in a list or tuple
    too, as ``ForecasterConfig`` takes it (``hidden_size=np.int64(8)`` raised json's bare ``TypeError``, a
    hostile test, session 51); any value JSON cannot carry is a ``ValueError`` naming its field.

    >>> import numpy as np
    >>> encode_config({"hidden_size": np.int64(8), "season_length": (np.int32(24), 168), "cell": "gru"})
    {'hidden_size': 8, 'season_length': [24, 168], 'cell': 'gru'}
    >>> encode_config({"learning_rate": float("nan")})
    Traceback (most recent call last):
    ...
    ValueError: config field 'learning_rate': nan is invalid: not a finite number
    """
    encoded = {}
    for name, value in config.items():
        try:
            plain = _plain(value)
            json.dumps(plain)
        except (TypeError, ValueError, RecursionError):  # (an object, a circular list)
            raise ValueError(
                f"config field {name!r}: {value!r:.200} is invalid: not a number, text, true/false, null or a list"
            ) from None
        try:
            json.dumps(plain, allow_nan=False)
        except ValueError:  # (NaN or an infinity: the request's strict JSON refused it unnamed)
            raise ValueError(f"config field {name!r}: {value!r:.200} is invalid: not a finite number") from None
        encoded[name] = plain
    return encoded


def _plain(value: Any) -> Any:
    """``value`` with each numpy scalar in it (``shape == ()``) as the Python number or bool it holds."""
    if type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return value.item()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def list_models() -> Call:
    return Call("GET", "/v1/models", lambda data: [_model_info(m) for m in data["models"]], idempotent=True)


def _model_info(item: Any) -> ModelInfo | str:
    return ModelInfo.from_json(item) if isinstance(item, dict) else item


def get_model(model: str) -> Call:
    return Call("GET", _model_path(model), ModelInfo.from_json, idempotent=True)


def delete_model(model: str) -> Call:
    return Call("DELETE", _model_path(model), _ignore)


def _page_params(offset: int, limit: int, after: str | None) -> dict[str, Any]:
    """A page's query: from ``offset``, or after the name ``after`` (a cursor: the page before's ``next_after``)."""
    return {"limit": limit, "after": after} if after is not None else {"offset": offset, "limit": limit}


def list_series(model: str, offset: int, limit: int, after: str | None = None) -> Call:
    params = _page_params(offset, limit, after)
    return Call("GET", f"{_model_path(model)}/series", SeriesPage.from_json, params, idempotent=True)


MAX_PAGE_STEPS = 100_000  # the server's most forecast steps a page (series x horizon x features)


def page_size_for(horizon: int) -> int:
    """``iter_forecasts``' default page: 100 series, fewer where their steps pass ``MAX_PAGE_STEPS`` (a model of
    one feature; a wider one's page is smaller by its features: pass ``page_size``).

    >>> page_size_for(24), page_size_for(1000), page_size_for(10**6)
    (100, 100, 1)
    """
    return max(1, min(100, MAX_PAGE_STEPS // max(horizon, 1)))


def forecast_page(
    model: str, horizon: int, level: float | None, offset: int, limit: int, after: str | None = None
) -> Call:
    params: dict[str, Any] = {"horizon": horizon, **_page_params(offset, limit, after)}
    if level is not None:
        params["level"] = level
    return Call("GET", f"{_model_path(model)}/forecasts", ForecastPage.from_json, params, idempotent=True)


def series_stats(model: str, series: str) -> Call:
    return Call("GET", _series_path(model, series), SeriesStats.from_json, idempotent=True)


def series_stats_page(model: str, offset: int, limit: int, after: str | None = None) -> Call:
    params = _page_params(offset, limit, after)
    return Call("GET", f"{_model_path(model)}/series-stats", SeriesStatsPage.from_json, params, idempotent=True)


def delete_series(model: str, series: str) -> Call:
    return Call("DELETE", _series_path(model, series), _ignore)


def health(path: str) -> Call:
    return Call("GET", path, lambda data: data, idempotent=True)
