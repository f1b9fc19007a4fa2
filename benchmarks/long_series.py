"""Long-lived series: does a forecast stay as good after tens of thousands of values as after a few thousand?

A monitoring or IoT stream lives for months: 20,000 hourly values are 2.3 years. The accuracy
sets' series have 89 to 7,500 values, so what drifts slowly in the carried state (the rounding of a
recursive least-squares P, a count, a discounted sum) never shows there: the AR experts' P drifted
from symmetry by 1 / 0.995 a value and was indefinite by value 10,000 (session 43, ``rls.py``).
Synthetic streams (seed 0), each fed prequentially to a fresh ``Forecaster(ForecasterConfig())``
(forecast, then learn): per block of ``BLOCK`` values, the one-step MAE / naive MAE of the served
forecast, of each AR expert alone and of each seasonal family's trend member (read from the model's
own ring of past forecasts, as ``benchmarks.members`` reads it: with a season longer than 25 or 41 the
seasons' loop through the trend amplified, session 43, ``expert_kernels.TREND_STABLE``), and at the
end, per AR expert, how far its P is from symmetric (``|P - P'|`` over its largest entry) and its
smallest eigenvalue over its largest magnitude.

    python -m benchmarks.long_series [--smoke] [--out DIR]
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from benchmarks import report
from benchmarks.members import SERVED, recorded
from tbptt_online import Forecaster, ForecasterConfig, experts, hybrid

LENGTH = 20_000
BLOCK = 5_000
SMOKE_LENGTH, SMOKE_BLOCK = 600, 200
AR_EXPERTS = ("ar", "ar_changes", "ar_levels", "ar_short")
TRENDS = ("trend_a0.2_g0.1", "trend_a0.2_g0.4")  # each seasonal family's trend member: its seasons' loop
SHOWN = (*AR_EXPERTS, *TRENDS)


def streams(n: int) -> dict[str, np.ndarray]:
    """The synthetic streams, ``n`` values each (seed 0)."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    wander = np.cumsum(rng.normal(0.0, 0.1, n))
    noise = np.zeros(n)
    shocks = rng.normal(0.0, 2.0, n)
    for i in range(1, n):
        noise[i] = 0.7 * noise[i - 1] + shocks[i]
    day = np.exp(-((((t % 24) - 13) / 4.0) ** 2))  # a daily peak at 13:00...
    week = np.where((t // 24) % 7 >= 5, 0.5, 1.0)  # ...half as high at weekends
    return {
        "weekly, a trend and a wandering level": 300 + 0.01 * t + 3 * np.sin(2 * np.pi * t / 52) + wander
        + rng.normal(0.0, 0.5, n),
        "hourly CPU: a daily cycle under AR(1) noise": 40 + 20 * np.maximum(np.sin(2 * np.pi * (t % 24) / 24), 0)
        + noise,
        "hourly demand: daily peaks, quiet weekends, a slow trend": 100 + 50 * day * week + 0.001 * t + 0.5 * noise,
    }  # fmt: skip


def run(y: np.ndarray, block: int) -> dict[str, Any]:
    """Per block: the one-step MAE / naive MAE of the served forecast and of each AR expert alone;
    at the end, each AR expert's P: its distance from symmetric and its smallest eigenvalue (relative)."""
    forecaster, n = Forecaster(ForecasterConfig()), len(y)
    made = recorded(forecaster, y)[:n, 0]  # [n, columns]: made[t], the one-step forecasts of value t (0-based)
    columns = {"served": SERVED, **{name: hybrid.MEMBERS.index(name) for name in SHOWN}}
    blocks = []
    for start in range(0, n, block):
        first = max(start, 1)
        naive = np.abs(y[first : start + block] - y[first - 1 : start + block - 1]).mean()
        errors = {k: float(np.abs(y[first : start + block] - made[first : start + block, c]).mean() / naive)
                  for k, c in columns.items()}  # fmt: skip
        blocks.append({"values": f"{start + 1}-{min(start + block, n)}", **errors})
    slot = forecaster.store.slot_of("y")
    health = {}
    for key in experts.FITS:
        p = forecaster.store.tensors[key][slot, 0].to(torch.float64)
        eigenvalues = torch.linalg.eigvalsh((p + p.T) / 2)
        health[key] = {
            "asymmetry": float((p - p.T).abs().max() / p.abs().max()),
            "smallest_eigenvalue": float(eigenvalues[0] / eigenvalues.abs().max()),
        }
    return {"blocks": blocks, "p": health}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.long_series", argv)
    n, block = (SMOKE_LENGTH, SMOKE_BLOCK) if args.smoke else (LENGTH, BLOCK)
    started = time.perf_counter()
    rows = {name: run(y, block) for name, y in streams(n).items()}
    payload = {
        "benchmark": "long_series",
        "smoke": args.smoke,
        "machine": info,
        "values": n,
        "block": block,
        "streams": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    lines = [
        "## Long-lived series",
        "",
        report.machine_line(info),
        "",
        f"{n} values per stream (seed 0), `ForecasterConfig()`, prequential; one-step MAE / naive MAE per block "
        f"of {block} values (the first block from value 2), the served forecast, each AR expert alone and "
        "each seasonal family's trend member.",
    ]
    for name, found in rows.items():
        lines += [
            "",
            f"### {name}",
            "",
            report.markdown_table(
                ["values", "served", *SHOWN],
                [[b["values"], b["served"], *(b[k] for k in SHOWN)] for b in found["blocks"]],
            ),
            "",
            "Each AR expert's P at the end: |P - P'| / max |P|, and its smallest eigenvalue / its largest magnitude: "
            + "; ".join(
                f"`{key}` {h['asymmetry']:.1e}, {h['smallest_eigenvalue']:.1e}" for key, h in found["p"].items()
            ),
        ]
    markdown = "\n".join(lines)
    report.write(args.out, "long_series", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
