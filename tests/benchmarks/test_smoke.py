"""Each benchmark script runs end to end at its smoke size, as CI runs it, and writes its outputs.

The scripts run as separate processes (``python -m benchmarks.NAME --smoke --out DIR``)
into a temporary folder, so the published results under benchmarks/results/ stay as they are.
Speed is never asserted here: only that the outputs exist and say what they should.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.throughput import BASELINE_SETTINGS
from tbptt_online import hybrid
from tests.benchmarks.smoke import ROOT, run_smoke


@pytest.fixture(scope="module")
def throughput(tmp_path_factory) -> tuple[dict, Path]:
    """One smoke run of the throughput benchmark (about half a minute), read by the tests below."""
    out = tmp_path_factory.mktemp("throughput")
    with pytest.MonkeyPatch.context() as environment:  # the driver's wait is the one the library sets
        environment.delenv("GOMP_SPINCOUNT", raising=False)
        environment.delenv("OMP_WAIT_POLICY", raising=False)
        return run_smoke("throughput", out), out


def test_throughput_smoke_measures_every_way_and_counts_memory(throughput):
    payload, _ = throughput
    ways = {(r["way"], r["series"], r["threads"]) for r in payload["rows"]}
    assert {("training", 1, 1), ("training", 20, 2), ("forward-only", 1, 2), ("naive", 1, 1)} <= ways
    assert ("training, every result read", 20, 1) in ways
    assert all(r["obs_per_s"] > 0 and r["observations"] == r["series"] * r["ticks"] for r in payload["rows"])
    assert all(r["updates"] == 0 for r in payload["rows"] if r["way"].startswith("forward-only"))
    # the first round's forward-only target's kind of forecaster: network-only, on this library (session 48)
    assert ("forward-only, network-only config", 20, 2) in ways
    assert payload["config_forward_only_network"]["hybrid"] is False
    assert payload["config_forward_only_network"]["k1"] == 100_000
    assert all(r["updates"] > 0 for r in payload["rows"] if r["way"] == "training")
    assert payload["config_training"]["hybrid"] is True  # the library's defaults
    # the driver's own measurements (forward-only, the naive loop, the profiles) too: the library before torch
    assert payload["driver_gomp_spincount"] == "10000"
    assert payload["driver_malloc_thresholds_set"] is False
    assert payload["config_forward_only"]["k1"] == 100_000 and payload["config_forward_only"]["warmup_updates"] == 0
    stateful = payload["memory"]["stateful"]
    assert stateful["bytes_per_series_row"] == sum(stateful["fields"].values())
    # the hybrid's seasonal tables alone: 4 variants x 2 seasons x 336 phases, float64
    assert stateful["fields"]["x_season"] == 4 * 2 * 336 * 8
    assert stateful["bytes_per_series_row"] > payload["memory"]["baseline"]["bytes_per_series_row"] > 0
    assert len(payload["targets"]) == 7
    assert 0 < payload["profiles"]["single series, training"]["share_in_torch_calls"] < 1
    assert payload["profiles"]["single series, observe + forecast(12)"]["forecast_horizon"] == 12


def test_throughput_smoke_runs_the_old_main_side_by_side(throughput):
    payload, out = throughput
    baseline = payload["baseline"]
    runs = baseline["runs"]
    assert list(runs) == [
        "baseline",
        "new defaults",
        "new library, old network-only config",
        BASELINE_SETTINGS,
    ]
    # each library with libgomp's wait as it comes (the new one sets its own), the old one once more with the new's
    assert [run["gomp_spincount"] for run in runs.values()] == [None, "10000", "10000", "10000"]
    # malloc's thresholds: glibc's own rule in all four (the library's are off by default)
    thresholds = [run["malloc_thresholds"] for run in runs.values()]
    assert [t["set_by_library"] for t in thresholds] == [False] * 4
    assert [[t["MALLOC_MMAP_THRESHOLD_"], t["MALLOC_TRIM_THRESHOLD_"]] for t in thresholds] == [[None, None]] * 4
    # each run imported its own library: the old one from the exported commit, the new one from this checkout
    assert runs["baseline"]["library"].startswith(baseline["baseline_path"])
    assert runs["new defaults"]["library"] == str(ROOT / "tbptt_online")
    assert runs["baseline"]["config"]["lr"] == 1e-3 and "hybrid" not in runs["baseline"]["config"]
    assert runs["new library, old network-only config"]["config"]["hybrid"] is False
    for run in runs.values():
        assert {(r["series"], r["threads"]) for r in run["rows"] if r["way"] == "training"} == {
            (n, t) for n in (1, 20) for t in (1, 2)
        }
        assert all(r["updates"] > 0 for r in run["rows"])
        # each timed tick's seconds, which the phase's sum up to (within their rounding to 1 microsecond)
        assert all(len(r["tick_seconds"]) == r["ticks"] for r in run["rows"])
        assert all(abs(sum(r["tick_seconds"]) - r["seconds"]) < 1e-4 for r in run["rows"])
    # 8 ticks a phase at smoke size: none as long as two windows
    assert payload["window_ticks"] == 32 and payload["windows"] == []
    assert runs[BASELINE_SETTINGS]["latency"] is None  # (one thread: no OpenMP threads wait)
    for name in ("new defaults", "baseline"):
        latency = runs[name]["latency"]
        assert latency["horizon"] == 12 and latency["observe_and_forecast"]["n"] == 20
        both = latency["observe_and_forecast"]
        assert 0 < both["median_ms"] <= both["p90_ms"] <= both["p99_ms"] <= both["max_ms"]
    # after 30 untimed steps; 42: a row without a season yet is looked at (this one finds its 24 at 72)
    assert runs["new defaults"]["latency"]["detection_steps"] == [36, 42, 48]
    for ratio in payload["ratios"]:  # against the old main at the better of its two waits
        old = max(ratio["old_obs_per_s"], ratio["old_settings_obs_per_s"])
        assert ratio["new_over_old"] == ratio["new_obs_per_s"] / old
    (target,) = [t for t in payload["targets"] if t["target"].startswith("training at 10,000 series: new")]
    assert target["goal"] == 0.8 and target["measured"] > 0
    markdown = (out / "throughput.md").read_text()
    assert "new / old" in markdown and baseline["baseline_commit"] in markdown


def test_accuracy_smoke_scores_every_contender_on_every_series(tmp_path):
    payload = run_smoke("accuracy", tmp_path)
    names = ["airline", "co2", "elnino", "waterflow", "sunspots", "nile", "elec_equip", "trump_approval"]
    assert [d["name"] for d in payload["datasets"]] == [*names, "server_metrics"]
    hosts = [s["name"] for s in payload["streams"] if s["dataset"] == "server_metrics"]
    assert hosts == [f"server_metrics/{h}" for h in ("batch-1", "db-1", "web-1", "web-2")]
    for stream in payload["series"]:
        rows = [r for r in payload["rows"] if r["stream"] == stream["name"]]
        assert rows[0]["family"] == "naive" and [r["family"] for r in rows].count("ours") == 1
        assert sum(r["family"] == "river HoltWinters" for r in rows) >= 4
        assert sum(r["family"] == "river SNARIMAX" for r in rows) >= 12
        (ours,) = [r for r in rows if r["family"] == "ours"]
        assert ours["config"] == "defaults" and len(ours["coverage"]) == 3
        assert all(0.0 <= c <= 1.0 for c in ours["coverage"])
        assert all(r["coverage"] is None for r in rows if r["family"] != "ours")  # river gives no intervals
    assert payload["config_overrides"] == {} and payload["coverage_horizons"] == [1, 6, 12]
    assert all(d["ratio"]["one_step"]["naive"] == 1.0 for d in payload["datasets"])
    assert payload["tally"]["datasets"] == 9


def test_young_horizons_smoke_measures_each_length(tmp_path):
    payload = run_smoke("young_horizons", tmp_path)
    assert [r["values"] for r in payload["rows"]] == [3, 8] and payload["horizon"] == 50
    for row in payload["rows"]:
        assert len(row["overshoot"]) == 2 and all(x >= 0.0 for x in row["overshoot"])
        assert row["max"] == max(row["overshoot"]) and min(row["overshoot"]) <= row["median"] <= row["max"]


def test_true_seasons_smoke_reads_each_kind_at_each_step(tmp_path):
    payload = run_smoke("true_seasons", tmp_path)
    assert len(payload["rows"]) == 18 and payload["read_at"] == [30, 60]
    for row in payload["rows"]:
        assert set(row["true_share"]) == {"30", "60"} and all(0.0 <= x <= 1.0 for x in row["true_share"].values())
        assert sum(row["at_last"].values()) == payload["series"] == 4
        assert row["at_last"]["true"] == round(row["true_share"]["60"] * 4)
    clean = {r["kind"]: r for r in payload["rows"]}["sine 7, noise 0.0"]
    assert clean["at_last"]["true"] == 4 and clean["served_at_last"] == [[7]]  # a clean season of 7 by value 60
    assert "Seasons served in series with a known one" in (tmp_path / "true_seasons.md").read_text()


def test_double_seasons_smoke_scores_each_setting_against_the_weekly_naive(tmp_path):
    payload = run_smoke("double_seasons", tmp_path)
    assert [r["season_length"] for r in payload["rows"]] == ['"auto"', "[24, 168]", "168", "24"]
    for row in payload["rows"]:
        assert row["series"] == [2, 2] and row["weekend"] > 0 and row["no_weekend"] > 0
    assert {r["season_length"]: r["served"] for r in payload["rows"]}["[24, 168]"] == [[24, 168]]
    assert "hourly series with a daily and a weekly season" in (tmp_path / "double_seasons.md").read_text()


def test_false_seasons_smoke_counts_each_kind(tmp_path):
    payload = run_smoke("false_seasons", tmp_path)
    kinds = [
        "white noise",
        "random walk",
        "AR(1) 0.7",
        "integrated AR(1) 0.9",
        "Poisson counts of mean 0.3",
        "events of rate 0.05",
        "a counter of those events",
        "control: a season of 4",
    ]
    assert [r["kind"] for r in payload["rows"]] == kinds
    looks = {*hybrid.DETECT_AT, *hybrid.DETECT_UNSETTLED}
    for row in payload["rows"]:
        assert 0 <= row["series_at_last_step"] <= row["series_ever"] <= payload["series"] == 20
        assert 0.0 <= row["share_of_steps"] <= row["series_ever"] / payload["series"]
        assert len(row["first_steps"]) <= row["series_ever"] and set(row["first_steps"]) <= looks  # only at a look
    assert payload["rows"][-1]["series_ever"] >= 15  # the control's season is found in most series by value 40
    assert "Seasons reported in series without one" in (tmp_path / "false_seasons.md").read_text()


def test_accuracy_runs_a_subset_of_datasets_with_our_config_overridden(tmp_path):
    payload = run_smoke("accuracy", tmp_path, "--only", "nile,airline", "--config", '{"lr": 0.01}')
    assert [d["name"] for d in payload["datasets"]] == ["nile", "airline"]
    assert payload["config_overrides"] == {"lr": 0.01} and payload["config_ours"]["lr"] == 0.01
    assert {r["config"] for r in payload["rows"] if r["family"] == "ours"} == {"custom"}
    assert "(NOT the defaults)" in (tmp_path / "accuracy.md").read_text()


def test_truncation_wall_smoke_runs_every_mode_and_k2_and_plots(tmp_path):
    payload = run_smoke("truncation_wall", tmp_path)
    runs = {(r["stream"], r["mode"], r["k2"], r["k1"]) for r in payload["rows"]}
    streams, modes = ("seasonal_random_walk", "seasonal_ar", "delayed_echo"), ("stateful", "stateless")
    assert runs == {(s, m, k2, k2 // 2) for s in streams for m in modes for k2 in (5, 10, 20, 40)}
    budget, n_series = payload["budget"]["observations_per_run"], payload["budget"]["n_series"]
    same_budget = [r for r in payload["rows"] if r["run"] in ("stateful", "stateless")]
    assert len(same_budget) == 24 and all(r["observations"] == budget for r in same_budget)
    longer_streams = {r["stream"] for r in payload["rows"] if r["run"] not in ("stateful", "stateless")}
    assert len(payload["rows"]) == 32 and longer_streams == {"seasonal_ar", "delayed_echo"}
    for longer in (r for r in payload["rows"] if r["run"] not in ("stateful", "stateless")):
        stateless = next(
            r for r in same_budget if (r["stream"], r["k2"], r["mode"]) == (longer["stream"], longer["k2"], "stateless")
        )
        assert longer["observations"] == n_series * budget
        # stateful: one update every k1 ticks; stateless: one every k1 observations once windows exist
        assert longer["updates"] == longer["ticks"] // longer["k1"] == budget // longer["k1"]
        assert budget // longer["k1"] - n_series * longer["k2"] <= stateless["updates"] <= budget // longer["k1"]
    assert all(r["best"]["rmse"] == 0.0 for r in payload["rows"] if r["stream"] == "delayed_echo")
    # part (c): the advisor and adaptive truncation on the echo, every run with k1 = 10
    echo = {r["rule"]: r for r in payload["adaptive"]["rows"]}
    assert list(echo) == ["k2 = 10", "k2 = 20", "k2 = 40", "k2 = 80", "adaptive <= 40", "adaptive <= 80"]
    assert all(r["updates"] == r["ticks"] // 10 and r["seed"] == 0 for r in echo.values())
    fixed = {k2: echo[f"k2 = {k2}"] for k2 in (10, 20, 40)}
    assert [fixed[k2]["advisor"]["too_short"] for k2 in (10, 20, 40)] == [True, True, False]
    assert fixed[20]["advisor"]["recommended_k2"] == 30 and fixed[20]["advisor"]["dependencies"] == [20]
    # the adaptive window grows to P + k1 once the echo's lag is found twice
    for ceiling in (40, 80):
        run = echo[f"adaptive <= {ceiling}"]
        windows = [k for _, k in run["window_at_probes"]]
        assert windows[0] < 30 and windows[-1] == 30 == run["advisor"]["window"], windows
    for r in echo.values():  # stateful: every update replays one window per series, of K_t <= k2 (k2_max) steps
        ceiling = int(r["rule"].split()[-1])
        assert 0 < r["backprop_steps"] <= r["updates"] * r["n_series"] * ceiling
    assert fixed[40]["backprop_steps"] == 2 * fixed[20]["backprop_steps"] == 4 * fixed[10]["backprop_steps"]
    four = payload["adaptive"]["acceptance"]["fixed_4P"]  # fixed 4P against fixed 2P
    assert four["steps_over_fixed_2P"] == echo["k2 = 80"]["backprop_steps"] / fixed[40]["backprop_steps"]
    assert four["rmse_over_fixed_2P"] == echo["k2 = 80"]["rmse"]["model"] / fixed[40]["rmse"]["model"]
    ok = payload["adaptive"]["acceptance"]["adaptive"]
    for ceiling in (40, 80):
        run = echo[f"adaptive <= {ceiling}"]
        assert ok[str(ceiling)]["steps_over_fixed_2P"] == run["backprop_steps"] / fixed[40]["backprop_steps"]
        assert ok[str(ceiling)]["rmse_over_fixed_2P_per_seed"] == [run["rmse"]["model"] / fixed[40]["rmse"]["model"]]
    assert "### (c) The advisor and adaptive truncation" in (tmp_path / "truncation_wall.md").read_text()
    png = (tmp_path / "truncation_wall.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_sparse_series_smoke_scores_each_stream_against_the_naive(tmp_path):
    payload = run_smoke("sparse_series", tmp_path)
    assert payload["values"] == 120 and len(payload["rows"]) == 5
    for row in payload["rows"]:
        assert all(0.0 < row[k] < 10.0 for k in ("ours_one_step", "ours_h12", "median_100", "mean_100"))


def test_interval_levels_smoke_counts_each_level_both_ways(tmp_path):
    payload = run_smoke("interval_levels", tmp_path)
    assert [r["stream"] for r in payload["rows"]] == ["airline", "co2"] and payload["levels"][2] == 0.9
    for row in payload["rows"]:
        assert row["origins"]["1"] > row["origins"]["12"] > 0
        at_90 = [row["coverage"][f"{way} 0.9 h{h}"] for way in ("learned", "normal") for h in (1, 6, 12)]
        assert at_90[:3] == at_90[3:]  # the tracked level: the same intervals both ways
        learned = [row["coverage"][f"learned {level} h1"] for level in payload["levels"]]
        assert learned == sorted(learned) and all(0.0 <= x <= 1.0 for x in learned)  # wider levels cover more
    assert len(payload["summary"]) == 2 * len(payload["levels"])
    assert "Interval coverage at other levels" in (tmp_path / "interval_levels.md").read_text()


def test_long_series_smoke_scores_each_block_and_reads_each_ars_p(tmp_path):
    payload = run_smoke("long_series", tmp_path)
    assert payload["values"] == 600 and payload["block"] == 200 and len(payload["streams"]) == 3
    for found in payload["streams"].values():
        assert [b["values"] for b in found["blocks"]] == ["1-200", "201-400", "401-600"]
        for block in found["blocks"]:
            shown = ("served", "ar", "ar_changes", "ar_levels", "ar_short", "trend_a0.2_g0.1", "trend_a0.2_g0.4")
            assert all(0.0 < block[k] < 10.0 for k in shown)
        for health in found["p"].values():  # exactly symmetric, positive definite (rls.py)
            assert health["asymmetry"] == 0.0 and health["smallest_eigenvalue"] > 0.0


def test_far_horizons_smoke_counts_coverage_served_and_before_at_each_horizon(tmp_path):
    payload = run_smoke("far_horizons", tmp_path)
    assert [r["stream"] for r in payload["rows"]] == ["co2", "elnino"] and payload["horizons"] == [
        6,
        12,
        18,
        24,
        36,
        48,
    ]
    for row in payload["rows"]:
        assert row["values"] == 120
        assert set(row["coverage"]["served"]) == {"6", "12", "18", "24", "36", "48"}
        assert set(row["coverage"]["before"]) == set(row["coverage"]["served"])
        assert all(0.0 <= c <= 1.0 for c in row["coverage"]["served"].values())
        for h in ("6", "12"):  # up to the calibrated horizon the two rules are one
            assert row["coverage"]["before"][h] == row["coverage"]["served"][h]
            # (the served widths as a forecast gives them: upper - mean, to its rounding)
            assert row["widths"]["before"][h] == pytest.approx(row["widths"]["served"][h], rel=1e-5)
        assert set(row["widths"]["served"]["48"]) == {"score_ratio", "p95_width_ratio"}
    for rule in ("served", "before"):
        assert payload["summary"][rule]["cells"] == 8 and 0 <= payload["summary"][rule]["cells_off"] <= 8
    assert "Interval coverage past the calibrated horizon" in (tmp_path / "far_horizons.md").read_text()


def test_past_far_horizons_smoke_counts_coverage_past_48_from_every_third_origin(tmp_path):
    payload = run_smoke("past_far_horizons", tmp_path)
    assert [r["stream"] for r in payload["rows"]] == ["co2", "elnino"] and payload["horizons"] == [48, 72, 96, 144, 192]
    for row in payload["rows"]:
        # 260 values, after the warm-up (26 or a season) up to 260 - 192: origins 54, 57, .. 66 for co2 (52),
        # 27, 30, .. 66 for elnino
        assert row["values"] == 260 and row["origins"] == {"co2": 5, "elnino": 14}[row["stream"]]
        assert set(row["coverage"]) == {"48", "72", "96", "144", "192"}
        assert all(0.0 <= c <= 1.0 for c in row["coverage"].values())
    assert payload["summary"]["cells"] == 8 and 0 <= payload["summary"]["cells_off"] <= 8
    assert "Interval coverage past the last far horizon" in (tmp_path / "past_far_horizons.md").read_text()


def test_wandering_seasons_smoke_reads_seasons_and_scores_both_kinds_of_cpu_metric(tmp_path):
    payload = run_smoke("wandering_seasons", tmp_path)
    assert payload["days"] == 5 and [r["series"] for r in payload["rows"]] == [
        f"{kind}{seed}" for seed in range(6) for kind in ("weekend", "flat")
    ]
    for row in payload["rows"]:
        assert row["season_changes"][0] == [32, []]  # nothing served at value 32 (a season is looked for from 576)
        assert 0.0 < row["mae_over_naive_12"] < 5.0 and 0.0 < row["mae_over_seasonal_naive_day"] < 5.0
    assert set(payload["summary"]) == {"weekend", "flat"}
    assert "A 5-minute daily cycle found a few lags off" in (tmp_path / "wandering_seasons.md").read_text()


def test_interval_widths_smoke_scores_served_before_and_hindsight_widths_at_each_tracked_horizon(tmp_path):
    payload = run_smoke("interval_widths", tmp_path)
    assert [r["stream"] for r in payload["rows"]] == ["airline", "co2"]
    for row in payload["rows"]:
        assert row["values"] == 120 and set(row["horizons"]) == {str(h) for h in range(1, 13)}
        for cell in row["horizons"].values():
            assert set(cell) == {"scored", "hindsight_half_width", "served", "before", "hindsight"}
            assert cell["hindsight"]["score_ratio"] == 1.0
            assert cell["hindsight"]["width_ratio"] == pytest.approx(1.0, rel=1e-12)
            for rule in ("served", "before"):
                assert 0.0 <= cell[rule]["coverage"] <= 1.0 and cell[rule]["score_ratio"] > 0
    for rule in ("served", "before", "hindsight"):
        assert payload["summary"][rule]["cells"] == 6 and 0 <= payload["summary"][rule]["cells_off"] <= 6
    assert "Interval widths at the tracked horizons" in (tmp_path / "interval_widths.md").read_text()
