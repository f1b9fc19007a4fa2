"""The truncation wall: how long must k2 be to learn a dependency of known length P?

Three streams whose only predictive dependency is P = 20 steps long (see
``benchmarks.wall_streams``): (a) the seasonal random walk the issue specifies, (a') a
seasonal AR(1) at lag P whose shape renews too fast to be memorised, (b) a delayed echo.
Each is learnt online with k2 in {5, 10, 20, 40} and k1 = k2 // 2, in stateful and
stateless mode, every run with the same observation budget (S series fed in T ticks). At
that budget stateless makes S times as many updates as stateful (it updates every k1
observations of the model, stateful every k1 ticks), so on (a') and (b) a third run,
stateful with S times the ticks, has as many updates as stateless, to tell the budget
apart from the truncation. (a) has no third run: it learns at every k2 in both modes (the
weights memorise its slowly drifting shape), so it tests no truncation, and the time is
better spent on the streams that do. The score is the prequential error of the one-step
forecasts over the last 25 % of the ticks, beside the best possible predictor and one that
ignores the dependency. ``gap closed`` = (ignorant - model) / (ignorant - best): 0 for a
model no better than ignoring the dependency, 1 for the best possible. Part (c)
(``benchmarks.truncation_adaptive``): the truncation advisor and ``k2="adaptive"`` on the echo.

    python -m benchmarks.truncation_wall            # full size, about 8 minutes on 2 cores
    python -m benchmarks.truncation_wall --smoke --out /tmp/bench"""

from __future__ import annotations

import dataclasses
import functools
import math
import multiprocessing
import time
from typing import Any

import torch

from benchmarks import report
from benchmarks import truncation_adaptive as part_c
from benchmarks.wall_streams import best_and_ignorant, delayed_echo, seasonal_ar, seasonal_random_walk
from tbptt_online import Forecaster, ForecasterConfig

PERIOD = 20
K2_VALUES = (5, 10, 20, 40)
# (run label, mode, ticks multiplied by the number of series?)
RUNS = (
    ("stateful", "stateful", False),
    ("stateless", "stateless", False),
    ("stateful, S x ticks (as many updates)", "stateful", True),
)
PHI = 0.9  # (a')'s seasonal AR coefficient: the shape renews every 1 / (1 - PHI) = 10 periods
STREAMS = {
    "seasonal_random_walk": seasonal_random_walk,
    "seasonal_ar": functools.partial(seasonal_ar, phi=PHI),
    "delayed_echo": delayed_echo,
}
STREAMS_WITH_LONGER_RUN = ("seasonal_ar", "delayed_echo")  # not (a): it tests no truncation
SCORED_SHARE = 0.25  # the final quarter of the ticks
# The first round's defaults (GRU 64) but a larger step size (3e-3), so that something can be learnt within
# a budget of minutes; the same for every run. (1e-2 made stateless k2 = 40 fail to learn.)
# The wall is a property of the network's truncated gradient: the network-only forecaster (no experts)
BASE = ForecasterConfig(
    cell="gru", hidden_size=64, optimizer="adam", lr=3e-3, loss="gaussian", seed=0, hybrid=False, warmup_updates=0
)
FULL = {"n_series": 8, "ticks": 4000}
SMOKE = {"n_series": 2, "ticks": 60}


@dataclasses.dataclass(frozen=True)
class Job:
    stream: str
    run: str
    mode: str
    k2: int
    n_series: int
    ticks: int

    @property
    def config(self) -> ForecasterConfig:
        n_features = 2 if self.stream == "delayed_echo" else 1
        return dataclasses.replace(BASE, mode=self.mode, k2=self.k2, k1=max(1, self.k2 // 2), n_features=n_features)


def _errors(forecasts: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    err = forecasts - truth  # [T', S]
    return {"rmse": float(err.pow(2).mean().sqrt()), "mae": float(err.abs().mean())}


def run_job(job: Job) -> dict[str, Any]:
    """Learn one stream online with one (mode, k2); score the final quarter."""
    torch.set_num_threads(1)  # two jobs share the two cores
    x = STREAMS[job.stream](job.ticks, job.n_series, PERIOD, seed=0)  # [T, S, d]
    scored = 1 if job.stream == "delayed_echo" else 0  # the feature that is scored
    forecaster = Forecaster(job.config)
    names = [f"{job.stream}-{i}" for i in range(job.n_series)]
    made = torch.empty(job.ticks, job.n_series, dtype=torch.float64)  # [T, S] forecast before each value
    started = time.perf_counter()
    for t in range(job.ticks):
        values = x[t, :, 0].tolist() if x.shape[2] == 1 else x[t].tolist()
        results = forecaster.observe_many(list(zip(names, values, strict=True)))
        means = [r.forecast_made.mean for r in results]  # None: no forecast of a series' first value
        picked = [m if scored == 0 or m is None else m[scored] for m in means]
        made[t] = torch.tensor([math.nan if m is None else m for m in picked], dtype=torch.float64)
    seconds = time.perf_counter() - started
    first = job.ticks - max(1, int(SCORED_SHARE * job.ticks))
    truth = x[first:, :, scored]
    best, ignorant = (f[first:] for f in best_and_ignorant(job.stream, x, PERIOD, PHI))
    model, best_err, ignorant_err = _errors(made[first:], truth), _errors(best, truth), _errors(ignorant, truth)
    gap = ignorant_err["rmse"] - best_err["rmse"]
    stats = forecaster.update_stats()
    return {
        **dataclasses.asdict(job),
        "k1": job.config.k1,
        "observations": job.ticks * job.n_series,
        "updates": stats.updates,
        "skipped_updates": stats.skipped,
        "windows_per_update": job.n_series if job.mode == "stateful" else job.config.replay_batch,
        "model": model,
        "best": best_err,
        "ignorant": ignorant_err,
        "gap_closed": (ignorant_err["rmse"] - model["rmse"]) / gap,
        "seconds": round(seconds, 1),
    }


def run_any(job: Job | part_c.EchoJob) -> dict[str, Any]:
    return run_job(job) if isinstance(job, Job) else part_c.run_echo_job(job, SCORED_SHARE)


def run_all(jobs: list[Job], echo_jobs: list[part_c.EchoJob], workers: int) -> tuple[list[dict], list[dict]]:
    """The wall's rows in the order of ``jobs``, part (c)'s in the order of ``echo_jobs``."""

    # The longest runs first (stateless: replay_batch windows every k1 observations).
    def cost(job: Job | part_c.EchoJob) -> tuple[int, int]:
        if isinstance(job, Job):
            return (-job.ticks * job.n_series * (4 if job.mode == "stateless" else 1), -job.k2)
        return (-job.ticks * job.n_series * 2, 0)

    ordered = sorted([*jobs, *echo_jobs], key=cost)
    if workers == 1:
        done = [run_any(job) for job in ordered]
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            done = pool.map(run_any, ordered, chunksize=1)
    rows = [r for r in done if "stream" in r]
    order = [(job.stream, job.run, job.k2) for job in jobs]
    keys = [(j.rule, j.seed) for j in echo_jobs]
    echo = sorted((r for r in done if "stream" not in r), key=lambda r: keys.index((r["rule"], r["seed"])))
    return sorted(rows, key=lambda r: order.index((r["stream"], r["run"], r["k2"]))), echo


def plot(rows: list[dict[str, Any]], echo: list[dict[str, Any]], path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, all_axes = plt.subplots(1, len(STREAMS) + 1, figsize=(21, 5.8))
    axes = all_axes[: len(STREAMS)]
    part_c.plot(all_axes[-1], echo, PERIOD)
    titles = {
        "seasonal_random_walk": f"(a) seasonal random walk, P = {PERIOD}",
        "seasonal_ar": f"(a') seasonal AR, phi = {PHI}, P = {PERIOD}",
        "delayed_echo": f"(b) delayed echo (feature 2), P = {PERIOD}",
    }
    for ax, stream in zip(axes, STREAMS, strict=True):
        mine = [r for r in rows if r["stream"] == stream]
        label = "last value" if stream == "seasonal_random_walk" else "running mean"
        for (run, _, longer), colour, marker in zip(RUNS, ("C0", "C1", "C4"), "os^", strict=True):
            points = [r for r in mine if r["run"] == run]
            if not points:  # (a) has no longer run
                continue
            style = ":" if longer else "-"
            ax.plot([r["k2"] for r in points], [r["model"]["rmse"] for r in points], style, marker=marker, color=colour)
            ax.plot([], [], style, marker=marker, color=colour, label=run)
            if longer:  # scored later in a longer stream; its baselines are within 0.5 % of the others
                continue
            for r in points:  # how many updates each point had: the budget is in observations
                ax.annotate(
                    f"{r['updates']} upd.",
                    (r["k2"], r["model"]["rmse"]),
                    fontsize=7,
                    xytext=(4, 4),
                    textcoords="offset points",
                    color=colour,
                )
        first = next(r for r in mine if r["run"] == RUNS[0][0])
        ax.axhline(first["best"]["rmse"], color="green", linestyle="--", label="best (value P steps back)")
        ax.axhline(first["ignorant"]["rmse"], color="red", linestyle="--", label=f"ignores P ({label})")
        ax.axvline(PERIOD, color="grey", linestyle=":", label="k2 = P")
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(K2_VALUES), [str(k) for k in K2_VALUES])
        if stream == "seasonal_random_walk":
            ax.set_yscale("log")
        ax.set_xlabel("k2 (k1 = k2 // 2)")
        ax.set_ylabel("RMSE, last 25 % of the stream")
        ax.set_title(titles[stream])
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = report.parser(__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, help=f"series per run (default {FULL['n_series']})")
    parser.add_argument("--ticks", type=int, help=f"ticks per run (default {FULL['ticks']})")
    parser.add_argument("--echo-ticks", type=int, help=f"ticks per run of part (c) (default {part_c.FULL['ticks']})")
    args = parser.parse_args(argv)
    info = report.machine("benchmarks.truncation_wall", argv)
    budget = dict(SMOKE if args.smoke else FULL)
    budget.update({k: v for k, v in (("n_series", args.series), ("ticks", args.ticks)) if v is not None})
    started = time.perf_counter()
    jobs = [
        Job(s, run, mode, k, budget["n_series"], budget["ticks"] * (budget["n_series"] if longer else 1))
        for s in STREAMS
        for run, mode, longer in RUNS
        if not longer or s in STREAMS_WITH_LONGER_RUN
        for k in K2_VALUES
    ]
    echo_budget = dict(part_c.SMOKE if args.smoke else part_c.FULL)
    if args.echo_ticks is not None:
        echo_budget["ticks"] = args.echo_ticks
    echo_jobs = part_c.jobs(echo_budget["n_series"], echo_budget["ticks"], PERIOD, BASE, echo_budget["seeds"])
    rows, echo = run_all(jobs, echo_jobs, workers=1 if args.smoke else min(2, info["cores"] or 1))
    payload = {
        "benchmark": "truncation_wall",
        "smoke": args.smoke,
        "machine": info,
        "period": PERIOD,
        "phi": PHI,
        "budget": {**budget, "observations_per_run": budget["n_series"] * budget["ticks"]},
        "scored_share": SCORED_SHARE,
        "config_base": BASE.to_dict(),
        "rows": rows,
        "adaptive": {
            "budget": echo_budget,
            "config": {"k1": part_c.K1, **part_c.ADAPTIVE, "k2_max": part_c.CEILINGS},
            "rows": echo,
            "acceptance": part_c.acceptance(echo, PERIOD),
        },
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    plot(rows, echo, args.out / "truncation_wall.png")
    markdown = render(payload)
    report.write(args.out, "truncation_wall", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    b = payload["budget"]
    table = [
        [
            r["stream"],
            r["run"],
            r["k2"],
            r["k1"],
            r["updates"],
            r["windows_per_update"],
            r["model"]["rmse"],
            r["best"]["rmse"],
            r["ignorant"]["rmse"],
            r["gap_closed"],
            r["seconds"],
        ]
        for r in payload["rows"]
    ]
    return "\n".join(
        [
            "## The truncation wall",
            "",
            report.machine_line(payload["machine"]),
            "",
            f"P = {payload['period']}; every run: {b['n_series']} series x {b['ticks']:,} ticks = "
            f"{b['observations_per_run']:,} observations (the third run: {b['n_series']} x the ticks); "
            f"GRU hidden 64, Adam lr {payload['config_base']['lr']}, "
            "gaussian loss, normalised inputs; k1 = k2 // 2. RMSE over the last 25 % of the ticks, all series. "
            f"Best: the value P steps back (times phi = {payload['phi']} for (a')). "
            "Ignores P: the last value (a), the running mean (a') and (b). "
            "(a) has no third run (it tests no truncation: see the module's docstring).",
            "",
            report.markdown_table(
                [
                    "stream",
                    "run",
                    "k2",
                    "k1",
                    "updates",
                    "windows/update",
                    "RMSE",
                    "best RMSE",
                    "ignores-P RMSE",
                    "gap closed",
                    "seconds",
                ],
                table,
            ),
            "",
            *render_adaptive(payload),
            "",
            "![error against k2](truncation_wall.png)",
        ]
    )


def render_adaptive(payload: dict[str, Any]) -> list[str]:
    part = payload["adaptive"]
    b, c, ok = part["budget"], part["config"], part["acceptance"]
    headers, body = part_c.table(part["rows"])
    mean_headers, mean_body = part_c.means_table(part["rows"])
    verdicts = [f"- {r['rule']}, seed {r['seed']}: {r['advisor']['verdict']}" for r in part["rows"]]
    ceilings = [
        f"adaptive <= {ceiling}: mean RMSE / fixed 2P's = {a['rmse_over_fixed_2P']:.3f} (per seed "
        f"{', '.join(f'{v:.3f}' for v in a['rmse_over_fixed_2P_per_seed'])}; within 10 %: {a['within_10_percent']}), "
        f"backprop steps {a['steps_over_fixed_2P']:.2f}x fixed 2P's (no more: {a['no_more_steps']})"
        for ceiling, a in ok["adaptive"].items()
    ]
    four = ok.get("fixed_4P")
    longer = (
        f" Fixed 4P (the window past 2P that the bias bound asks for): mean RMSE / fixed 2P's = "
        f"{four['rmse_over_fixed_2P']:.3f} at {four['steps_over_fixed_2P']:.2f}x its backprop steps; the advisor "
        f"called it too short in {four['too_short_by_the_advisor']} and biased in {four['biased_by_the_advisor']} of "
        f"{len(b['seeds'])} runs."
        if four
        else ""
    )
    return [
        f"### (c) The advisor and adaptive truncation on the delayed echo (P = {payload['period']})",
        "",
        f"Stateful, {b['n_series']} series x {b['ticks']:,} ticks, k1 = {c['k1']} for every run; adaptive: "
        f"k2_min = {c['k2_min']}, k2_max = {' or '.join(map(str, c['k2_max']))}, truncation_bias = "
        f"{c['truncation_bias']}; fixed 2P, fixed 4P and the adaptive runs at seeds {', '.join(map(str, b['seeds']))} "
        "(the network's initial weights). Backprop steps: the length of each replayed window times the windows, "
        "summed over the updates.",
        "",
        report.markdown_table(headers, body),
        "",
        report.markdown_table(mean_headers, mean_body),
        "",
        f"Acceptance, as measured: the advisor flags k2 <= P as too short: {ok['flags_k2_up_to_P_as_too_short']}; "
        f"k2 = 2P long enough: {ok['k2_2P_sufficient']} (its bias bound above truncation_bias in "
        f"{ok['k2_2P_biased']} of {len(b['seeds'])} runs: longer recommended for the gradient, not for the data); "
        + "; ".join(ceilings)
        + "."
        + longer,
        "",
        "The advisor's verdicts at the end of each run:",
        "",
        *verdicts,
    ]


if __name__ == "__main__":
    main()
