"""The tour file's oracle: the generator replayed exactly, and its forecasters scored."""

from __future__ import annotations

import math

import pytest

from benchmarks import server_metrics_oracle as oracle


def test_the_replayed_generator_gives_every_cell_of_the_csv() -> None:
    replayed = oracle.replay()  # raises where a value differs
    cells = sum(len(host["cpu"]) for host in replayed.values())
    gaps = sum(math.isnan(v) for host in replayed.values() for v in host["cpu"])
    written = oracle.SERVER_METRICS_CSV.read_text().splitlines()[1:]
    assert cells == len(written) == 2016
    assert gaps == sum(1 for line in written if line.split(",")[2] == "")


def test_a_csv_the_generator_did_not_write_is_refused(tmp_path, monkeypatch) -> None:
    lines = oracle.SERVER_METRICS_CSV.read_text().splitlines()
    fields = lines[5].split(",")
    fields[2] = f"{float(fields[2]) + 0.01:.2f}"
    lines[5] = ",".join(fields)
    changed = tmp_path / "server_metrics.csv"
    changed.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(oracle, "SERVER_METRICS_CSV", changed)
    with pytest.raises(ValueError, match="differs from the CSV"):
        oracle.replay()


def test_the_oracle_that_knows_the_noise_does_better_than_the_one_that_reads_the_values() -> None:
    ratios = oracle.oracle_ratios()
    assert set(ratios) == {"web-1", "web-2", "db-1", "batch-1"}
    for r in ratios.values():
        assert 0 < r["latent"] < r["observed"] < 1


def test_not_knowing_the_quiet_weekends_costs_the_daily_hosts_and_not_the_nightly_batch() -> None:
    ratios = oracle.oracle_ratios()
    assert ratios["batch-1"]["weekdays"] == ratios["batch-1"]["observed"]  # a nightly job every day
    for host in ("web-1", "web-2", "db-1"):
        assert ratios[host]["weekdays"] > ratios[host]["observed"]


def test_the_learned_means_are_medians_of_the_earlier_values_at_the_hour_without_the_drift() -> None:
    d = oracle.DRIFT
    days = 8  # a Monday to the next Monday: days 5 and 6 a weekend
    values = [float(100 * (t // 24) + t % 24) + d * t for t in range(24 * days)]  # day k, hour h: 100 k + h + drift
    values[24 * 2 + 3] += 1e6  # a spike on Wednesday 03:00: a median ignores it
    means = oracle.learned_means(values, weekends=False)
    assert all(math.isnan(m) for m in means[:24])  # nothing earlier at its hour
    assert means[24 + 5] == 5 + d * (24 + 5)  # Tuesday: Monday's alone
    assert means[24 * 3 + 3] == 100 + 3 + d * (24 * 3 + 3)  # Thursday 03:00: median of 3, 103, 1e6 + 203
    assert means[24 * 4 + 7] == 150 + 7 + d * (24 * 4 + 7)  # Friday: median of days 0..3, (100 + 200) / 2
    split = oracle.learned_means(values, weekends=True)
    assert split[24 * 5 + 7] == means[24 * 5 + 7]  # the first weekend hour: the weekdays' median
    assert split[24 * 6 + 7] == 500 + 7 + d * (24 * 6 + 7)  # Sunday: Saturday's alone
    assert split[24 * 7 + 7] == 200 + 7 + d * (24 * 7 + 7)  # Monday again: weekdays 0..4 only


def test_learning_each_hours_mean_costs_every_host_against_knowing_it() -> None:
    for r in oracle.oracle_ratios().values():
        assert r["weekdays"] <= r["learned"] < 1
