"""The OpenAPI's ``config`` of ``POST /v1/models`` says which fields there are (schemathesis found a
schema-valid request refused: the schema allowed any key, the service refuses unknown ones)."""

from __future__ import annotations

import dataclasses

import pytest

from tbptt_online import ForecasterConfig

pytestmark = pytest.mark.anyio


async def test_the_openapi_config_lists_forecaster_config_fields_and_no_others(client_for) -> None:
    async with client_for() as client:
        spec = (await client.get("/openapi.json")).json()
        refused = await client.post("/v1/models", json={"name": "m", "config": {"hidden_sise": 8}})
        created = await client.post("/v1/models", json={"name": "m", "config": {"cell": "lstm", "clip_norm": None}})
    body = spec["components"]["schemas"]["ModelCreate"]["properties"]["config"]
    assert body["type"] == "object" and body["additionalProperties"] is False
    fields = {f.name: f for f in dataclasses.fields(ForecasterConfig)}
    assert set(body["properties"]) == set(fields)
    assert body["properties"]["hidden_size"] == {"type": "integer", "minimum": 1, "maximum": 4096, "default": 32}
    assert body["properties"]["k2"]["anyOf"][1] == {"enum": ["adaptive"]}  # a new user found it typed as any string
    assert body["properties"]["optimizer"]["enum"] == ["sgd", "adam", "adamw"]
    assert body["properties"]["clip_norm"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert all(p.get("default") == fields[name].default for name, p in body["properties"].items())
    # what the schema refuses the service refuses, naming the field; what it allows is built
    assert refused.status_code == 422 and "hidden_sise" in refused.text
    assert created.status_code == 201, created.text


async def test_a_nan_in_a_config_is_told_json_has_none_not_to_send_null(client_for) -> None:
    """A config sent by Python's ``json.dumps`` with ``float("nan")``: the 422 says JSON has no NaN at the token,
    and that null is an observation's missing value (it said "send null for a missing value", no config's fix)."""
    body = '{"name": "m", "config": {"lr": NaN}}'
    async with client_for() as client:
        response = await client.post("/v1/models", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"] == (
        "malformed JSON body at character 31: NaN is not JSON (JSON has no NaN or infinities): an observation's "
        "missing value is null"
    )


@pytest.mark.parametrize(
    ("config", "detail"),
    [
        ({"season_length": "weekly"}, 'season_length="weekly" is invalid: must be "auto", null, an integer or a list'),
        ({"season_length": [24, "x"]}, 'season_length="x" is invalid: must be an integer'),
        ({"cell": "xyz"}, 'cell="xyz" is invalid: must be one of gru, lstm, rnn'),
        ({"k2": "auto"}, 'k2="auto" is invalid: must be an integer in [1, 100000] or "adaptive"'),
        ({"hidden_size": 0}, "hidden_size=0 is invalid: must be an integer in [1, 4096]"),
    ],
)
async def test_a_config_value_the_library_refuses_is_quoted_as_json(client_for, config, detail) -> None:
    # a hostile test (session 57): a value of the right JSON type refused by the library read as Python quotes it
    # ('weekly' beside "auto")
    async with client_for() as client:
        response = await client.post("/v1/models", json={"name": "m", "config": config})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith(f"config: {detail}"), body["detail"]
    # located as a value of the wrong JSON type is: the field refused (the library's ConfigValueError names it)
    field = next(iter(config))
    assert body["errors"] == [{"loc": ["body", "config", field], "msg": body["detail"], "type": "config_value"}]
    assert body["error_count"] == 1
