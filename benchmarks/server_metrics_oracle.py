"""How far can a one-step forecast of the tour's file go? The generator's own model as a forecaster.

``data/server_metrics.csv`` is synthetic (``data/make_server_metrics.py``, a fixed seed): each
host's CPU is a known mean (base + a daily profile that is 40 % at weekends + a drift) plus AR(1)
noise ``n_t = 0.7 n_{t-1} + N(0, 2^2)``, with 1 % of hours spiked by 15-35 points. Replaying the
generator's random numbers gives, per hour, the mean and the noise, so its oracles can be scored
exactly as the accuracy benchmark scores a forecaster (one step, after its warm-up, the file's gaps
filled by linear interpolation, MAE over the naive last value's):

- **latent**: ``mean_t + 0.7 n_{t-1}``, the generator's expectation given everything it drew before
  hour t (it knows the noise apart from the spikes): a bound no forecaster reaches;
- **observed**: ``mean_t + 0.7 (y_{t-1} - mean_{t-1})``: the same model reading only the values, as
  a forecaster that knew the generator's mean function and its AR coefficient exactly would;
- **weekdays**: the same with every day's profile a weekday's (``weekday_mean``): all it knows but
  the quiet weekends, which three weeks show three times (a weekly season of 168 cannot be found
  in fewer than two weeks of values).
- **learned**: the same model with each hour's mean learned from the values as they come: it
  knows the drift (0.01 a step), the AR coefficient, and which hosts have quiet weekends and
  which days are weekends, not the profile. Hour t's mean is the median (the spikes: 1 % of
  hours) of ``y_s - 0.01 s`` over the hours s before t at its hour of day and of its kind of
  day (weekday or weekend, on a host with quiet weekends), plus ``0.01 t``; before a first
  weekend, a weekday's. Hour t - 1's mean is learned from the hours before t - 1 (its own value
  would pull its residual toward 0). It is what a forecaster reaches that learns a free mean
  per hour of day from the values; one that reaches the observed oracle must learn with fewer
  free values (e.g. know that batch-1's profile is flat but for its nightly job).

Issue 10's tour target is MAE/naive <= 0.8 on every host; the oracles say how much of the naive
error any forecaster can remove on this file.

    python -m benchmarks.server_metrics_oracle
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import math
import random
import statistics
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from benchmarks.accuracy import warmup_of
from benchmarks.real_series import SERVER_METRICS_CSV, server_metrics

GENERATOR = Path(__file__).resolve().parents[1] / "data" / "make_server_metrics.py"
AR, SEED, DRIFT = 0.7, 20240304, 0.01  # the generator's noise coefficient, seed and drift (a step)


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_server_metrics", GENERATOR)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def replay() -> dict[str, dict[str, list[float]]]:
    """Per host: ``mean`` (the generator's mean at each hour), ``weekday_mean`` (the same with a
    weekday's profile on every day: batch-1's has no weekends), ``noise`` (its AR(1) draw) and ``cpu``
    (the value it wrote, NaN where the scrape was missed), drawing the random numbers in the
    generator's order; raises when a value differs from the CSV's."""
    g = _generator()
    rng = random.Random(SEED)
    noise = dict.fromkeys(g.HOSTS, 0.0)
    out: dict[str, dict[str, list[float]]] = {
        h: {"mean": [], "weekday_mean": [], "noise": [], "cpu": []} for h in g.HOSTS
    }
    for t in range(g.HOURS):
        moment = g.START + timedelta(hours=t)
        for host, (base, amplitude, _) in g.HOSTS.items():
            noise[host] = AR * noise[host] + rng.gauss(0.0, 2.0)  # the generator's draws, in its order
            load = g.daily_load(moment.hour, moment.weekday())
            if host == "batch-1":
                load = 1.0 if 2 <= moment.hour < 4 else 0.1
            mean = base + amplitude * load + DRIFT * t
            weekday = mean if host == "batch-1" else base + amplitude * g.daily_load(moment.hour, 0) + DRIFT * t
            cpu = mean + noise[host]
            if rng.random() < 0.01:
                cpu += rng.uniform(15.0, 35.0)
            rng.gauss(0.0, 1.0)  # the request rate's noise
            gap = rng.random() < 0.005
            out[host]["mean"].append(mean)
            out[host]["weekday_mean"].append(weekday)
            out[host]["noise"].append(noise[host])
            out[host]["cpu"].append(math.nan if gap else min(max(cpu, 0.0), 100.0))
    _check(out)
    return out


def _check(replayed: dict[str, dict[str, list[float]]]) -> None:
    written: dict[str, list[str]] = {host: [] for host in replayed}
    with SERVER_METRICS_CSV.open() as file:
        for row in csv.DictReader(file):
            written[row["host"]].append(row["cpu_percent"])
    for host, cells in written.items():
        for t, cell in enumerate(cells):
            value = replayed[host]["cpu"][t]
            if (cell == "") != math.isnan(value) or (cell and abs(float(cell) - value) > 0.005):
                raise ValueError(f"the replayed generator differs from the CSV at {host}, hour {t}: {cell!r}, {value}")


def learned_means(values: list[float], weekends: bool) -> list[float]:
    """Per hour t of ``values`` (hourly from a Monday 00:00, the file's start): its mean as the
    median of ``values[s] - DRIFT * s`` over s < t at t's hour of day (and of t's kind of day when
    ``weekends``; a weekend hour before any weekend value takes the weekdays'), plus ``DRIFT * t``;
    NaN where no earlier value is at that hour of day."""
    seen: dict[tuple[int, bool], list[float]] = {}
    out = []
    for t, value in enumerate(values):
        hour, weekend = t % 24, weekends and (t // 24) % 7 >= 5
        earlier = seen.get((hour, weekend)) or seen.get((hour, False), [])
        out.append(statistics.median(earlier) + DRIFT * t if earlier else math.nan)
        seen.setdefault((hour, weekend), []).append(value - DRIFT * t)
    return out


def oracle_ratios() -> dict[str, dict[str, float]]:
    """Per host (the accuracy benchmark's streams): MAE / naive MAE, one step, of the four oracles."""
    replayed = replay()
    ratios = {}
    for series in server_metrics():
        host = series.name.split("/", 1)[1]
        y, mean, noise = series.values, replayed[host]["mean"], replayed[host]["noise"]
        weekday = replayed[host]["weekday_mean"]
        hours = range(warmup_of(series), len(y))
        naive = sum(abs(y[t] - y[t - 1]) for t in hours)
        latent = sum(abs(y[t] - (mean[t] + AR * noise[t - 1])) for t in hours)
        observed = sum(abs(y[t] - (mean[t] + AR * (y[t - 1] - mean[t - 1]))) for t in hours)
        weekdays = sum(abs(y[t] - (weekday[t] + AR * (y[t - 1] - weekday[t - 1]))) for t in hours)
        quiet_weekends = weekday != mean  # the lists differ: batch-1's are the same
        guess = learned_means(y, weekends=quiet_weekends)  # every hour has earlier ones after the warm-up
        learned = sum(abs(y[t] - (guess[t] + AR * (y[t - 1] - guess[t - 1]))) for t in hours)
        ratios[host] = {
            "latent": latent / naive,
            "observed": observed / naive,
            "weekdays": weekdays / naive,
            "learned": learned / naive,
            "scored": len(hours),
        }
    return ratios


def main(argv: list[str] | None = None) -> None:
    # no options; --help says what it does instead of running it (a new user's report)
    argparse.ArgumentParser(description=__doc__.split("\n", 1)[0]).parse_args(argv)
    print("One-step MAE / naive MAE of the generator's own model on data/server_metrics.csv")
    print("(scored as benchmarks.accuracy scores: after its warm-up, gaps interpolated)\n")
    print(
        "| host | values scored | oracle, latent noise | oracle, from the values | the same, weekdays' profile"
        " | the same, each hour's mean learned |"
    )
    print("|---|---|---|---|---|---|")
    for host, r in oracle_ratios().items():
        figures = " | ".join(f"{r[key]:.3f}" for key in ("latent", "observed", "weekdays", "learned"))
        print(f"| {host} | {r['scored']:.0f} | {figures} |")


if __name__ == "__main__":
    main()
