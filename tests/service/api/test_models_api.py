"""/v1/models: the default model, create / list / read / delete, and their refusals."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tbptt_online import ForecasterConfig
from tbptt_service.api.app import create_app

from ..conftest import SMALL_MODEL

pytestmark = pytest.mark.anyio


async def test_the_default_model_exists_at_start_with_the_settings_config(client_for) -> None:
    async with client_for() as client:
        response = await client.get("/v1/models/default")
    assert response.status_code == 200
    assert response.json() == {
        "name": "default",
        "config": ForecasterConfig.from_dict(SMALL_MODEL).to_dict(),
        "series_count": 0,
        "observations": 0,
        "updates": {
            "updates": 0, "skipped": 0, "last_loss": None, "last_grad_norm": None, "last_window": None,
            "lr": ForecasterConfig.from_dict(SMALL_MODEL).lr, "explosions": 0, "divergences": 0, "blowups": 0,
            "rollbacks": 0,
        },
    }  # fmt: skip


async def test_create_list_read_and_delete_a_model(client_for) -> None:
    async with client_for() as client:
        response = await client.post("/v1/models", json={"name": "lstm-2", "config": {"cell": "lstm", "n_features": 2}})
        assert response.status_code == 201
        assert response.headers["location"] == "/v1/models/lstm-2"
        expected_config = ForecasterConfig(cell="lstm", n_features=2).to_dict()  # the rest: library defaults
        assert response.json()["config"] == expected_config
        names = [m["name"] for m in (await client.get("/v1/models")).json()["models"]]
        assert names == ["default", "lstm-2"]
        observed = await client.post("/v1/models/lstm-2/observations", json={"series": "x", "value": [1.0, 2.0]})
        assert observed.status_code == 200
        info = (await client.get("/v1/models/lstm-2")).json()
        assert (info["series_count"], info["observations"], info["config"]) == (1, 1, expected_config)
        assert (await client.delete("/v1/models/lstm-2")).status_code == 204
        assert (await client.get("/v1/models/lstm-2")).status_code == 404
        gone = await client.post("/v1/models/lstm-2/observations", json={"series": "x", "value": [1.0, 2.0]})
        assert gone.status_code == 404
        assert gone.json() == {"detail": "model 'lstm-2' is unknown"}
        assert [m["name"] for m in (await client.get("/v1/models")).json()["models"]] == ["default"]


async def test_update_statistics_follow_the_updates(client_for) -> None:
    async with client_for() as client:
        body = {"observations": [{"series": "a", "value": float(i % 3)} for i in range(8)]}  # k1 = 4: two updates
        assert (await client.post("/v1/models/default/observations", json=body)).status_code == 200
        updates = (await client.get("/v1/models/default")).json()["updates"]
    assert updates["updates"] == 2 and updates["skipped"] == 0
    assert isinstance(updates["last_loss"], float) and updates["last_grad_norm"] > 0


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"name": "default"}, 409, "model 'default' already exists"),
        ({"name": "m", "config": {"k1": 0}}, 422, "config: k1=0 is invalid: must be an integer in [1, 100000]"),
        # (an integer past 64 bits arrives as a float: it was told "must be an integer", a hostile test)
        (
            {"name": "m", "config": {"seed": 2**64}},
            422,
            "seed=18446744073709551616 is invalid: must be an integer in [0, 9223372036854775807]",
        ),
        ({"name": "m", "config": {"hiden_size": 8}}, 422, "('hiden_size': did you mean 'hidden_size'?)"),
        (
            {"name": "m", "config": {"truncation_bias": 2}},
            422,
            "truncation_bias=2 is invalid: must be in (0.0, 1.0]",
        ),
        ({"name": "m", "config": {"truncation_bias": 0}}, 422, "truncation_bias=0 is invalid: must be in (0.0, 1.0]"),
        ({"name": "m", "config": {"cell": "transformer"}}, 422, 'cell="transformer" is invalid'),
        ({"name": "m", "config": {"hidden": 8}}, 422, "unknown config field(s) ['hidden']"),
        # (said as the pattern until session 48: "String should match pattern '^[A-Za-z0-9]...'", a new user's)
        (
            {"name": "bad name!"},
            422,
            "name: \"bad name!\" is invalid: 1 to 64 letters, digits, '_', '.' or '-', the first a letter or digit",
        ),
        ({"config": {}}, 422, "name: Field required"),
    ],
)
async def test_bad_model_creation_is_refused_and_changes_nothing(client_for, body, status, fragment) -> None:
    async with client_for() as client:
        response = await client.post("/v1/models", json=body)
        assert response.status_code == status
        assert fragment in response.json()["detail"]
        assert [m["name"] for m in (await client.get("/v1/models")).json()["models"]] == ["default"]


async def test_max_models_is_409(client_for) -> None:
    async with client_for(max_models=2) as client:
        assert (await client.post("/v1/models", json={"name": "second"})).status_code == 201
        response = await client.post("/v1/models", json={"name": "third"})
        assert response.status_code == 409
        assert response.json() == {"detail": "the service holds TBPTT_MAX_MODELS=2 models; delete one first"}
        assert (await client.delete("/v1/models/second")).status_code == 204
        assert (await client.post("/v1/models", json={"name": "third"})).status_code == 201


async def test_unknown_model_is_404_everywhere(client_for) -> None:
    async with client_for() as client:
        for method, path in [
            ("GET", "/v1/models/nope"),
            ("DELETE", "/v1/models/nope"),
            ("GET", "/v1/models/nope/series"),
            ("GET", "/v1/models/nope/series/a"),
            ("GET", "/v1/models/nope/series/a/forecast"),
            ("DELETE", "/v1/models/nope/series/a"),
        ]:
            response = await client.request(method, path)
            assert response.status_code == 404, path
            assert response.json() == {"detail": "model 'nope' is unknown"}


async def test_a_model_whose_delete_waits_says_it_is_being_deleted_to_every_request(make_settings, serve) -> None:
    # a hostile client (session 35): while a DELETE waited behind a long batch, an observation was told
    # the model was "unknown (it was deleted or the service is stopping)", a read of it answered 200 and a
    # create 409 "already exists"; now all of them say it is being deleted
    app = create_app(make_settings())
    async with serve(app) as client:
        assert (await client.post("/v1/models", json={"name": "m", "config": SMALL_MODEL})).status_code == 201
        worker = app.state.registry.get("m")
        started, gate = threading.Event(), threading.Event()
        held = worker.call(lambda: (started.set(), gate.wait()))  # the worker is busy: the DELETE queues
        await asyncio.to_thread(started.wait)
        deleting = asyncio.ensure_future(client.delete("/v1/models/m"))
        try:
            while worker.queued_jobs < 1:  # the DELETE's job waits behind the one held
                await asyncio.sleep(0.001)
            post = await client.post("/v1/models/m/observations", json={"series": "a", "value": 1.0})
            read = await client.get("/v1/models/m")
            create = await client.post("/v1/models", json={"name": "m", "config": SMALL_MODEL})
        finally:
            gate.set()
        await held
        assert (await deleting).status_code == 204
        again = await client.post("/v1/models", json={"name": "m", "config": SMALL_MODEL})
    message = "model 'm' is being deleted (its DELETE waits for the requests queued before it)"
    assert (post.status_code, post.json()["detail"]) == (404, message)
    assert (read.status_code, read.json()["detail"]) == (404, message)
    assert create.status_code == 409 and create.json()["detail"].startswith(message), create.text
    assert again.status_code == 201  # gone once the DELETE answered


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"interval_level": None}, "config.interval_level: null is not a number"),
        ({"interval_level": "0.9"}, 'config.interval_level: "0.9" is not a number'),
        ({"hidden_size": True}, "config.hidden_size: true is not a number"),
        ({"clip_norm": "1"}, 'config.clip_norm: "1" is not a number or null'),
    ],
)
async def test_a_config_value_of_the_wrong_json_type_is_quoted_as_json_writes_it(client_for, config, message) -> None:
    # a hostile test (session 57): 'interval_level=None', "'0.9'", 'True' (Python's quoting), and no errors list
    async with client_for() as client:
        answer = await client.post("/v1/models", json={"name": "typed", "config": config})
        listed = (await client.get("/v1/models")).json()["models"]
    assert answer.status_code == 422 and answer.json()["detail"] == message
    assert answer.json()["errors"] == [
        {"loc": ["body", "config", next(iter(config))], "msg": message, "type": "config_type"}
    ]
    assert answer.json()["error_count"] == 1 and "typed" not in [m["name"] for m in listed]
