"""How often ``season_length="auto"`` reports a season in a series that has none.

Each detection is a test held to a false rate of 1 % (``season.detect_seasons``,
``young_season.young_seasons``), and a young series is tested at many steps (``hybrid.DETECT_AT``,
and ``hybrid.DETECT_UNSETTLED`` while it has none or a short one), so the share of seasonless series that
carry a false season at some point is larger than one test's. Per kind of seasonless series
(white noise, a random walk, an AR(1) of 0.7, an integrated AR(1) of 0.9, and three whose changes are
mostly 0: Poisson counts of mean 0.3, events of rate 0.05, and a counter of such events; seed 0), and a
control that has one (a quarterly sine of amplitude 2 under white noise: when it is found), ``SERIES``
series of ``VALUES`` values are fed together to one ``Forecaster(ForecasterConfig())``; after
each value the seasons of every series are read (``x_season_length``). Printed per kind: how many
series carried a season at some step, the share of (series, step) pairs with one, and how many
carry one at the last step.

A second table holds one detection (``season.detect_seasons``, as the hybrid calls it at value 384) on
``DETECTION_ROWS`` rows of ``DETECTION_VALUES`` values of each seasonless kind (drawn as above), and of
two sparse series that have a daily season of 24 (seed 1: Poisson counts of rate 0.3 (1 + sin), an
event at one hour on 3 days of 10 among rare ones): the share of rows with a season, and for the two
seasonal ones the share whose first season is 24 or a multiple of it.

    python -m benchmarks.false_seasons
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks import report
from tbptt_online import Forecaster, ForecasterConfig
from tbptt_online.season import detect_seasons

SERIES = 500
VALUES = 150
SMOKE = {"series": 20, "values": 40}
DETECTION_ROWS = 2000
DETECTION_VALUES = 384
SMOKE_DETECTION = {"rows": 50, "values": 96}
DAY = 24
CONTROL = "control: a season of 4"


def seasonless(series: int, values: int) -> dict[str, torch.Tensor]:
    """The seven kinds and the control, each [series, values] float64 (seed 0)."""
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(5, series, values, generator=generator, dtype=torch.float64)
    # (drawn after the noise: the first four kinds and the control are the same values as before they came)
    counts = torch.poisson(torch.full((series, values), 0.3, dtype=torch.float64), generator=generator)
    events = (torch.rand(series, values, generator=generator, dtype=torch.float64) < 0.05).to(torch.float64)
    ar, integrated = torch.zeros(series, values, dtype=torch.float64), torch.zeros(series, values, dtype=torch.float64)
    x, change, level = torch.zeros(series, dtype=torch.float64), torch.zeros(series, dtype=torch.float64), 0.0
    for t in range(values):
        x = 0.7 * x + noise[2, :, t]
        ar[:, t] = x
        change = 0.9 * change + noise[3, :, t]
        level = level + change
        integrated[:, t] = level
    return {
        "white noise": noise[0],
        "random walk": noise[1].cumsum(dim=1),
        "AR(1) 0.7": ar,
        "integrated AR(1) 0.9": integrated,
        "Poisson counts of mean 0.3": counts,
        "events of rate 0.05": events,
        "a counter of those events": events.cumsum(dim=1),
        CONTROL: 2.0 * torch.sin(torch.pi * torch.arange(values, dtype=torch.float64) / 2) + noise[4],
    }


def false_seasons(values: torch.Tensor) -> dict[str, Any]:
    """Feed the rows of ``values`` [R, T] to one forecaster; count the seasons it reports."""
    forecaster = Forecaster(ForecasterConfig())
    names = [f"s{i}" for i in range(values.shape[0])]
    ever = torch.zeros(values.shape[0], dtype=torch.bool)
    pairs = 0
    first: set[int] = set()  # the steps at which some series first carried one
    for t in range(values.shape[1]):
        forecaster.observe_many(list(zip(names, values[:, t].tolist(), strict=True)))
        slots = torch.tensor([forecaster.store.slot_of(name) for name in names])
        has = (forecaster.store.tensors["x_season_length"][slots][:, :, 0] > 0).any(dim=1)  # [R]
        if bool((has & ~ever).any()):
            first.add(t + 1)
        ever |= has
        pairs += int(has.sum())
    return {
        "series_ever": int(ever.sum()),
        "share_of_steps": pairs / values.numel(),
        "series_at_last_step": int(has.sum()),
        "first_steps": sorted(first),
    }


def detections(rows: int, values: int) -> list[dict[str, Any]]:
    """One detection of ``rows`` rows of ``values`` values per kind (seed 1): the share with a season,
    and of the two sparse seasonal kinds the share whose first season is ``DAY`` or a multiple of it."""
    kinds = seasonless(rows, values)
    del kinds[CONTROL]
    generator = torch.Generator().manual_seed(1)
    t = torch.arange(values, dtype=torch.float64)
    rate = torch.full((rows, values), 1.0, dtype=torch.float64) * 0.3 * (1 + torch.sin(2 * torch.pi * t / DAY))
    seasonal = {
        "Poisson counts of rate 0.3 (1 + sin), a day of 24": torch.poisson(rate, generator=generator),
        "an event at one hour on 3 days of 10, a day of 24": (
            ((t % DAY == 5) & (torch.rand(rows, values, generator=generator, dtype=torch.float64) < 0.3))
            | (torch.rand(rows, values, generator=generator, dtype=torch.float64) < 0.02)
        ).to(torch.float64),
    }
    out = []
    for kind, v in {**kinds, **seasonal}.items():
        first = detect_seasons(v, max_seasons=2, max_length=values // 3)[:, 0]  # [rows]
        daily = ((first > 0) & (first % DAY == 0)).double().mean().item() if kind in seasonal else None
        out.append({"kind": kind, "with_a_season": (first > 0).double().mean().item(), "daily": daily})
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.false_seasons", argv)
    size = SMOKE if args.smoke else {"series": SERIES, "values": VALUES}
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = [{"kind": kind, **false_seasons(v)} for kind, v in seasonless(size["series"], size["values"]).items()]
    one = SMOKE_DETECTION if args.smoke else {"rows": DETECTION_ROWS, "values": DETECTION_VALUES}
    detected = detections(one["rows"], one["values"])
    payload = {
        "benchmark": "false_seasons",
        "smoke": args.smoke,
        "machine": info,
        **size,
        "rows": rows,
        "detection": {**one, "rows_by_kind": detected},
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    markdown = "\n".join(
        [
            "## Seasons reported in series without one",
            "",
            report.machine_line(info),
            "",
            f"{size['series']} series of {size['values']} values per kind (seed 0), `ForecasterConfig()`, "
            "seasons read after every value.",
            "",
            report.markdown_table(
                ["kind", "series with a season at some step", "share of (series, step) with one", "at the last step"],
                [
                    [
                        r["kind"],
                        f"{r['series_ever']} of {size['series']}",
                        f"{100 * r['share_of_steps']:.2f} %",
                        r["series_at_last_step"],
                    ]
                    for r in rows
                ],
            ),
            "",
            f"One detection (`season.detect_seasons`) of {one['rows']} rows of {one['values']} values per kind:",
            "",
            report.markdown_table(
                ["kind", "rows with a season", f"rows whose first season is {DAY} or a multiple"],
                [
                    [
                        r["kind"],
                        f"{100 * r['with_a_season']:.2f} %",
                        "-" if r["daily"] is None else f"{100 * r['daily']:.2f} %",
                    ]
                    for r in detected
                ],
            ),
        ]
    )
    report.write(args.out, "false_seasons", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
