"""Issue 13 (behind the cluster's fronts every request carries a key) and issue 11 defect 8: a long
request with an ``Idempotency-Key`` is applied a chunk at a time like any other, its key journaled
in the batch's ``observe_chunked`` record and remembered once its last chunk is durable. A repeat
that comes while the batch is being applied waits for it and gets its first answer; a keyed single
POST of another series goes between two chunks; a crash between two chunks recovers the batch, and
the repeat after it is answered with the first answer bit for bit, applied once. (Before, a keyed
request was applied whole, so behind the fronts a long batch held every single POST of its shard.)"""

from __future__ import annotations

import asyncio

import pytest

from tbptt_service.api.app import create_app
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.journal import OBSERVE, OBSERVE_CHUNK, OBSERVE_CHUNKED

from ..state_probe import assert_same_state, crash_copy, model_state
from .test_chunked_batches import queued
from .test_chunked_recovery import LONG, T0, URL, gated_app, hold_long_batch, records_of
from .test_idempotency_keys import count

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
KEY = {"Idempotency-Key": "long-1"}


async def test_a_keyed_long_request_is_chunked_and_a_repeat_during_it_gets_its_first_answer(
    make_settings, serve, tmp_path
) -> None:
    settings, gate, app = gated_app(make_settings)
    async with serve(app) as client:
        long = await hold_long_batch(client, app, gate, 2, checkpoint=False, headers=KEY)  # its 2nd chunk held
        worker: ModelWorker = app.state.registry.get("default")
        repeat = asyncio.ensure_future(client.post(URL, json={"observations": LONG}, headers=KEY))
        await queued(worker, 1)
        single = {"series": "a", "value": 4.5, "timestamp": T0 + 2}
        short = asyncio.ensure_future(client.post(URL, json=single, headers={"Idempotency-Key": "single-1"}))
        await queued(worker, 2)
        gate.release()
        assert (await short).status_code == 200  # keyed, of another series: between two chunks
        await gate.entered()  # the 4th chunk
        assert not long.done() and not repeat.done()  # the repeat waits for the batch under its key
        gate.release()
        first, again = await long, await repeat
        assert first.status_code == again.status_code == 200 and again.content == first.content
        for series in ("x0", "x1", "x2"):
            assert await count(client, series) == 6  # applied once
        records = [r for r in records_of(app) if r.model == "default"]
        expected = await model_state(client)
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
    batch = next(r for r in records if r.kind == OBSERVE_CHUNKED)
    assert [k[0] for k in batch.payload["keys"]] == ["long-1"]  # the key, journaled with the batch
    tail = [(r.kind, r.payload.get("keys", [[None]])[0][0]) for r in records if r.seq > batch.seq]
    assert tail == [(OBSERVE_CHUNK, None)] * 2 + [(OBSERVE, "single-1")] + [(OBSERVE_CHUNK, None)] * 4

    recovered = create_app(settings.model_copy(update={"state_dir": crashed}))
    async with serve(recovered) as client:
        assert_same_state(await model_state(client), expected)
        after = await client.post(URL, json={"observations": LONG}, headers=KEY)
        assert after.status_code == 200 and after.content == first.content  # the key, rebuilt from the log
        assert await count(client, "x0") == 6


async def test_a_crash_between_two_chunks_of_a_keyed_batch_answers_its_repeat_bit_for_bit(
    make_settings, serve, tmp_path
) -> None:
    settings, gate, app = gated_app(make_settings)
    async with serve(app) as client:
        long = await hold_long_batch(client, app, gate, 2, checkpoint=False, headers=KEY)
        gate.release()
        await gate.entered()  # the 4th chunk: its record is written, the kill comes now
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
        gate.release()
        first = await long
        assert first.status_code == 200

    recovered = create_app(settings.model_copy(update={"state_dir": crashed}))  # finishes the batch itself
    async with serve(recovered) as client:
        again = await client.post(URL, json={"observations": LONG}, headers=KEY)
        assert again.status_code == 200 and again.content == first.content  # the first answer, bit for bit
        for series in ("x0", "x1", "x2"):
            assert await count(client, series) == 6  # applied once
        other = await client.post(URL, json={"series": "x0", "value": 1.0}, headers=KEY)
        assert other.status_code == 422  # the key belongs to the long request
