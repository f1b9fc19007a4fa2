"""The accuracy benchmark's bookkeeping against hand computations: best in hindsight, datasets,
the tally; and its grids and series."""

from __future__ import annotations

import math

import pytest

from benchmarks.accuracy_summary import RIVER_BEST, dataset_summary, geometric_mean, stream_summary, tally, verdicts
from benchmarks.contenders import (
    HOLT_WINTERS,
    NAIVE,
    OURS,
    SEASONAL_NAIVE,
    SNARIMAX,
    holt_winters_grid,
    snarimax_grid,
)
from benchmarks.real_series import all_series, server_metrics


def row(family: str, config: str, one_step: float | None, horizon: float | None, **extra) -> dict:
    return {
        "dataset": extra.get("dataset", "d"),
        "stream": extra.get("stream", "d"),
        "family": family,
        "config": config,
        "values": 100,
        "period": 12,
        "one_step_mae": one_step,
        "mean_horizon_mae": horizon,
        "coverage": extra.get("coverage"),
        "error": extra.get("error"),
    }


def stream_rows(**where) -> list[dict]:
    return [
        row(NAIVE, "last value", 2.0, 4.0, **where),
        row(SEASONAL_NAIVE, "P=12", 3.0, 2.0, **where),
        row(HOLT_WINTERS, "a", 1.0, 3.0, **where),
        row(HOLT_WINTERS, "b", 1.5, 2.4, **where),
        row(SNARIMAX, "c", 1.2, 1.6, **where),
        row(SNARIMAX, "diverged", None, None, error="diverged", **where),
        row(OURS, "defaults", 1.1, 1.6, coverage=[0.9, 0.86, 0.95], **where),
    ]


def test_river_is_represented_per_metric_by_its_best_configuration_in_hindsight():
    summary = stream_summary(stream_rows())
    one, many = summary["ratio"]["one_step"], summary["ratio"]["horizon"]
    assert one == {NAIVE: 1.0, SEASONAL_NAIVE: 1.5, HOLT_WINTERS: 0.5, SNARIMAX: 0.6, RIVER_BEST: 0.5, OURS: 0.55}
    assert many == {NAIVE: 1.0, SEASONAL_NAIVE: 0.5, HOLT_WINTERS: 0.6, SNARIMAX: 0.4, RIVER_BEST: 0.4, OURS: 0.4}
    assert summary["best_config"]["one_step"] == {HOLT_WINTERS: "a", SNARIMAX: "c", RIVER_BEST: f"{HOLT_WINTERS} a"}
    assert summary["best_config"]["horizon"] == {HOLT_WINTERS: "b", SNARIMAX: "c", RIVER_BEST: f"{SNARIMAX} c"}
    assert summary["naive_mae"] == {"one_step": 2.0, "horizon": 4.0}


def test_verdicts_compare_ours_with_river_best_naive_and_seasonal_naive_and_the_coverage():
    judged = verdicts(stream_summary(stream_rows()), level=0.9)
    assert judged == {
        "le_river_best_one_step": False,  # 0.55 > 0.5
        "le_river_best_horizon": True,  # a tie counts: at or below
        "lt_naive_one_step": True,
        "lt_naive_horizon": True,
        "lt_seasonal_naive_one_step": True,
        "lt_seasonal_naive_horizon": True,  # 0.4 < 0.5
        "coverage_ok": True,  # 86 % and 95 % are within 5 points of 90 %
    }
    rows = stream_rows()
    rows[-1]["coverage"] = [0.9, 0.849, 0.9]
    assert verdicts(stream_summary(rows), level=0.9)["coverage_ok"] is False


def test_a_dataset_of_several_streams_is_the_mean_of_their_ratios_and_coverages():
    first = stream_summary(stream_rows(stream="d/1"))
    rows = stream_rows(stream="d/2")
    rows[-1].update(one_step_mae=3.0, coverage=[0.8, 0.9, 1.0])  # ours 1.5 x naive on this stream
    second = stream_summary(rows)
    both = dataset_summary([first, second])
    assert both["name"] == "d" and both["streams"] == 2
    assert both["ratio"]["one_step"][OURS] == pytest.approx((0.55 + 1.5) / 2)
    assert both["ratio"]["one_step"][RIVER_BEST] == pytest.approx(0.5)
    assert both["coverage"] == pytest.approx([0.85, 0.88, 0.975])
    assert dataset_summary([first])["ratio"] == first["ratio"]


def test_tally_counts_datasets_and_takes_geometric_means():
    good = stream_summary(stream_rows(dataset="good", stream="good"))
    rows = stream_rows(dataset="bad", stream="bad")
    rows[-1].update(one_step_mae=4.0, mean_horizon_mae=8.0, coverage=[0.5, 0.5, 0.5])  # 2 x naive
    bad = stream_summary(rows)
    counted = tally([good, bad], level=0.9)
    assert counted["datasets"] == 2
    assert counted["le_river_best_one_step"] == 0 and counted["le_river_best_horizon"] == 1
    assert counted["le_river_best_both"] == 0
    assert counted["lt_naive_both"] == 1 and counted["lt_seasonal_naive_both"] == 1 and counted["coverage_ok"] == 1
    assert counted["geometric_mean"]["one_step"][OURS] == pytest.approx(math.sqrt(0.55 * 2.0))
    assert counted["geometric_mean"]["horizon"][NAIVE] == 1.0
    assert geometric_mean([0.25, 4.0]) == pytest.approx(1.0)


def test_a_river_family_that_failed_everywhere_is_an_error_not_a_silent_gap():
    rows = [r for r in stream_rows() if r["family"] != SNARIMAX or r["error"] is not None]
    with pytest.raises(ValueError, match="every river SNARIMAX configuration failed on d"):
        stream_summary(rows)


def test_grids_hold_at_least_4_and_12_distinct_configurations():
    for period, positive, hw, snarimax in ((12, True, 24, 25), (52, False, 12, 25), (1, True, 9, 12)):
        hw_grid, snarimax_grid_ = holt_winters_grid(period, positive), snarimax_grid(period)
        assert len(hw_grid) == hw and len({c.config for c in hw_grid}) == hw
        assert len(snarimax_grid_) == snarimax and len({c.config for c in snarimax_grid_}) == snarimax
    assert snarimax_grid(12)[-1].make().p == 12  # river's documented setting, p = q = period
    assert all(c.make().seasonality == 0 for c in holt_winters_grid(1, True))  # no season: no seasonal terms


def test_server_metrics_has_one_stream_per_host_with_gaps_interpolated(tmp_path):
    csv = tmp_path / "metrics.csv"
    csv.write_text(
        "timestamp,host,cpu_percent,requests_per_s\n"
        "2024-01-01T00:00:00Z,b,1.0,1\n2024-01-01T00:00:00Z,a,10.0,1\n"
        "2024-01-01T01:00:00Z,a,,\n2024-01-01T01:00:00Z,b,2.0,1\n"
        "2024-01-01T02:00:00Z,a,,\n2024-01-01T02:00:00Z,b,,\n"
        "2024-01-01T03:00:00Z,a,16.0,1\n2024-01-01T03:00:00Z,b,5.0,1\n"
    )
    streams = server_metrics(csv)
    assert [s.name for s in streams] == ["server_metrics/a", "server_metrics/b"]
    assert {s.dataset for s in streams} == {"server_metrics"} and {s.period for s in streams} == {24}
    assert streams[0].values == [10.0, 12.0, 14.0, 16.0]
    assert streams[1].values == [1.0, 2.0, 3.5, 5.0]


def test_an_unknown_dataset_is_refused_by_name():
    with pytest.raises(ValueError, match=r"unknown dataset\(s\) \['nope'\]"):
        all_series(["airline", "nope"])
