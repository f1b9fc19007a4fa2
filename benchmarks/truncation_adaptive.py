"""Part (c) of the truncation wall: the advisor and adaptive truncation on the delayed echo.

The echo's dependency is exactly P = 20 steps long. Stateful runs with one k1 = P / 2 = 10
(so every run updates equally often and only the window differs): fixed k2 = P / 2, P and
2P, and ``k2="adaptive"`` started at ``k2_min = P / 2`` (``k2_max = 4P``, ``truncation_bias``
0.1). Each run records the advisor's report at its end (the window, the relative truncation
bias, the recommended k2, the verdict), the windows the adaptive run used at each probe, its
cost (backpropagation steps: the length of every replayed window times the windows, summed
over the updates; and wall seconds) and the prequential RMSE over the last 25 % of the ticks.

The acceptance (issue 12): the advisor flags k2 <= P as too short and k2 = 2P as long enough;
the adaptive run reaches the RMSE of fixed k2 = 2P within 10 % at no more than its cost.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch

from benchmarks.wall_streams import best_and_ignorant, delayed_echo
from tbptt_online import Forecaster, ForecasterConfig

K1 = 10  # P / 2
FIXED = (10, 20, 40)  # P / 2, P, 2P
ADAPTIVE = {"k2": "adaptive", "k2_min": 10, "k2_max": 80, "truncation_bias": 0.1}
FULL = {"n_series": 8, "ticks": 16_000}
SMOKE = {"n_series": 2, "ticks": 400}


@dataclasses.dataclass(frozen=True)
class EchoJob:
    k2: int | str
    n_series: int
    ticks: int
    period: int
    base: ForecasterConfig

    @property
    def config(self) -> ForecasterConfig:
        window = ADAPTIVE if self.k2 == "adaptive" else {"k2": self.k2}
        # the smoke size probes every 8 updates, so that its short run sees the window move
        probe = {"probe_every": 8} if self.ticks < 2_000 else {}
        return dataclasses.replace(self.base, mode="stateful", k1=K1, n_features=2, **window, **probe)


def jobs(n_series: int, ticks: int, period: int, base: ForecasterConfig) -> list[EchoJob]:
    return [EchoJob(k2, n_series, ticks, period, base) for k2 in (*FIXED, "adaptive")]


def run_echo_job(job: EchoJob, scored_share: float) -> dict[str, Any]:
    """Learn the echo online with one window rule; score the last quarter; the advisor's report."""
    torch.set_num_threads(1)
    x = delayed_echo(job.ticks, job.n_series, job.period, seed=0)  # [T, S, 2]
    forecaster = Forecaster(job.config)
    names = [f"echo-{i}" for i in range(job.n_series)]
    made = torch.empty(job.ticks, job.n_series, dtype=torch.float64)  # [T, S] forecast of feature 2
    steps, seen, windows = 0, 0, []  # backprop steps; last update counted; (tick, window) at each probe
    probes = 0
    started = time.perf_counter()
    for t in range(job.ticks):
        results = forecaster.observe_many(list(zip(names, x[t].tolist(), strict=True)))
        made[t] = torch.tensor([r.forecast_made.mean[1] for r in results], dtype=torch.float64)
        for record in forecaster.engine.recent:
            if record.index > seen:
                steps += record.window * record.n_windows
        seen = forecaster.engine.attempts
        if forecaster.probe.probes != probes:
            probes = forecaster.probe.probes
            windows.append((t + 1, forecaster.probe.window))
    seconds = time.perf_counter() - started
    first = job.ticks - max(1, int(scored_share * job.ticks))
    truth = x[first:, :, 1]
    best, ignorant = (f[first:] for f in best_and_ignorant("delayed_echo", x, job.period))
    rmse = {
        name: float((f - truth).pow(2).mean().sqrt())
        for name, f in (("model", made[first:]), ("best", best), ("ignorant", ignorant))
    }
    report = forecaster.truncation()
    return {
        "k2": job.k2,
        "k1": K1,
        "n_series": job.n_series,
        "ticks": job.ticks,
        "updates": forecaster.update_stats().updates,
        "backprop_steps": steps,
        "steps_per_observation": steps / (job.ticks * job.n_series),
        "seconds": round(seconds, 1),
        "rmse": rmse,
        "gap_closed": (rmse["ignorant"] - rmse["model"]) / (rmse["ignorant"] - rmse["best"]),
        "window_at_probes": windows,
        "advisor": {
            "window": report.window,
            # JSON has no infinity: an unbounded bias (no decay within the probe) is None and flagged
            "relative_bias": None if report.relative_bias == math.inf else report.relative_bias,
            "bias_unbounded": report.relative_bias == math.inf,
            "recommended_k2": report.recommended_k2,
            "dependencies": sorted(set(report.dependencies.values())),
            "too_short": report.recommended_k2 > report.window,
            "verdict": report.verdict,
        },
    }


def acceptance(rows: list[dict[str, Any]], period: int) -> dict[str, Any]:
    """The issue's checks on the rows, as measured (nothing is asserted here)."""
    by_k2 = {r["k2"]: r for r in rows}
    fixed, adaptive = by_k2[2 * period], by_k2["adaptive"]
    return {
        "flags_k2_up_to_P_as_too_short": all(by_k2[k]["advisor"]["too_short"] for k in FIXED if k <= period),
        "k2_2P_sufficient": not fixed["advisor"]["too_short"],
        "adaptive_rmse_over_fixed_2P": adaptive["rmse"]["model"] / fixed["rmse"]["model"],
        "adaptive_steps_over_fixed_2P": adaptive["backprop_steps"] / fixed["backprop_steps"],
        "adaptive_seconds_over_fixed_2P": adaptive["seconds"] / max(fixed["seconds"], 1e-9),
        "adaptive_within_10_percent": adaptive["rmse"]["model"] <= 1.1 * fixed["rmse"]["model"],
        "adaptive_no_more_steps": adaptive["backprop_steps"] <= fixed["backprop_steps"],
    }


def plot(ax: Any, rows: list[dict[str, Any]], period: int) -> None:
    """RMSE against backpropagation steps per observation, one point per run."""
    for r in rows:
        adaptive = r["k2"] == "adaptive"
        label = f"adaptive {ADAPTIVE['k2_min']}-{ADAPTIVE['k2_max']} (last K {r['advisor']['window']})"
        label = label if adaptive else f"k2 = {r['k2']}" + (" too short" if r["advisor"]["too_short"] else "")
        ax.plot(
            r["steps_per_observation"],
            r["rmse"]["model"],
            "*" if adaptive else "o",
            markersize=12 if adaptive else 7,
            label=label,
        )
    ax.axhline(rows[0]["rmse"]["best"], color="green", linestyle="--", label="best (value P steps back)")
    ax.axhline(rows[0]["rmse"]["ignorant"], color="red", linestyle="--", label="ignores P (running mean)")
    ax.set_xlabel("backpropagation steps per observation")
    ax.set_ylabel("RMSE, last 25 % of the stream")
    ax.set_title(f"(c) delayed echo, P = {period}, stateful, k1 = {K1}: fixed vs adaptive k2")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)


def table(rows: list[dict[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    headers = [
        "k2",
        "windows used (tick: K at each probe)",
        "updates",
        "backprop steps / obs.",
        "RMSE",
        "gap closed",
        "seconds",
        "advisor: bias",
        "recommended k2",
        "too short?",
    ]
    body = []
    for r in rows:
        trace = r["window_at_probes"]
        shown = ", ".join(f"{t}: {k}" for t, k in (trace[:3] + ([("…", trace[-1][1])] if len(trace) > 3 else [])))
        a = r["advisor"]
        body.append(
            [
                r["k2"],
                shown or "-",
                r["updates"],
                r["steps_per_observation"],
                r["rmse"]["model"],
                r["gap_closed"],
                r["seconds"],
                "unbounded" if a["bias_unbounded"] else a["relative_bias"],
                a["recommended_k2"],
                "yes" if a["too_short"] else "no",
            ]
        )
    return headers, body
