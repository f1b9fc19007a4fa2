"""Accuracy on real series: prequential one-step MAE/RMSE and MAE over horizons 1..12.

Each model sees each series once, value by value (forecast, then learn); nothing is
scored in the first 10 % (see ``benchmarks.prequential`` for the alignment). Our
forecaster runs with one fixed configuration for every series: the library's
defaults, stateful and stateless. A row marked TUNED was picked by looking at these
same series, so it is optimistic.

    python -m benchmarks.accuracy            # full size, under a minute
    python -m benchmarks.accuracy --smoke --out /tmp/bench
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import torch

from benchmarks import report
from benchmarks.contenders import DEFAULT, contenders
from benchmarks.prequential import evaluate
from benchmarks.real_series import RealSeries, all_series
from tbptt_online import ForecasterConfig

HORIZON = 12
WARMUP_SHARE = 0.10
SMOKE_LENGTH = 96
# Picked by hand out of five tries on airline, co2 and elnino (stateful and stateless, k1 in
# {1, 2}, lr in {3e-3, 1e-2}, gaussian or mse): stateless, one update per value, lr 1e-2.
TUNED: ForecasterConfig | None = dataclasses.replace(DEFAULT, mode="stateless", k1=1, lr=1e-2)


def score_series(series: RealSeries, tuned: ForecasterConfig | None) -> list[dict[str, Any]]:
    # At least one period, so that HoltWinters has started (on the full series 10 % always is).
    warmup = max(math.ceil(WARMUP_SHARE * len(series.values)), series.period)
    rows = []
    naive_mae = None
    for name, make in contenders(series.period, tuned).items():
        started = time.perf_counter()
        scores = evaluate(make(), series.values, warmup, HORIZON)
        if naive_mae is None:
            naive_mae = scores["one_step_mae"]  # the first contender is the naive last value
        rows.append(
            {
                "dataset": series.name,
                "model": name,
                "values": len(series.values),
                "warmup": warmup,
                **scores,
                "mae_over_naive": scores["one_step_mae"] / naive_mae,
                "seconds": round(time.perf_counter() - started, 2),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.accuracy", argv)
    torch.set_num_threads(1)  # one small series at a time: a second thread only adds overhead
    started = time.perf_counter()
    series_list = all_series()
    if args.smoke:
        series_list = [dataclasses.replace(s, values=s.values[:SMOKE_LENGTH]) for s in series_list]
    rows = [row for series in series_list for row in score_series(series, None if args.smoke else TUNED)]
    payload = {
        "benchmark": "accuracy",
        "smoke": args.smoke,
        "machine": info,
        "horizon": HORIZON,
        "warmup_share": WARMUP_SHARE,
        "series": [
            {"name": s.name, "values": len(s.values), "period": s.period, "source": s.source} for s in series_list
        ],
        "config_default": DEFAULT.to_dict(),
        "config_tuned": None if TUNED is None else TUNED.to_dict(),
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = render(payload)
    report.write(args.out, "accuracy", payload, markdown)
    print(markdown)
    return payload


def render(payload: dict[str, Any]) -> str:
    lines = [
        "## Accuracy on real series (prequential: forecast, then learn)",
        "",
        report.machine_line(payload["machine"]),
        "",
        "Scored after a 10 % warm-up. One step: MAE and RMSE of the forecast made just before each value. "
        f"h=1..{payload['horizon']}: the MAE of the forecasts made before a value of the next "
        f"{payload['horizon']} values, averaged over the horizons. Ours: the library's defaults "
        "(GRU hidden 64, k1 = 8, k2 = 32, Adam lr 1e-3, gaussian loss, normalised), one config for all series."
        + (
            ""
            if payload["config_tuned"] is None
            else f" TUNED: {payload['config_tuned']['mode']}, k1 = {payload['config_tuned']['k1']}, "
            f"lr = {payload['config_tuned']['lr']}, picked on these series (optimistic)."
        ),
        "",
    ]
    for s in payload["series"]:
        lines.append(f"- {s['name']}: {s['source']}; {s['values']} values, period {s['period']}")
    lines.append("")
    lines.append(
        report.markdown_table(
            ["dataset", "model", "1-step MAE", "1-step RMSE", "MAE / naive MAE", "MAE h=1..12", "seconds"],
            [
                [
                    r["dataset"],
                    r["model"],
                    r["one_step_mae"],
                    r["one_step_rmse"],
                    r["mae_over_naive"],
                    r["mean_horizon_mae"],
                    r["seconds"],
                ]
                for r in payload["rows"]
            ],
        )
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
