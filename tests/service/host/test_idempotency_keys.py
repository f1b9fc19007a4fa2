"""Idempotency keys: a request repeated with its ``Idempotency-Key`` is answered with its first answer and
applied once, timestamped or not, also after a crash: the key is journaled with its batch (SQLite and
PostgreSQL logs alike) and kept in checkpoints, and recovery rebuilds its answer bit for bit. A shard's
call retried after its process was lost (a second incarnation recovering from the same PostgreSQL
stream) is answered, not applied twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tbptt_service.api.app import create_app
from tbptt_service.host.shard import ForwardedRequest, ShardHost
from tbptt_service.host.shard_pairs import role_of
from tbptt_service.settings import Settings

from ..conftest import SMALL_MODEL
from ..state_probe import crash_copy
from .test_durability_recovery import NO_TIMER, T0

pytestmark = pytest.mark.anyio
URL = "/v1/models/default/observations"
BATCH = {"observations": [{"series": "a", "value": 1.0}, {"series": "b", "value": 2.0}, {"series": "a", "value": 3.0}]}


async def count(client: httpx.AsyncClient, series: str) -> int:
    return (await client.get(f"/v1/models/default/series/{series}")).json()["count"]


async def test_a_request_repeated_with_its_key_is_answered_and_applied_once(client_for) -> None:
    async with client_for(**NO_TIMER) as client:
        first = await client.post(URL, json=BATCH, headers={"Idempotency-Key": "k1"})
        again = await client.post(URL, json=BATCH, headers={"Idempotency-Key": "k1"})
        assert first.status_code == 200 and again.status_code == 200 and again.content == first.content
        assert (await count(client, "a"), await count(client, "b")) == (2, 1)  # once, not twice
        other = await client.post(URL, json={"series": "a", "value": 9.0}, headers={"Idempotency-Key": "k1"})
        assert other.status_code == 422 and other.json() == {
            "detail": "Idempotency-Key 'k1' was used for another request"
        }
        empty = await client.post(URL, json=BATCH, headers={"Idempotency-Key": ""})
        assert empty.status_code == 422 and "Idempotency-Key is invalid" in empty.json()["detail"]
        blank = await client.post(URL, json=BATCH, headers={"Idempotency-Key": "   "})  # (was taken as a key)
        assert blank.status_code == 422 and blank.json()["detail"].endswith("characters, got 0")
        spaced = await client.post(URL, json=BATCH, headers={"Idempotency-Key": " k1 "})  # k1, whitespace aside
        assert spaced.status_code == 200 and spaced.content == first.content
        assert (await client.post(URL, json=BATCH)).status_code == 200  # no key: a new request
        assert (await count(client, "a"), await count(client, "b")) == (4, 2)


@pytest.mark.parametrize("body", [BATCH, {"series": "a", "value": 1.0}], ids=["batch", "single"])
async def test_a_request_with_two_keys_is_refused_and_applied_under_neither(client_for, body) -> None:
    """Two Idempotency-Key fields were read as the last one; a proxy joining them sends 'k1, k2', another
    key, so one request retried through it was applied twice. Now 422, nothing applied, no key taken."""
    async with client_for(**NO_TIMER) as client:
        json_type = ("content-type", "application/json")
        two = [json_type, ("Idempotency-Key", "k1"), ("Idempotency-Key", "k2")]
        refused = await client.post(URL, content=orjson.dumps(body), headers=two)
        assert refused.status_code == 422
        assert refused.json() == {"detail": "Idempotency-Key was sent 2 times: send one key per request"}
        assert (await client.get("/v1/models/default/series/a")).status_code == 404  # nothing applied
        for key in ("k1", "k2"):  # neither key was taken: each now applies the request as new
            answer = await client.post(URL, content=orjson.dumps(body), headers=[json_type, ("Idempotency-Key", key)])
            assert answer.status_code == 200
        assert await count(client, "a") == 2 * sum(o["series"] == "a" for o in body.get("observations", [body]))


@pytest.fixture(params=["sqlite", "postgresql"])
def log_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"log_url": request.getfixturevalue("postgres_url")}


async def test_keys_survive_a_crash_from_a_checkpoint_and_from_the_log(
    tmp_path: Path, serve, log_settings: dict[str, Any]
) -> None:
    settings = Settings(state_dir=tmp_path / "state", default_model=SMALL_MODEL, **log_settings, **NO_TIMER)
    app = create_app(settings)
    async with serve(app) as client:
        assert (await client.post(URL, json={"series": "c", "value": 0.5, "timestamp": T0})).status_code == 200
        k1 = await client.post(URL, json=BATCH, headers={"Idempotency-Key": "k1"})
        await app.state.durability.checkpoint(app.state.registry)  # k1 in the checkpoint
        # k2 after it, in the log: an untimestamped value, and a repeat of an earlier batch's timestamp.
        body = {"observations": [{"series": "c", "value": 0.5, "timestamp": T0}, {"series": "a", "value": 5.0}]}
        k2 = await client.post(URL, json=body, headers={"Idempotency-Key": "k2"})
        assert k1.status_code == k2.status_code == 200
        counts = {s: await count(client, s) for s in "abc"}
        assert counts == {"a": 3, "b": 1, "c": 1}
        copy = crash_copy(settings.state_dir, tmp_path / "crashed")  # as a kill -9 leaves it
        # The second incarnation recovers while the first still runs (a PostgreSQL stream: it fences it).
        async with serve(create_app(settings.model_copy(update={"state_dir": copy}))) as recovered:
            assert (await recovered.post(URL, json=BATCH, headers={"Idempotency-Key": "k1"})).content == k1.content
            assert (await recovered.post(URL, json=body, headers={"Idempotency-Key": "k2"})).content == k2.content
            assert {s: await count(recovered, s) for s in "abc"} == counts  # nothing applied twice
            other = await recovered.post(URL, json=body, headers={"Idempotency-Key": "k1"})
            assert other.status_code == 422
            assert (await recovered.post(URL, json=BATCH, headers={"Idempotency-Key": "k3"})).status_code == 200
            assert await count(recovered, "a") == 5


def test_a_shard_call_retried_after_its_process_was_lost_is_answered_not_applied(
    tmp_path: Path, postgres_url: str
) -> None:
    base = Settings(state_dir=tmp_path / "one", default_model=SMALL_MODEL, log_url=postgres_url, **NO_TIMER)
    post = ForwardedRequest("POST", URL, [("content-type", "application/json")], orjson.dumps(BATCH))
    stats = ForwardedRequest("GET", "/v1/models/default/series/a", [], b"")
    lost = ShardHost(0, 1, base.model_dump())  # acknowledges the call, then "dies" (its reply never arrives)
    try:
        first = lost.handle("call-1", [post])[0]
        assert first.status == 200
        # Ray restarts the shard (a new process: none of the old one's memory) and re-sends the call.
        restarted = ShardHost(0, 1, base.model_copy(update={"state_dir": tmp_path / "two"}).model_dump())
        try:
            again = restarted.handle("call-1", [post])[0]
            assert again.status == 200 and again.body == first.body  # the first answer, bit for bit
            assert orjson.loads(restarted.handle("stats", [stats])[0].body)["count"] == 2  # applied once
            fenced = lost.handle("call-2", [post])[0]  # the old incarnation can append nothing more:
            # it steps down to standby, and its 503 sends the front to the new owner (nothing applied)
            assert fenced.status == 503 and role_of([fenced]) == "standby"
            assert "superseded" in orjson.loads(fenced.body)["detail"]
            assert orjson.loads(restarted.handle("stats", [stats])[0].body)["count"] == 2
        finally:
            restarted.close()
    finally:
        lost.close()


async def test_a_keyed_request_that_only_repeats_values_is_journaled_and_answered_after_a_crash(
    tmp_path: Path, serve, log_settings: dict[str, Any]
) -> None:
    """A request whose every element repeats a timestamped value the model has applies nothing, but its
    key was remembered in memory alone: after a kill -9 its retry got 409 (the series had a later value),
    or, the series deleted since, was applied as new (a hostile test). Now its key is journaled too."""
    settings = Settings(state_dir=tmp_path / "state", default_model=SMALL_MODEL, **log_settings, **NO_TIMER)
    repeat = {"series": "t", "value": 3.0, "timestamp": T0}
    deleted = {"series": "u", "value": 4.0, "timestamp": T0}
    async with serve(create_app(settings)) as client:
        for body in (repeat, deleted):
            assert (await client.post(URL, json=body)).status_code == 200
        first = await client.post(URL, json=repeat, headers={"Idempotency-Key": "only-repeats"})
        gone = await client.post(URL, json=deleted, headers={"Idempotency-Key": "then-deleted"})
        assert first.status_code == gone.status_code == 200
        later = {"series": "t", "value": 5.0, "timestamp": T0 + 60}
        assert (await client.post(URL, json=later)).status_code == 200
        assert (await client.delete("/v1/models/default/series/u")).status_code == 204
        live = await client.post(URL, json=deleted, headers={"Idempotency-Key": "then-deleted"})
        assert live.status_code == 200 and live.content == gone.content  # answered, nothing applied
        copy = crash_copy(settings.state_dir, tmp_path / "crashed")  # as a kill -9 leaves it
        async with serve(create_app(settings.model_copy(update={"state_dir": copy}))) as recovered:
            again = await recovered.post(URL, json=repeat, headers={"Idempotency-Key": "only-repeats"})
            assert again.status_code == 200 and again.content == first.content  # was 409
            again = await recovered.post(URL, json=deleted, headers={"Idempotency-Key": "then-deleted"})
            assert again.status_code == 200 and again.content == gone.content
            assert (await recovered.get("/v1/models/default/series/u")).status_code == 404  # was applied as new
            assert await count(recovered, "t") == 2
