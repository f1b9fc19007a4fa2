"""How long a batch of new series takes when the store grows for them, against the growth of before.

A forecaster of ``ForecasterConfig()`` holds ``held`` series (``TICKS`` values each), then takes one
``observe_many`` of ``BATCH`` new series (one value each), which doubles its store's rows past the
held ones; then one more value of every new series (no growth: the tick's own cost). Each case is
run with the store's growth as it is (``SeriesStore._grown``: each field made empty, its rows copied
and a blank row repeated) and with the growth of before session 49 (``torch.cat`` of the fields and
``_blank`` of the new rows, which zeroed and wrote every new page twice and the old rows once more),
one after the other in this process, on one torch thread. A service's model takes no other write
while a batch runs: a hostile test's POST of 5,000 new series held the model's other writes for up
to 2.5 s (session 47).

    python -m benchmarks.store_growth [--smoke] [--out DIR]
"""

from __future__ import annotations

import gc
import time
from typing import Any

import torch

from benchmarks import report
from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.series_store import SeriesStore

CASES = (4_000, 12_000)  # series held before the batch: it grows the store to 16,384 and to 32,768 rows
SMOKE = {"cases": (300,), "batch": 500}
BATCH = 5_000  # the service's default max_batch_observations
TICKS = 3  # values of each held series before the batch


def grown_by_cat(store: SeriesStore, rows: int) -> dict[str, torch.Tensor]:
    """The growth of before session 49: the fields and ``rows - capacity`` blank rows concatenated."""
    extra = store._blank(rows - store.capacity)
    return {k: torch.cat([v, extra[k]]) for k, v in store.tensors.items()}


def measured(held: int, batch: int, by_cat: bool) -> dict[str, Any]:
    """One case (the module doc): the batch's seconds, the tick after it, the rows before and after."""
    model = Forecaster(ForecasterConfig())
    if by_cat:
        model.store._grown = lambda rows: grown_by_cat(model.store, rows)  # this store only
    names = [f"h{i}" for i in range(held)]
    for t in range(TICKS):
        model.observe_many([(name, float((i + t) % 7)) for i, name in enumerate(names)])
    rows_before = model.store.capacity
    new = [(f"n{i}", float(i % 5)) for i in range(batch)]
    started = time.perf_counter()
    model.observe_many(new)
    batch_s = time.perf_counter() - started
    started = time.perf_counter()
    model.observe_many([(name, value + 1.0) for name, value in new])
    return {
        "held": held,
        "batch": batch,
        "growth": "cat" if by_cat else "grown",
        "rows_before": rows_before,
        "rows_after": model.store.capacity,
        "batch_s": round(batch_s, 3),
        "tick_after_s": round(time.perf_counter() - started, 3),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.store_growth", argv)
    torch.set_num_threads(1)
    cases = SMOKE["cases"] if args.smoke else CASES
    batch = SMOKE["batch"] if args.smoke else BATCH
    started = time.perf_counter()
    runs = []
    for held in cases:
        for by_cat in (True, False):
            runs.append(measured(held, batch, by_cat))
            gc.collect()  # the forecaster's gigabytes freed before the next (a case after one not yet freed took 4x)
    payload = {
        "benchmark": "store_growth",
        "smoke": args.smoke,
        "machine": info,
        "runs": runs,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## A batch of new series that grows the store",
            "",
            report.machine_line(info),
            "",
            f"`ForecasterConfig()`, one torch thread: one `observe_many` of {batch:,} new series after the held "
            f"ones ({TICKS} values each), then their next values (no growth), with the growth of before session 49 "
            "(`cat`) and as it is (`grown`), in one process.",
            "",
            report.markdown_table(
                ["series held", "growth", "rows before", "rows after", "the batch, s", "the next tick, s"],
                [
                    [r["held"], r["growth"], r["rows_before"], r["rows_after"], r["batch_s"], r["tick_after_s"]]
                    for r in runs
                ],
            ),
        ]
    )
    print(markdown)
    report.write(args.out, "store_growth", payload, markdown)
    return payload


if __name__ == "__main__":
    main()
