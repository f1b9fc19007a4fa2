"""How often ``season_length="auto"`` serves the true season of a seasonal series.

The other side of ``benchmarks.false_seasons``: series whose period is known. Per kind
(a sine of period 7, 12, 24 or 52 under Gaussian noise of sd 0, 0.3, 0.5 or 1 times its
amplitude; a daily plateau, 8 of 24 hours high, under noise; a daily sine with a weekly
pattern of levels, a weekend 2 lower: seasons 24 and 168; seed 0), ``SERIES`` series of
``VALUES`` values are fed together to one ``Forecaster(ForecasterConfig())``. At each of
``READ_AT`` values the first season each series serves is read (``series_stats(...).seasons``):
printed, the share serving the true one, and at the last value how many serve a multiple of it,
a neighbour (one lag off), none, or another; for the two-season kind, also how many serve both.

    python -m benchmarks.true_seasons
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from benchmarks import report
from tbptt_online import Forecaster, ForecasterConfig

SERIES = 20
VALUES = 1200
READ_AT = (100, 200, 400, 800, 1200)
SMOKE = {"series": 4, "values": 60, "read_at": (30, 60)}
PERIODS = (7, 12, 24, 52)
NOISES = (0.0, 0.3, 0.5, 1.0)


def kinds(series: int, values: int) -> list[tuple[str, list[int], torch.Tensor]]:
    """(name, true seasons, values [series, values] float64) per kind (seed 0)."""
    generator = torch.Generator().manual_seed(0)
    t = torch.arange(values, dtype=torch.float64)
    out = []
    for period in PERIODS:
        for noise in NOISES:
            e = torch.randn(series, values, generator=generator, dtype=torch.float64)
            out.append(
                (f"sine {period}, noise {noise}", [period], 10 + torch.sin(2 * math.pi * t / period) + noise * e)
            )
    e = torch.randn(series, values, generator=generator, dtype=torch.float64)
    plateau = 10 + 2.0 * ((t % 24 >= 9) & (t % 24 < 17)).double()  # 8 busy hours a day
    out.append(("daily plateau 8 of 24, noise 0.5", [24], plateau + 0.5 * e))
    e = torch.randn(series, values, generator=generator, dtype=torch.float64)
    weekend = -2.0 * (t % 168 >= 120).double()  # the last two days of each week lower
    out.append(
        (
            "daily sine and a weekend 2 lower, noise 0.5",
            [24, 168],
            10 + torch.sin(2 * math.pi * t / 24) + weekend + 0.5 * e,
        )
    )
    return out


def served_seasons(values: torch.Tensor, read_at: tuple[int, ...]) -> dict[int, list[list[int]]]:
    """Feed the rows of ``values`` [R, T] to one forecaster; the seasons each serves at ``read_at``."""
    forecaster = Forecaster(ForecasterConfig())
    names = [f"s{i}" for i in range(values.shape[0])]
    seen = {}
    for t in range(values.shape[1]):
        forecaster.observe_many(list(zip(names, values[:, t].tolist(), strict=True)))
        if t + 1 in read_at:
            seen[t + 1] = [forecaster.series_stats(name).seasons for name in names]
    return seen


def verdict(served: list[int], true: list[int]) -> str:
    """How a series' served seasons ``served`` stand to the ``true`` ones, by the first season."""
    if not served:
        return "none"
    first, period = served[0], true[0]
    if first == period:
        return "true"
    if first % period == 0:
        return "multiple"
    if abs(first - period) == 1:
        return "neighbour"
    return "other"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = report.arguments(__doc__.splitlines()[0], argv)
    info = report.machine("benchmarks.true_seasons", argv)
    size = SMOKE if args.smoke else {"series": SERIES, "values": VALUES, "read_at": READ_AT}
    torch.set_num_threads(1)
    started = time.perf_counter()
    rows = []
    for name, true, values in kinds(size["series"], size["values"]):
        seen = served_seasons(values, size["read_at"])
        last = seen[size["read_at"][-1]]
        counts = {
            v: sum(verdict(s, true) == v for s in last) for v in ("true", "multiple", "neighbour", "none", "other")
        }
        rows.append(
            {
                "kind": name,
                "true": true,
                "true_share": {str(at): sum(s[:1] == true[:1] for s in seen[at]) / len(seen[at]) for at in seen},
                "at_last": counts,
                "both_at_last": sum(s == true for s in last) if len(true) > 1 else None,
                "served_at_last": sorted({tuple(s) for s in last}),
            }
        )
    payload = {
        "benchmark": "true_seasons",
        "smoke": args.smoke,
        "machine": info,
        **size,
        "rows": rows,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    at = size["read_at"]
    markdown = "\n".join(
        [
            "## Seasons served in series with a known one",
            "",
            report.machine_line(info),
            "",
            f"{size['series']} series of {size['values']} values per kind (seed 0), `ForecasterConfig()`; "
            f"the share serving the true first season after {', '.join(map(str, at))} values, and at the last "
            "value how many serve a multiple of it, a neighbour (one lag off), none or another.",
            "",
            report.markdown_table(
                ["kind", *[f"true at {a}" for a in at], "multiple", "neighbour", "none", "other", "both seasons"],
                [
                    [
                        r["kind"],
                        *[f"{100 * r['true_share'][str(a)]:.0f} %" for a in at],
                        r["at_last"]["multiple"],
                        r["at_last"]["neighbour"],
                        r["at_last"]["none"],
                        r["at_last"]["other"],
                        "" if r["both_at_last"] is None else f"{r['both_at_last']} of {size['series']}",
                    ]
                    for r in rows
                ],
            ),
        ]
    )
    report.write(args.out, "true_seasons", payload, markdown)
    print(markdown)
    return payload


if __name__ == "__main__":
    main()
