"""The HTTP benchmark runs end to end at its smoke size, as CI runs it: two real servers, a client process.

Speed is never asserted: only that every phase ran without an error, that the load reached
the model (its observation count is what the client saw acknowledged) and that both
servers were stopped.
"""

from __future__ import annotations

import signal

from tests.benchmarks.smoke import run_smoke


def test_http_load_smoke_drives_service_and_bare_app_and_stops_both(tmp_path):
    payload = run_smoke("http_load", tmp_path)  # also: the table printed is the table written, smoke size
    service, bare, size = payload["service"], payload["bare"], payload["size"]

    phases = {r["phase"]: r for r in service["phases"]}
    mixed = "single POST + batches of 10 values per series"
    assert list(phases) == [
        "fill",
        "batch ingest",
        "forecast GET alone",
        "single POST + forecast GET",
        "single POST alone, as many clients as in the mixed load",
        mixed,
    ]
    assert [r["phase"] for r in bare["phases"]] == ["batch ingest", "single POST + forecast GET", mixed]
    for run in service["phases"] + bare["phases"]:
        for workload in run["workloads"].values():
            assert workload["failure_count"] == 0, workload["failures"]
            assert set(workload["statuses"]) == {"200"}
            assert workload["requests_in_window"] > 0
            assert workload["latency_ms"]["p50"] <= workload["latency_ms"]["p99"] <= workload["latency_ms"]["max"]

    # the fill is bounded by count: exactly fill_ticks values for every series
    fill = phases["fill"]["workloads"]["batch"]
    assert fill["acknowledged_observations"] == size["fill_ticks"] * size["series"]
    model = service["model_after"]
    assert model["observations"] == service["acknowledged_observations"] > fill["acknowledged_observations"]
    assert model["series_count"] == size["series"] and model["updates"]["updates"] > 0  # training was on
    assert model["config"]["hidden_size"] == 64 and (model["config"]["k1"], model["config"]["k2"]) == (8, 32)
    assert service["settings"]["log_sync"] in ("batch", "interval")

    assert service["exit_code"] in (0, -signal.SIGTERM) and bare["exit_code"] in (0, -signal.SIGTERM)
    assert [t["target"] for t in payload["targets"]] == [
        "batch ingest obs/s, training on",
        "single POST req/s, 64 clients",
        "single POST p99 ms",
        "forecast GET p99 ms during single POSTs",
        "single POST p99 ms beside batches of 10 values per series",
    ]
    # the mixed load's long batches: 10 values of each series, so 10 ticks per request
    long_batch = phases[mixed]["workloads"]["batch"]
    assert long_batch["workload"]["values_per_series"] == 10 and long_batch["acknowledged_observations"] > 0
    assert phases[mixed]["workloads"]["single"]["workload"]["connections"] == 32


def test_the_full_size_runs_series_fit_the_memory_budget_its_server_is_given(tmp_path):
    # a run on 2026-12-03 had a fifth of its fill and a third of its batch ingest refused (409): the
    # default budget held 8,192 series of the benchmark's model, the run feeds 10,000
    from benchmarks.http_load import FULL, MODEL, effective_settings, server_env
    from tbptt_online import ForecasterConfig
    from tbptt_service.host.memory_budget import MemoryBudget

    settings = effective_settings(server_env(8000, tmp_path, {}))
    budget = MemoryBudget(max_model_bytes=settings["max_model_bytes"], max_process_bytes=settings["max_process_bytes"])
    limit = budget.series_limit(ForecasterConfig(**MODEL), others_bytes=0, max_series=settings["max_series_per_model"])
    assert limit.count >= max(FULL.series, FULL.single_series + FULL.mixed_series), limit.reason
