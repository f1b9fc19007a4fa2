"""The hot routes' fast paths answer plain requests themselves, exactly as FastAPI's full path does,
and pass everything else on to it (tbptt_service.api.fast_route)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tbptt_service.api.app import create_app
from tbptt_service.api.routes.forecasts import get_plain_forecast, plain_query
from tbptt_service.api.routes.observations import declares_json, post_plain_observations
from tbptt_service.api.strict_json import StrictJSONRequest

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"
FULL_PATH_JSON = "application/json; charset=utf-8"  # FastAPI reads it as JSON; the fast path passes it on


def request_to(app: Any, path: str, path_params: dict, *, body: bytes = b"", headers=(), query: bytes = b"") -> Any:
    """A request as the route handler gets it (what a real server's scope holds for these routes)."""
    scope = {
        "type": "http",
        "method": "POST" if body else "GET",
        "path": path,
        "headers": list(headers),
        "query_string": query,
        "app": app,
        "path_params": path_params,
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    return StrictJSONRequest(scope, receive)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", (1, None)),
        (b"horizon=12", (12, None)),
        (b"level=0.8&horizon=3", (3, 0.8)),
        (b"horizon=012", None),  # FastAPI reads these: the full path answers
        (b"horizon=0", None),
        (b"horizon=1e2", None),
        (b"horizon=2&horizon=3", None),
        (b"horizon=2&extra=1", None),
        (b"level=1.0", None),
        (b"level=.5", None),
        (b"level=0%2E5", None),
        (b"horizon", None),
    ],
)
def test_plain_query_reads_only_plain_digits_of_horizon_and_level(query: bytes, expected: Any) -> None:
    assert plain_query(query) == expected


def test_only_plain_application_json_takes_the_fast_path() -> None:
    assert declares_json([(b"host", b"x"), (b"content-type", b"application/json")])
    assert declares_json([(b"content-type", b"text/plain"), (b"content-type", b"Application/JSON")])  # the last
    assert not declares_json([(b"content-type", FULL_PATH_JSON.encode())])
    assert not declares_json([(b"content-type", b"application/vnd.api+json")])
    assert not declares_json([])


async def test_the_fast_handlers_answer_plain_requests_and_pass_others_on(make_settings, serve) -> None:
    app = create_app(make_settings())
    json_header = [(b"content-type", b"application/json")]
    async with serve(app) as client:
        plain = request_to(app, URL, {"model": "default"}, body=b'{"series": "a", "value": 1.5}', headers=json_header)
        answered = await post_plain_observations(plain)
        assert answered is not None and answered.status_code == 200
        assert orjson.loads(answered.body)["results"][0]["step"] == 1
        iso = b'{"series": "a", "value": 1.5, "timestamp": "2024-01-01T00:00:00Z"}'
        for body, headers in ((iso, json_header), (b"[1", json_header), (b'{"series": "a", "value": 2}', [])):
            assert (
                await post_plain_observations(request_to(app, URL, {"model": "default"}, body=body, headers=headers))
                is None
            )
        forecast_path = "/v1/models/default/series/a/forecast"
        params = {"model": "default", "series": "a"}
        fast = await get_plain_forecast(request_to(app, forecast_path, params, query=b"horizon=2"))
        assert fast is not None and orjson.loads(fast.body) == (await client.get(f"{forecast_path}?horizon=2")).json()
        assert await get_plain_forecast(request_to(app, forecast_path, params, query=b"horizon=02")) is None
        assert app.state.registry.get("default").snapshot.observations == 1  # only the plain body was applied


async def test_fast_and_full_paths_give_the_same_answers(make_settings, serve, tmp_path) -> None:
    """Two identical services fed the same requests: one through the fast paths, one through FastAPI's."""
    fast_app = create_app(make_settings(state_dir=tmp_path / "fast"))
    full_app = create_app(make_settings(state_dir=tmp_path / "full"))
    bodies = [
        {"series": "a", "value": 1.0, "timestamp": 10},
        {"observations": [{"series": "a", "value": 2.0, "timestamp": 11}, {"series": "b", "value": None}]},
        {"series": "a", "value": 2.0, "timestamp": 11},  # an idempotent repeat
        {"series": "a", "value": 9.0, "timestamp": 11},  # 409
        {"series": "b", "value": [1.0, 2.0]},  # 422: wrong dimension, found by the worker
        {"series": "", "value": 1.0},  # 422: found by the schema (both take the full path)
        {"observations": [{"series": f"s{i % 3}", "value": float(i)} for i in range(12)]},
    ]
    queries = ["horizon=3", "horizon=2&level=0.5", "", "horizon=0", "horizon=7000"]
    answers: dict[str, list] = {"fast": [], "full": []}
    async with serve(fast_app) as fast, serve(full_app) as full:
        for body in bodies:
            data = orjson.dumps(body)
            for name, client, content_type in (("fast", fast, "application/json"), ("full", full, FULL_PATH_JSON)):
                response = await client.post(URL, content=data, headers={"content-type": content_type})
                answers[name].append((response.status_code, response.json()))
        for series in ("a", "s1", "ghost"):
            for query in queries:
                path = f"/v1/models/default/series/{series}/forecast?{query}"
                # the full path: the same horizon with a leading zero, which the fast path's plain query refuses
                # (an unknown parameter did this until they became 422)
                full_query = query.replace("horizon=", "horizon=0") if "horizon=" in query else f"horizon=01&{query}"
                for name, client, sent in (("fast", fast, path), ("full", full, path.replace(query, "") + full_query)):
                    response = await client.get(sent)
                    answers[name].append((response.status_code, response.json()))
        for name, client, content_type in (("fast", fast, "application/json"), ("full", full, FULL_PATH_JSON)):
            missing = await client.post(
                "/v1/models/nope/observations",
                content=b'{"series": "a", "value": 1}',
                headers={"content-type": content_type},
            )
            answers[name].append((missing.status_code, missing.json()))
    assert answers["fast"] == answers["full"]
    statuses = [status for status, _ in answers["fast"]]
    assert {200, 404, 409, 422} <= set(statuses)
