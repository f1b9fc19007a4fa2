"""/healthz, /readyz (503 until the state is loaded), /metrics, the OpenAPI page."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

import tbptt_online
from tbptt_service.api.app import create_app, create_default_model
from tbptt_service.errors import LogUnavailable, StorageFullError
from tbptt_service.host.registry import ModelRegistry

pytestmark = pytest.mark.anyio
SEND_KEY = "send the API key (Authorization: Bearer <key>) for the reasons"


async def test_readyz_is_503_until_the_state_is_loaded(make_settings, serve) -> None:
    release = asyncio.Event()

    async def slow_restore(registry: ModelRegistry) -> None:
        await release.wait()
        await create_default_model(registry)

    app = create_app(make_settings(), restore=slow_restore)
    async with serve(app, wait_ready=False) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok", "version": tbptt_online.__version__}
        loading = await client.get("/readyz")
        assert loading.status_code == 503 and loading.json()["status"] == "loading"
        refused = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        assert refused.status_code == 503
        assert refused.json() == {"detail": "the service is still loading its state; retry shortly"}
        release.set()
        await app.state.loading
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        accepted = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        assert accepted.status_code == 200


async def test_a_failed_load_keeps_the_service_unready_and_says_why(make_settings, serve) -> None:
    async def broken_restore(registry: ModelRegistry) -> None:
        raise OSError("checkpoint unreadable")

    app = create_app(make_settings(), restore=broken_restore)
    async with serve(app) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "failed",
            "detail": "loading the state failed: OSError('checkpoint unreadable')",
        }
        assert (await client.get("/v1/models")).status_code == 503


async def test_readyz_says_when_the_log_refused_the_last_write_and_why_only_with_the_key(make_settings, serve) -> None:
    # An operator's test (session 58, F9): writes answered 5xx while /readyz said ready with nothing more
    app = create_app(make_settings(api_key="k" * 32))
    async with serve(app) as client:
        log = app.state.durability.log
        for failure, status in (
            (StorageFullError(errno.EDQUOT, "event log e is full: EDQUOT (Disk quota exceeded): ..."), 507),
            (LogUnavailable(errno.EIO, "event log e cannot be written: EIO (Input/output error): ..."), 503),
        ):
            log.write_failure = failure
            told = await client.get("/readyz", headers={"Authorization": "Bearer " + "k" * 32})
            assert told.status_code == 200
            assert told.json() == {"status": "ready", "log_write_failure": {"status": status, "detail": str(failure)}}
            untold = (await client.get("/readyz")).json()["log_write_failure"]
            assert untold == {"status": status, "detail": "the event log refused the last write; " + SEND_KEY}
        log.write_failure = None
        assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_readyz_names_a_model_that_refuses_changes_since_its_batch_could_not_be_synced(
    make_settings, serve, monkeypatch
) -> None:
    # A hostile test (session 60): an fsync of the log that failed left the model refusing every change until a
    # restart, while /readyz answered {"status": "ready"} alone
    real_fsync = os.fsync

    def failing_wal_fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith("-wal"):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    app = create_app(make_settings(api_key="k" * 32))
    key = {"Authorization": "Bearer " + "k" * 32}
    async with serve(app) as client:
        monkeypatch.setattr(os, "fsync", failing_wal_fsync)
        failed = await client.post("/v1/models/default/observations", json={"series": "a", "value": 1.0}, headers=key)
        monkeypatch.setattr(os, "fsync", real_fsync)
        assert failed.status_code == 503 and "could not confirm a batch as durable" in failed.json()["detail"]
        refused = await client.post("/v1/models/default/observations", json={"series": "b", "value": 1.0}, headers=key)
        assert refused.status_code == 503 and "accepts no more changes" in refused.json()["detail"]
        told = await client.get("/readyz", headers=key)
        reason = app.state.registry.get("default").unconfirmed
        assert told.status_code == 200 and "Input/output error" in reason
        assert told.json() == {"status": "ready", "unconfirmed": {"default": reason}}
        untold = await client.get("/readyz")
        assert untold.json() == {"status": "ready", "unconfirmed_models": 1, "detail": SEND_KEY}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_report_ingestion_updates_and_forecasts(client_for) -> None:
    async with client_for() as client:
        body = {"observations": [{"series": f"s{i % 2}", "value": float(i)} for i in range(8)]}  # 4 each: 1 update
        await client.post("/v1/models/default/observations", json=body)
        await client.post("/v1/models/default/observations", json={"series": "a", "value": [1.0, 2.0]})  # 422
        await client.get("/v1/models/default/series/s0/forecast", params={"horizon": 2})
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    got = samples(response.text)
    model = (("model", "default"),)
    assert got[("tbptt_observations_total", model)] == 8
    # 4 values per series: 4 ticks, applied one tick per call of the model (a long batch's chunks,
    # TBPTT_LONG_BATCH_CHUNK_TICKS=1); each call is a batch, the request counted once, with its last
    assert got[("tbptt_batches_total", model)] == 4
    assert got[("tbptt_batch_observations_sum", model)] == 8
    assert got[("tbptt_batch_requests_count", model)] == 4 and got[("tbptt_batch_requests_sum", model)] == 1
    assert got[("tbptt_rejected_requests_total", (("model", "default"), ("status", "422")))] == 1
    assert got[("tbptt_update_seconds_count", (("model", "default"), ("updated", "true")))] == 1
    assert got[("tbptt_forecast_seconds_count", model)] == 1
    assert got[("tbptt_updates_total", model)] == 1
    assert got[("tbptt_skipped_updates_total", model)] == 0
    assert got[("tbptt_series", model)] == 2
    assert got[("tbptt_models", ())] == 1
    assert ("tbptt_last_loss", model) in got and got[("tbptt_last_grad_norm", model)] > 0


async def test_two_apps_in_one_process_keep_separate_metrics(client_for, tmp_path) -> None:
    async with client_for() as first, client_for(state_dir=tmp_path / "second") as second:  # one directory each
        await first.post("/v1/models/default/observations", json={"series": "a", "value": 1.0})
        first_metrics = samples((await first.get("/metrics")).text)
        second_metrics = samples((await second.get("/metrics")).text)
    assert first_metrics[("tbptt_observations_total", (("model", "default"),))] == 1
    assert ("tbptt_observations_total", (("model", "default"),)) not in second_metrics


async def test_deleting_a_model_drops_its_metrics(client_for) -> None:
    async with client_for() as client:
        await client.post("/v1/models", json={"name": "temp", "config": {"hidden_size": 4}})
        await client.post("/v1/models/temp/observations", json={"series": "a", "value": 1.0})
        assert ("tbptt_observations_total", (("model", "temp"),)) in samples((await client.get("/metrics")).text)
        await client.delete("/v1/models/temp")
        after = samples((await client.get("/metrics")).text)
    assert not [key for key in after if ("model", "temp") in key[1]]


async def test_openapi_documents_the_v1_resources(client_for) -> None:
    async with client_for() as client:
        assert (await client.get("/docs")).status_code == 200
        schema = (await client.get("/openapi.json")).json()
    assert {
        "/v1/models",
        "/v1/models/{model}",
        "/v1/models/{model}/observations",
        "/v1/models/{model}/series",
        "/v1/models/{model}/series/{series}",
        "/v1/models/{model}/series/{series}/forecast",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(schema["paths"])
