"""Hostile test 53, F2: a call queued while a long batch is applied a chunk at a time (a checkpoint's
capture, an export, a learning-rate reset, the DELETE of another series) waits for the batch, but
the single POSTs that arrive after it still go between two chunks. Before, any call closed the gaps:
every later single POST of the model waited for the whole batch (5 to 20 s, with the default timed
checkpoint alone). A forget still holds back later values of its own series, and an import every
later request; the log's order is the order applied, so a crash recovers the same state bit for bit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tbptt_service.api.app import create_app
from tbptt_service.host.model_worker import ModelWorker
from tbptt_service.storage.journal import FORGET_SERIES, IMPORT_CHECKPOINT, OBSERVE, OBSERVE_CHUNK, RESET_LEARNING_RATE

from ..state_probe import assert_same_state, crash_copy, model_state
from .test_chunked_batches import GatedForecaster, queued
from .test_chunked_recovery import LONG, T0, URL, feed, gated_app, records_of

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]
MODEL = "/v1/models/default"
ANSWERED_WITHIN_S = 20  # generous: the single POST needs one short batch; before the fix it never came

# Each call, as a client (or the checkpoint timer) makes it, and the record it journals (None: none).
CALLS: dict[str, tuple[Callable[[Any, httpx.AsyncClient], Awaitable[Any]], str | None]] = {
    "checkpoint": (lambda app, client: app.state.durability.checkpoint(app.state.registry), None),
    "export": (lambda app, client: client.get(f"{MODEL}/checkpoint"), None),
    "reset": (lambda app, client: client.post(f"{MODEL}/reset-learning-rate"), RESET_LEARNING_RATE),
    "forget": (lambda app, client: client.delete(f"{MODEL}/series/a"), FORGET_SERIES),
}


def open_gate(forecaster: GatedForecaster | None) -> None:
    """Hold no more calls and let the one held go (a failed test must not leave the worker held: the app's
    shutdown would wait for it for good)."""
    if forecaster is not None:
        forecaster.holds = ()
        forecaster.release.set()


@pytest.mark.parametrize("call", list(CALLS))
async def test_a_single_post_after_a_queued_call_goes_between_two_chunks_and_recovers_exactly(
    call: str, make_settings, serve, tmp_path
) -> None:
    make_call, kind = CALLS[call]
    settings, gate, app = gated_app(make_settings)  # the long batch's 2nd and 4th chunks held
    async with serve(app) as client:
        await feed(client, 0, 2)  # series a, b, c
        worker: ModelWorker = app.state.registry.get("default")
        try:
            long = asyncio.ensure_future(client.post(URL, json={"observations": LONG}))
            await gate.entered()  # its 2nd chunk is being applied
            queued_call = asyncio.ensure_future(make_call(app, client))
            await queued(worker, 1)
            single = asyncio.ensure_future(client.post(URL, json={"series": "b", "value": 4.5, "timestamp": T0 + 2}))
            await queued(worker, 2)
            after_forget = asyncio.ensure_future(
                client.post(URL, json={"series": "a", "value": 1.5, "timestamp": T0 + 3})
            )
            await queued(worker, 3)
            gate.release()
            assert (await asyncio.wait_for(single, ANSWERED_WITHIN_S)).status_code == 200  # between two chunks
            await gate.entered()  # the 4th chunk: the long batch is not done
            assert not long.done() and not queued_call.done()  # the call still waits for the batch, whole
            assert not after_forget.done() or call != "forget"  # a's later value waits behind the forget of a
            gate.release()
        except BaseException:
            open_gate(gate.forecaster)
            raise
        assert (await long).status_code == 200
        outcome = await queued_call
        assert getattr(outcome, "status_code", 200) < 300
        assert (await after_forget).status_code == 200
        a = (await client.get(f"{MODEL}/series/a")).json()
        assert a["count"] == (1 if call == "forget" else 3)  # forgotten, then a anew: after the forget
        records = records_of(app)
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
        expected = await model_state(client)

    # The log: the single POST between two of the batch's chunks, the call's record after its last one.
    chunks = [r.seq for r in records if r.kind == OBSERVE_CHUNK]
    b_single = next(r.seq for r in records if r.kind == OBSERVE and ["b", 4.5, T0 + 2] in r.payload["items"])
    assert b_single < chunks[-1]  # (it came after the batch began; a checkpoint pruned the first chunks' records)
    if kind is not None:
        assert next(r.seq for r in records if r.kind == kind) > chunks[-1]
    if call == "checkpoint":
        assert outcome is not None and outcome < chunks[-1]  # cut before; the capture holds the batch whole

    recovered = create_app(settings.model_copy(update={"state_dir": crashed}))
    async with serve(recovered) as client:
        assert_same_state(await model_state(client), expected)


async def test_a_queued_import_still_holds_back_every_later_request(make_settings, serve) -> None:
    _, gate, app = gated_app(make_settings)
    async with serve(app) as client:
        await feed(client, 0, 2)
        exported = (await client.get(f"{MODEL}/checkpoint")).content  # a, b, c at two values each
        worker: ModelWorker = app.state.registry.get("default")
        long = asyncio.ensure_future(client.post(URL, json={"observations": LONG}))
        await gate.entered()
        gated = gate.forecaster  # (the import reads its checkpoint into a new one, through the gate's factory)
        assert gated is not None
        imported = asyncio.ensure_future(client.post(f"{MODEL}/checkpoint", content=exported))
        await queued(worker, 1)
        single = asyncio.ensure_future(client.post(URL, json={"series": "b", "value": 4.5, "timestamp": T0 + 2}))
        await queued(worker, 2)
        try:
            gated.release.set()
            await gated.held()  # the 4th chunk: the single POST did not go between two chunks
            assert not single.done()
            gated.release.set()
        except BaseException:
            open_gate(gated)
            raise
        assert (await long).status_code == 200
        assert (await imported).status_code == 200
        assert (await single).status_code == 200
        records = records_of(app)
        b = (await client.get(f"{MODEL}/series/b")).json()
    assert b["count"] == 3  # applied to the imported model: its two values, then this one
    kinds = [r.kind for r in records if r.kind in (OBSERVE_CHUNK, IMPORT_CHECKPOINT, OBSERVE)][-8:]
    assert kinds[-3:] == [OBSERVE_CHUNK, IMPORT_CHECKPOINT, OBSERVE]
