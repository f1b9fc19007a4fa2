"""POST /v1/models/{model}/observations: results as the library computes them, timestamps, atomic refusals."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tbptt_online import Forecaster, ForecasterConfig, StepResult
from tbptt_service.api.app import create_app
from tbptt_service.errors import StorageFullError

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"


def as_json(result: StepResult, timestamp: float | None = None) -> dict[str, Any]:
    """What the API must answer for a library StepResult."""

    def prediction(p: Any) -> dict[str, Any]:
        return {"mean": p.mean, "lower": p.lower, "upper": p.upper}

    return {
        "series": result.series,
        "step": result.step,
        "timestamp": timestamp,
        "value": result.value,
        "forecast_made": prediction(result.forecast_made),
        "forecast_next": prediction(result.forecast_next),
        "updated": result.updated,
        "update_count": result.update_count,
        "outlier": result.outlier,
        "held": result.held,
    }


async def state_of(client: httpx.AsyncClient) -> dict[str, Any]:
    """Everything a refused request must leave as it was: counts, per-series stats and forecasts."""
    info = (await client.get("/v1/models/default")).json()
    names = (await client.get("/v1/models/default/series", params={"limit": 1000})).json()["series"]
    series = {}
    for name in names:
        stats = (await client.get(f"/v1/models/default/series/{name}")).json()
        forecast = (await client.get(f"/v1/models/default/series/{name}/forecast", params={"horizon": 3})).json()
        series[name] = (stats, forecast)
    return {"info": info, "series": series}


async def test_single_observations_return_what_the_library_returns(client_for) -> None:
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    async with client_for() as client:
        for value in [1.0, 2.5, 2.0, 3.5, 3.0, None, 4.5]:
            response = await client.post(URL, json={"series": "a", "value": value})
            assert response.status_code == 200
            expected = reference.observe("a", value)
            assert response.json() == {"results": [as_json(expected)], "update_count": expected.update_count}
    assert reference.update_stats().updates == 1  # the comparison covered an update


async def test_a_batch_keeps_each_series_order_like_observe_many(client_for) -> None:
    items = [("a", 1.0), ("b", 10.0), ("a", 2.0), ("c", 5.0), ("a", 3.0), ("b", 11.0), ("a", 4.0), ("a", 5.0)]
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    async with client_for() as client:
        body = {"observations": [{"series": s, "value": v} for s, v in items]}
        response = await client.post(URL, json=body)
    assert response.status_code == 200
    assert response.json()["results"] == [as_json(r) for r in reference.observe_many(items)]
    assert [r["step"] for r in response.json()["results"]] == [1, 1, 2, 1, 3, 2, 4, 5]


async def test_multivariate_values_and_missing_features(client_for) -> None:
    model = {**SMALL_MODEL, "n_features": 2}
    reference = Forecaster(ForecasterConfig.from_dict(model))
    async with client_for(default_model=model) as client:
        values = [[1.0, 2.0], [1.5, None], None, [2.0, 3.0]]
        for value in values:
            response = await client.post(URL, json={"series": "m", "value": value})
            assert response.status_code == 200
            assert response.json()["results"] == [as_json(reference.observe("m", value))]


def stuck_values() -> list[float]:
    """60 values, no two alike in a row, then one reading 25 times: its last repeats held (flat_runs.py)."""
    return [round(10.0 + (i % 12) / 4 + 0.01 * (i % 7), 2) for i in range(60)] + [12.34] * 25


async def test_a_stuck_reading_is_answered_held_as_the_library_says_one_by_one_and_in_batches(client_for) -> None:
    """``held`` in each result where the library holds the value back: one request a value (a batch's single
    tick), and one request of every value of two series (a series many times in a batch: its rows in several
    ticks); a retried request (the same idempotency key) answers the same flags."""
    values = stuck_values()
    reference = Forecaster(ForecasterConfig.from_dict(SMALL_MODEL))
    expected = [as_json(reference.observe("a", v)) for v in values]
    assert any(e["held"] for e in expected) and not any(e["held"] for e in expected[:61])
    async with client_for() as client:
        single = [(await client.post(URL, json={"series": "a", "value": v})).json()["results"][0] for v in values]
        batch = [{"series": s, "value": v} for v in values for s in ("b", "c")]
        headers = {"Idempotency-Key": "stuck-1"}
        answer = (await client.post(URL, json={"observations": batch}, headers=headers)).json()["results"]
        again = (await client.post(URL, json={"observations": batch}, headers=headers)).json()["results"]
        stats = (await client.get("/v1/models/default/series/b")).json()
    assert single == expected
    assert [r["held"] for r in answer] == [e["held"] for e in expected for _ in ("b", "c")]
    assert again == answer and stats["held"] == sum(e["held"] for e in expected)


async def test_a_spike_is_answered_as_an_outlier_and_so_is_its_repeat(client_for) -> None:
    """A value far outside its interval: ``outlier`` true in its result, as the library says;
    the same observation repeated (its timestamp) answers the same result."""
    model = {**SMALL_MODEL, "season_length": 12}
    reference = Forecaster(ForecasterConfig.from_dict(model))
    values = [10.0 + (i % 12) / 4 for i in range(40)] + [1e6]
    async with client_for(default_model=model) as client:
        answers = []
        for t, value in enumerate(values):
            response = await client.post(URL, json={"series": "a", "value": value, "timestamp": t})
            assert response.json()["results"] == [as_json(reference.observe("a", value), float(t))]
            answers.append(response.json()["results"][0])
        again = await client.post(URL, json={"series": "a", "value": 1e6, "timestamp": 40})
    assert [a["outlier"] for a in answers] == [False] * 40 + [True]
    assert again.json()["results"] == [answers[40]]  # the last timestamp's observation, repeated


async def test_read_your_writes(client_for) -> None:
    async with client_for() as client:
        for step in range(1, 6):
            assert (await client.post(URL, json={"series": "a", "value": float(step)})).status_code == 200
            assert (await client.get("/v1/models/default/series/a")).json()["count"] == step
            forecast = (await client.get("/v1/models/default/series/a/forecast")).json()
            assert forecast["step"] == step


async def test_repeated_timestamp_with_the_same_value_is_idempotent(client_for) -> None:
    async with client_for() as client:
        await client.post(URL, json={"series": "a", "value": 2.0, "timestamp": 99})
        first = await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": 100})
        before = await state_of(client)
        # The same moment, written as ISO-8601 and as an integer value: still the same observation.
        again = await client.post(URL, json={"series": "a", "value": 1, "timestamp": "1970-01-01T00:01:40Z"})
        after = await state_of(client)
    assert again.status_code == 200
    assert again.json()["results"] == first.json()["results"]  # the first result, not a new step
    assert after == before  # nothing learned twice
    assert after["series"]["a"][0]["count"] == 2
    assert after["series"]["a"][0]["last_timestamp"] == 100.0


async def test_the_end_of_a_day_written_24_00_is_the_next_days_midnight(client_for) -> None:
    # fix (hostile test): ISO 8601's "T24:00:00" was 422 ("hour must be in 0..23" inside, "must be ... an
    # ISO-8601 date-time" out); it is now the next day's 00:00, and the same moment written so repeats it
    async with client_for() as client:
        first = await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": "2024-02-29T24:00:00Z"})
        again = await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": "2024-03-01T00:00:00Z"})
        short = await client.post(URL, json={"series": "a", "value": 2.0, "timestamp": "2024-03-01T24:00+01:00"})
        past = await client.post(URL, json={"series": "b", "value": 1.0, "timestamp": "9999-12-31T24:00:00Z"})
        stats = (await client.get("/v1/models/default/series/a")).json()
    assert (first.status_code, again.status_code, short.status_code) == (200, 200, 200), short.text
    assert again.json()["results"] == first.json()["results"]  # the same observation
    assert (stats["count"], stats["last_timestamp"]) == (2, 1709334000.0)  # 2024-03-01T23:00:00Z
    assert past.status_code == 422 and "it lies outside the years 1 to 9999 in UTC" in past.json()["detail"], past.text


@pytest.mark.parametrize(
    ("sent", "seconds"),
    [
        ("20240101", 1704067200.0),  # ISO 8601's basic date (a hostile test: told "must be a JSON number")
        ("2024-01-01t24:00", 1704153600.0),  # a lowercase t, as fromisoformat takes for other times
        ("9999-12-31T24:00+05:00", 253402282800.0),  # 19:00 UTC on the year 9999's last day
        # a leap second, as POSIX time reads it, and a lowercase z (RFC 3339): both 422 until session 35
        ("2016-12-31T23:59:60Z", 1483228799.999999),  # the last microsecond of 23:59:59: before 00:00:00
        ("2016-12-31T18:59:60.5-05:00", 1483228799.999999),  # (a review: as 00:00:00 it took the next one's)
        ("2024-01-01T00:00:00z", 1704067200.0),
        ("9999-12-31T23:59:60Z", None),
        ("9999-12-31T23:59:59.999Z", 253402300799.999),  # the range's last millisecond
        ("9999-12-31T23:59:59.9999Z", None),  # past it (a hostile test, session 57: the message now names the end)
        ("9999-12-31T23:59-05:00", None),  # the year 10000 in UTC: past the range numbers keep to
        ("0001-01-01T00:00+05:00", None),  # before the year 1 in UTC
    ],
)
async def test_an_iso_timestamp_is_read_in_utc_and_kept_to_the_years_1_to_9999(client_for, sent, seconds) -> None:
    async with client_for() as client:
        response = await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": sent})
        stats = (await client.get("/v1/models/default/series/a")).json()
    if seconds is None:
        assert response.status_code == 422, response.text
        assert response.json()["detail"].endswith(
            "it lies outside the years 1 to 9999 in UTC (0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999Z)"
        )
    else:
        assert response.status_code == 200, response.text
        assert stats["last_timestamp"] == seconds


async def test_a_leap_second_is_refused_where_it_cannot_be(client_for) -> None:
    # RFC 3339 allows :60 at 23:59 UTC only (a review, session 35: 10:00:60 was read as 10:01:00)
    async with client_for() as client:
        response = await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": "2016-12-31T10:00:60Z"})
    assert response.status_code == 422, response.text
    assert "must be unix seconds or an ISO-8601 date-time" in response.json()["detail"]


async def test_an_iso_timestamp_is_kept_to_the_microsecond(client_for) -> None:
    # digits past the sixth are dropped (a float64 of unix seconds holds about 0.24 us today): two
    # moments in one microsecond are one timestamp, and the second with another value is a 409
    async with client_for() as client:
        first = await client.post(
            URL, json={"series": "a", "value": 1.0, "timestamp": "2024-01-01T00:00:00.123456789Z"}
        )
        same = await client.post(URL, json={"series": "a", "value": 2.0, "timestamp": "2024-01-01T00:00:00.1234561Z"})
        stats = (await client.get("/v1/models/default/series/a")).json()
    assert first.status_code == 200 and stats["last_timestamp"] == 1704067200.123456
    assert same.status_code == 409 and "already has value 1.0" in same.json()["detail"], same.text


@pytest.mark.parametrize(
    ("second", "fragment"),
    [
        ({"value": 5.0, "timestamp": 99}, "older than its last timestamp 100.0"),
        ({"value": 5.0, "timestamp": 100}, "already has value 1.0 at timestamp 100.0"),
    ],
    ids=["older", "same-time-other-value"],
)
async def test_timestamp_conflicts_are_409_and_change_nothing(client_for, second, fragment) -> None:
    async with client_for() as client:
        await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": 100})
        before = await state_of(client)
        response = await client.post(URL, json={"series": "a", **second})
        assert response.status_code == 409
        assert fragment in response.json()["detail"]
        assert response.json()["index"] == 0
        assert await state_of(client) == before


async def test_timestamp_rule_applies_in_order_within_a_batch(client_for) -> None:
    async with client_for() as client:
        repeat = {"series": "a", "value": 1.0, "timestamp": 10}
        response = await client.post(URL, json={"observations": [repeat, repeat, {"series": "b", "value": 3.0}]})
        assert response.status_code == 200
        results = response.json()["results"]
        assert results[0] == results[1] and results[0]["step"] == 1  # the repeat got the first result
        before = await state_of(client)
        later_then_older = [
            {"series": "a", "value": 2.0, "timestamp": 12},
            {"series": "a", "value": 3.0, "timestamp": 11},
        ]
        response = await client.post(URL, json={"observations": [{"series": "b", "value": 4.0}, *later_then_older]})
        assert response.status_code == 409
        assert response.json()["index"] == 2
        assert await state_of(client) == before  # the batch is atomic: b's value was not applied either


def _older(i: int, series: str, timestamp: float, last: float) -> dict[str, Any]:
    message = f"observation {i}: timestamp {timestamp} of series {series!r} is older than its last timestamp {last}"
    return {"loc": ["body", "observations", str(i), "timestamp"], "msg": message, "type": "timestamp_older"}


async def test_a_409_lists_every_element_the_timestamp_rule_refuses_and_applies_nothing(client_for) -> None:
    # a new user's gateway (session 56): 3 of 300 sensors' clocks went back, and the 409 named the first only,
    # so each stale sensor took a round trip of its own; now it lists them as a 422 lists bad elements
    async with client_for() as client:
        first = [{"series": f"s{k}", "value": 1.0, "timestamp": 100} for k in range(7)]
        assert (await client.post(URL, json={"observations": first})).status_code == 200
        before = await state_of(client)
        batch = [
            {"series": "s0", "value": 2.0, "timestamp": 200},
            {"series": "s1", "value": 2.0, "timestamp": 50},  # older: refused
            {"series": "s2", "value": 2.0, "timestamp": 200},
            {"series": "s3", "value": 2.0, "timestamp": 50},  # older: refused
            {"series": "s1", "value": 3.0, "timestamp": 300},  # after s1's last (100): element 1 set no mark
            {"series": "s2", "value": 9.0, "timestamp": 200},  # element 2's timestamp with another value: refused
            {"series": "s4", "value": 2.0, "timestamp": 50},  # older: refused
            {"series": "s5", "value": 2.0, "timestamp": 50},  # older: refused (the fifth listed)
            {"series": "s0", "value": 3.0, "timestamp": 150},  # older than element 0's: refused, counted only
            {"series": "s6", "value": 2.0, "timestamp": 200},
        ]
        response = await client.post(URL, json={"observations": batch})
        assert response.status_code == 409
        assert response.json() == {
            "detail": "observation 1: timestamp 50.0 of series 's1' is older than its last timestamp 100.0",
            "index": 1,
            "errors": [
                _older(1, "s1", 50.0, 100.0),
                _older(3, "s3", 50.0, 100.0),
                {
                    "loc": ["body", "observations", "5", "value"],
                    "msg": "observation 5: observation 2 of this request gives series 's2' value 2.0 at timestamp "
                    "200.0; 9.0 differs (a repeat must carry the same value)",
                    "type": "timestamp_repeat_differs",
                },
                _older(6, "s4", 50.0, 100.0),
                _older(7, "s5", 50.0, 100.0),
            ],
            "error_count": 6,
            "refused": [1, 3, 5, 6, 7, 8],  # every one (a hostile test, session 57: 5 listed a round trip)
        }
        assert await state_of(client) == before  # atomic: none of the other 4 values was applied
        kept = [obs for i, obs in enumerate(batch) if i not in response.json()["refused"]]  # the gateway drops them all
        assert (await client.post(URL, json={"observations": kept})).status_code == 200


async def test_a_409_lists_every_series_past_the_cap_among_the_timestamp_refusals(client_for) -> None:
    # (a hostile test, session 57: only the first series past the cap was counted, the others' round trips followed)
    async with client_for(max_series_per_model=2) as client:
        await client.post(URL, json={"series": "a", "value": 1.0, "timestamp": 100})
        before = await state_of(client)
        batch = [
            {"series": "a", "value": 2.0, "timestamp": 50},
            {"series": "b", "value": 1.0},
            {"series": "c", "value": 1.0},  # the first series past the cap
            {"series": "d", "value": 1.0},  # past it too
            {"series": "a", "value": 2.0, "timestamp": 60},
            {"series": "d", "value": 2.0},  # (the same series again: refused with its first element)
        ]
        response = await client.post(URL, json={"observations": batch})
        assert response.status_code == 409
        cap = (
            "observation 2: series 'c' would be new, but the model already holds 1 series; TBPTT_MAX_SERIES_PER_MODEL=2"
        )
        cap_d, cap_d2 = (cap.replace("observation 2: series 'c'", f"observation {i}: series 'd'") for i in (3, 5))
        assert response.json() == {
            "detail": "observation 0: timestamp 50.0 of series 'a' is older than its last timestamp 100.0",
            "index": 0,
            "errors": [
                _older(0, "a", 50.0, 100.0),
                {"loc": ["body", "observations", "2", "series"], "msg": cap, "type": "series_limit"},
                {"loc": ["body", "observations", "3", "series"], "msg": cap_d, "type": "series_limit"},
                _older(4, "a", 60.0, 100.0),
                {"loc": ["body", "observations", "5", "series"], "msg": cap_d2, "type": "series_limit"},
            ],
            "error_count": 5,
            "refused": [0, 2, 3, 4, 5],
        }
        assert await state_of(client) == before
        kept = [obs for i, obs in enumerate(batch) if i not in response.json()["refused"]]
        assert (await client.post(URL, json={"observations": kept})).status_code == 200  # one round trip


BAD_BODIES = [
    ('{"series": "a", "value": NaN}', "malformed JSON", None),
    ('{"series": "a", "value": Infinity}', "malformed JSON", None),
    ('{"observations": [{"series": "a", "value": 1}, {"series": "a", "value": -Infinity}]}', "malformed JSON", None),
    ('{"series": "a", "value": 1e400}', "malformed JSON", None),
    ('{"series": "a", "value": 1' + "0" * 400 + "}", "malformed JSON", None),
    ('{"series": "a", "value": ', "malformed JSON", None),
    ('{"series": "a", "value": "1.5"}', 'value: "1.5" is not a number', 0),
    ('{"series": "a", "value": true}', "value: true is not a number", 0),
    ('{"observations": [{"series": "a", "value": 1}, {"series": "a", "value": [1, "x"]}]}', "observations[1].value", 1),
    ('{"observations": [{"series": "a", "value": 1}, {"series": "b"}]}', "observations[1].value: Field required", 1),
    ('{"observations": [{"series": "a", "value": 1}, {"series": "", "value": 1}]}', "observations[1].series", 1),
    ('{"observations": [{"series": "a", "value": 1, "colour": "red"}]}', "observations[0].colour", 0),
    ('{"observations": [{"series": "a", "value": 1, "timestamp": "soon"}]}', 'timestamp "soon" is invalid', 0),
    # past the years 1 to 9999 (a hostile test: 1e308, or milliseconds sent as seconds, held the series for
    # good: every later timestamp was "older than its last")
    ('{"series": "a", "value": 1, "timestamp": 1e308}', "must lie in the years 1 to 9999", 0),
    ('{"observations": [{"series": "a", "value": 1, "timestamp": 1700000000000}]}', "milliseconds? divide by 1000", 0),
    ('{"series": "a", "value": 1, "timestamp": -62135596801}', "must lie in the years 1 to 9999", 0),
    # a new user's: microseconds were told "milliseconds? divide by 1000" (still out of range), a number in a
    # string "must be unix seconds or an ISO-8601 date-time", and the range's end was printed 253402300800
    (
        '{"series": "a", "value": 1, "timestamp": 1700000000000000}',
        "(-62135596800 to 253402300799.999); microseconds? divide by 1e6",
        0,
    ),
    ('{"series": "a", "value": 1, "timestamp": 1.7e18}', "nanoseconds? divide by 1e9", 0),
    ('{"series": "a", "value": 1, "timestamp": "1709510400"}', "unix seconds must be a JSON number, not a string", 0),
    ('{"observations": []}', "observations: List should have at least 1 item", None),
    ("[1, 2]", "Input should be a valid dictionary", 0),
    ("", "body: Field required", None),
]


@pytest.mark.parametrize(("body", "fragment", "index"), BAD_BODIES)
async def test_bad_bodies_are_422_naming_the_problem_and_change_nothing(client_for, body, fragment, index) -> None:
    async with client_for() as client:
        await client.post(URL, json={"observations": [{"series": "a", "value": 1.0}, {"series": "b", "value": 2.0}]})
        before = await state_of(client)
        response = await client.post(URL, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422
        assert fragment in response.json()["detail"]
        assert response.json().get("index") == index
        assert await state_of(client) == before


NOT_JSON = "is not JSON (JSON has no NaN or infinities): an observation's missing value is null"


def _malformed(position: int, reason: str) -> dict[str, Any]:
    message = f"malformed JSON body at character {position}: {reason}"
    return {
        "detail": message,
        "errors": [{"loc": ["body", str(position)], "msg": message, "type": "json_invalid"}],
        "error_count": 1,
    }


@pytest.mark.parametrize(
    ("body", "position", "reason"),
    [
        ('{"series": "d1", "value": NaN, "timestamp": 1767226500}', 26, f"NaN {NOT_JSON}"),
        ('{"series": "a", "value": Infinity}', 25, f"Infinity {NOT_JSON}"),
        (  # (orjson names the character after the sign: the answer names the token's first)
            '{"observations": [{"series": "a", "value": 1}, {"series": "a", "value": -Infinity}]}',
            72,
            f"-Infinity {NOT_JSON}",
        ),
        ('{"series": "a", "value": [1.5, NaN]}', 31, f"NaN {NOT_JSON}"),
        # another token there keeps the parser's reason
        ('{"series": "a", "value": nan}', 25, "invalid literal, expected 'null'"),
        ('{"series": "a", "value": NaNa}', 25, "unexpected character, expected a JSON value"),
        ('{"series": "a", "value": -Inf}', 26, "no digit after sign"),
    ],
)
async def test_a_raw_nan_or_infinity_is_told_to_be_sent_as_null(client_for, body, position, reason) -> None:
    # a new user's (session 56): Python's json.dumps writes NaN, and the 422 said only "unexpected character,
    # expected a JSON value"
    async with client_for() as client:
        response = await client.post(URL, content=body, headers={"content-type": "application/json"})
        assert (response.status_code, response.json()) == (422, _malformed(position, reason))
        assert (await client.get("/v1/models/default")).json()["observations"] == 0


async def test_wrong_dimension_fails_the_whole_batch_naming_its_index(client_for) -> None:
    async with client_for() as client:
        await client.post(URL, json={"series": "a", "value": 1.0})
        before = await state_of(client)
        body = {
            "observations": [
                {"series": "a", "value": 2.0},
                {"series": "new", "value": 3.0},
                {"series": "a", "value": [1, 2]},
            ]
        }
        response = await client.post(URL, json=body)
        assert response.status_code == 422
        message = "observation 2: value has 2 feature(s), expected n_features=1"
        assert response.json() == {
            "detail": message,
            "index": 2,
            "errors": [{"loc": ["body", "observations", "2", "value"], "msg": message, "type": "value_error"}],
            "error_count": 1,
        }
        assert await state_of(client) == before


async def test_a_value_of_no_features_is_refused_like_every_bad_element(client_for) -> None:
    # a hostile test, session 60: "value": [] answered detail and index alone, without errors / error_count
    async with client_for() as client:
        response = await client.post(URL, json={"series": "a", "value": []})
        message = "observation 0: value has 0 feature(s), expected n_features=1"
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {"loc": ["body", "observations", "0", "value"], "msg": message, "type": "value_error"}
        ]
        assert response.json()["error_count"] == 1 and response.json()["index"] == 0


async def test_more_observations_than_max_batch_observations_is_422(client_for) -> None:
    async with client_for(max_batch_observations=3) as client:
        body = {"observations": [{"series": "a", "value": float(i)} for i in range(4)]}
        response = await client.post(URL, json=body)
        assert response.status_code == 422
        assert response.json()["detail"] == "observations has 4 elements; TBPTT_MAX_BATCH_OBSERVATIONS=3"
        assert (await client.get("/v1/models/default")).json()["observations"] == 0


async def test_more_series_than_the_cap_is_409_and_changes_nothing(client_for) -> None:
    async with client_for(max_series_per_model=3) as client:
        await client.post(URL, json={"observations": [{"series": "a", "value": 1.0}, {"series": "b", "value": 1.0}]})
        before = await state_of(client)
        body = {
            "observations": [
                {"series": "a", "value": 2.0},
                {"series": "c", "value": 1.0},
                {"series": "d", "value": 1.0},
            ]
        }
        response = await client.post(URL, json=body)
        assert response.status_code == 409
        assert response.json()["index"] == 2
        assert "TBPTT_MAX_SERIES_PER_MODEL=3" in response.json()["detail"]
        assert await state_of(client) == before
        # Within the cap, and for known series, the model keeps accepting.
        assert (await client.post(URL, json={"series": "c", "value": 1.0})).status_code == 200
        assert (await client.post(URL, json={"series": "a", "value": 2.0})).status_code == 200
        assert (await client.post(URL, json={"series": "d", "value": 1.0})).status_code == 409


async def test_unknown_model_is_404(client_for) -> None:
    async with client_for() as client:
        response = await client.post("/v1/models/nope/observations", json={"series": "a", "value": 1.0})
    assert response.status_code == 404
    assert response.json() == {"detail": "model 'nope' is unknown"}


class FillingJournal:
    """Records batches until ``full``, then refuses them as a full disk would."""

    def __init__(self) -> None:
        self.full = False

    def append(self, model: str, observations: Any) -> None:
        if self.full:
            raise StorageFullError("No space left on device")


async def test_a_full_journal_answers_507_applies_nothing_and_forecasts_go_on(make_settings, serve) -> None:
    journal = FillingJournal()
    async with serve(create_app(make_settings(), journal=journal)) as client:
        await client.post(URL, json={"series": "a", "value": 1.0})
        before = await state_of(client)
        journal.full = True
        response = await client.post(
            URL, json={"observations": [{"series": "a", "value": 2.0}, {"series": "b", "value": 1.0}]}
        )
        assert response.status_code == 507
        assert response.json() == {
            "detail": "the journal cannot record this batch (No space left on device); nothing was applied"
        }
        assert await state_of(client) == before  # forecasts and statistics are still served, unchanged


async def test_a_bare_list_of_observations_is_told_to_go_in_an_object(client_for) -> None:
    async with client_for() as client:  # a new user's report: "Input should be a valid dictionary ..." alone
        response = await client.post(URL, json=[{"series": "a", "value": 1.0}])
        listed = (await client.get("/v1/models/default/series")).json()["series"]
    assert response.status_code == 422
    assert response.json()["detail"].endswith(' (a list of observations goes in an object: {"observations": [...]})')
    assert listed == []


async def test_a_wide_models_batch_is_answered_from_a_worker_thread(client_for, monkeypatch) -> None:
    # a hostile test (session 48): a 3.9 MB batch to a model of 1,024 features got a 203 MB answer, built and
    # encoded on the event loop (/healthz waited 2.84 s); a batch of OFF_LOOP_NUMBERS numbers or more is now
    # answered from a worker thread, a small one still on the loop
    import threading

    from tbptt_service.api.json_answers import OFF_LOOP_NUMBERS
    from tbptt_service.api.routes import observations as route

    built_on: list[str] = []
    results_out = route.results_out

    def recorded(outcome, observations):
        built_on.append(threading.current_thread().name)
        return results_out(outcome, observations)

    monkeypatch.setattr(route, "results_out", recorded)
    wide = 64
    rows = 320  # 20,480 numbers: past OFF_LOOP_NUMBERS (checked last)
    async with client_for() as client:
        created = await client.post("/v1/models", json={"name": "wide", "config": {**SMALL_MODEL, "n_features": wide}})
        assert created.status_code == 201
        body = {"observations": [{"series": f"s{i % 7}", "value": [float(i)] * wide} for i in range(rows)]}
        big = await client.post("/v1/models/wide/observations", json=body)
        small = await client.post("/v1/models/wide/observations", json={"series": "s0", "value": [1.0] * wide})
    loop_thread = threading.current_thread().name  # the in-process app's event loop runs here
    assert big.status_code == small.status_code == 200
    assert len(big.json()["results"]) == rows and len(big.json()["results"][0]["forecast_next"]["mean"]) == wide
    assert built_on[0] != loop_thread and built_on[1] == loop_thread, built_on
    assert rows * wide >= OFF_LOOP_NUMBERS > wide


async def test_a_duplicate_timestamp_within_one_request_names_the_element_it_differs_from(client_for) -> None:
    # a new user (session 50): a file's duplicate row was refused saying the series "already has value 20.0",
    # a value of the same refused request that the model never held
    body = {
        "observations": [{"series": "a", "value": v, "timestamp": t} for v, t in [(1.0, 10), (20.0, 11), (99.0, 11)]]
    }
    async with client_for() as client:
        response = await client.post(URL, json=body)
        held = await client.get("/v1/models/default/series/a")
    assert response.status_code == 409 and response.json()["index"] == 2
    assert response.json()["detail"] == (
        "observation 2: observation 1 of this request gives series 'a' value 20.0 at timestamp 11.0; 99.0 differs "
        "(a repeat must carry the same value)"
    )
    assert held.status_code == 404  # nothing of it applied
