"""The accuracy benchmark's markdown: ratios to naive per dataset, coverage, geometric means, tally."""

from __future__ import annotations

from typing import Any

from benchmarks import report
from benchmarks.accuracy_summary import COLUMNS, RIVER_BEST, covered_ok, verdicts
from benchmarks.contenders import HOLT_WINTERS, OURS, SEASONAL_NAIVE, SNARIMAX

METRIC_TITLES = {"one_step": "one step", "horizon": "h=1..{horizon}"}


def render(payload: dict[str, Any]) -> str:
    horizon, level = payload["horizon"], payload["level"]
    overrides = payload["config_overrides"]
    ours = "`ForecasterConfig()` defaults" if not overrides else f"`ForecasterConfig(**{overrides})` (NOT the defaults)"
    lines = [
        "## Accuracy on real series (prequential: forecast, then learn)",
        "",
        report.machine_line(payload["machine"]),
        "",
        f"Scored after a warm-up of 10 % of each series (at least one season). One step: the MAE of the forecast "
        f"made just before each value. h=1..{horizon}: the MAE of the forecasts made before a value of the next "
        f"{horizon} values, averaged over the horizons. Every figure is the MAE divided by the naive last value's "
        f"(same metric, same stream). river's HoltWinters and SNARIMAX are given the true season length and run over "
        f"a grid; "
        f"each column shows the grid's best configuration **on that stream and metric, chosen in hindsight** "
        f"(optimistic for river). Ours: {ours}, one config for all series. server_metrics: the mean over its hosts "
        f"(each host's river best chosen on that host).",
        "",
    ]
    lines += [f"- {s['name']}: {s['source']}; {s['values']} values, season {s['period']}" for s in payload["series"]]
    for metric, title in METRIC_TITLES.items():
        lines += ["", f"### MAE / naive MAE, {title.format(horizon=horizon)}", "", ratio_table(payload, metric)]
    lines += ["", f"### Interval coverage of ours at level {level:.0%} (flagged: more than 5 points off)", ""]
    lines.append(coverage_table(payload))
    lines += ["", "### Geometric mean over datasets of MAE / naive MAE", ""]
    means = payload["tally"]["geometric_mean"]
    lines.append(
        report.markdown_table(
            ["", *COLUMNS], [[title.format(horizon=horizon), *means[m].values()] for m, title in METRIC_TITLES.items()]
        )
    )
    lines += ["", tally_lines(payload), "", timing_line(payload)]
    if set(README_NAMES) <= {d["name"] for d in payload["datasets"]}:  # the nine (not pmdarima's, not --only)
        lines += ["", "### README's table (`accuracy_render.readme_table`)", "", readme_table(payload)]
    return "\n".join(lines)


README_NAMES = {  # dataset -> README's name for it, the nine in README's order
    "airline": "airline",
    "co2": "co2 weekly",
    "elnino": "elnino",
    "waterflow": "waterflow",
    "sunspots": "sunspots yearly",
    "nile": "nile",
    "elec_equip": "elec_equip",
    "trump_approval": "TrumpApproval",
    "server_metrics": "server_metrics",
}


def readme_table(payload: dict[str, Any]) -> str:
    """README's accuracy table, made from the results as they are (a test checks README holds it):
    per dataset river's best and ours at one step and at h=1..H, the lower of each pair in bold
    (ours where equal), and ours' coverage at the coverage horizons; a dataset of several streams
    gives each coverage as the range over its streams.

    >>> pair(0.21001, 0.20947), pair(0.917, 0.7991), pair(1.0, 1.0)
    (('0.2100', '**0.2095**'), ('0.917', '**0.799**'), ('1.000', '**1.000**'))
    >>> pair(0.2096, 0.2104)  # equal at 3 decimals, not equal
    ('**0.2096**', '0.2104')
    """
    horizon, horizons = payload["horizon"], payload["coverage_horizons"]
    level = round(100 * payload["level"])
    rows = []
    for dataset in sorted(payload["datasets"], key=lambda d: list(README_NAMES).index(d["name"])):
        streams = [s for s in payload["streams"] if s["dataset"] == dataset["name"]]
        values = f"{int(dataset['values'])} × {len(streams)}" if len(streams) > 1 else str(int(dataset["values"]))
        season = str(dataset["period"]) if dataset["period"] > 1 else "none"
        one, many = (pair(dataset["ratio"][m][RIVER_BEST], dataset["ratio"][m][OURS]) for m in METRIC_TITLES)
        coverage = " / ".join(_percent_range([s["coverage"][i] for s in streams]) for i in range(len(horizons)))
        rows.append([f"{README_NAMES[dataset['name']]} ({values}, {season})", *one, *many, coverage])
    means = payload["tally"]["geometric_mean"]
    one, many = (pair(means[m][RIVER_BEST], means[m][OURS]) for m in METRIC_TITLES)
    rows.append(["**geometric mean**", *one, *many, ""])
    at = " / ".join(str(h) for h in horizons)
    headers = [
        "dataset (values, season)",
        "one step: river best",
        "ours",
        f"h=1..{horizon}: river best",
        "ours",
        f"coverage of {level} % at h = {at}",
    ]
    return report.markdown_table(headers, rows)


def outside_table(payload: dict[str, Any]) -> str:
    """README's table of a set outside the nine (``--pmdarima``, ``--sktime``), made from its results
    as they are (a test checks README holds it): per series, in the results' order, river's best and
    ours and the seasonal naive at one step and at h=1..H (the lower of river's and ours in bold), and
    ours' coverage at the coverage horizons (in bold where it is more than 5 points off)."""
    horizon, horizons, level = payload["horizon"], payload["coverage_horizons"], payload["level"]

    def cells(ratios: dict[str, dict[str, float]]) -> list[str]:  # per metric: river's best, ours, seasonal naive
        out = []
        for m in METRIC_TITLES:
            out += [*pair(ratios[m][RIVER_BEST], ratios[m][OURS]), f"{ratios[m][SEASONAL_NAIVE]:.3f}"]
        return out

    rows = []
    for dataset in payload["datasets"]:
        season = str(dataset["period"]) if dataset["period"] > 1 else "none"
        coverage = [f"{100 * c:.1f}" if covered_ok(c, level) else f"**{100 * c:.1f}**" for c in dataset["coverage"]]
        name = f"{dataset['name']} ({int(dataset['values'])}, {season})"
        rows.append([name, *cells(dataset["ratio"]), " / ".join(coverage)])
    rows.append(["**geometric mean**", *cells(payload["tally"]["geometric_mean"]), ""])
    headers = ["series (values, season)", "one step: river best", "ours", "seasonal naive"]
    headers += [f"h=1..{horizon}: river best", "ours", "seasonal naive"]
    headers.append(f"coverage of {round(100 * level)} % at h = {' / '.join(str(h) for h in horizons)}")
    return report.markdown_table(headers, rows)


def pair(river: float, ours: float) -> tuple[str, str]:
    """river's best and ours, 3 decimals (4 where 3 would show them a digit apart or equal while
    they differ), the lower in bold (ours where equal)."""
    digits = 3
    if river != ours and abs(round(river * 1000) - round(ours * 1000)) <= 1:
        digits = 4
    text = [f"{river:.{digits}f}", f"{ours:.{digits}f}"]
    lower = 1 if ours <= river else 0
    text[lower] = f"**{text[lower]}**"
    return text[0], text[1]


def _percent_range(values: list[float]) -> str:
    low, high = f"{100 * min(values):.1f}", f"{100 * max(values):.1f}"
    return low if low == high else f"{low}–{high}"


def ratio_table(payload: dict[str, Any], metric: str) -> str:
    rows = []
    for dataset in payload["datasets"]:
        members = [s for s in payload["streams"] if s["dataset"] == dataset["name"]]
        if len(members) > 1:
            rows += [ratio_row(s, metric, judged=False) for s in members]
        rows.append(ratio_row(dataset, metric, judged=True, level=payload["level"]))
    headers = [
        "dataset",
        "n",
        "P",
        "naive MAE",
        "seasonal naive",
        "HoltWinters best",
        "SNARIMAX best",
        "river best",
        "ours",
    ]
    return report.markdown_table([*headers, "ours <= river best", "ours < naive", "ours < s. naive"], rows)


def ratio_row(summary: dict[str, Any], metric: str, judged: bool, level: float = 0.9) -> list[Any]:
    ratio, config = summary["ratio"][metric], summary["best_config"][metric]
    name = summary["name"] if summary["streams"] == 1 else f"**{summary['name']}** (mean of {summary['streams']})"
    row = [
        name,
        round(summary["values"]),
        summary["period"],
        summary["naive_mae"][metric],
        ratio[SEASONAL_NAIVE],
        f"{ratio[HOLT_WINTERS]:.3f} ({config[HOLT_WINTERS]})",
        f"{ratio[SNARIMAX]:.3f} ({config[SNARIMAX]})",
        ratio[RIVER_BEST],
        ratio[OURS],
    ]
    if not judged:
        return [*row, "", "", ""]
    verdict = verdicts(summary, level)
    keys = (f"le_river_best_{metric}", f"lt_naive_{metric}", f"lt_seasonal_naive_{metric}")
    return [*row, *("yes" if verdict[key] else "**no**" for key in keys)]


def coverage_table(payload: dict[str, Any]) -> str:
    level, horizons = payload["level"], payload["coverage_horizons"]

    def cell(value: float) -> str:
        return f"{value:.1%}" if covered_ok(value, level) else f"**{value:.1%}** (off)"

    rows = []
    for dataset in payload["datasets"]:
        members = [s for s in payload["streams"] if s["dataset"] == dataset["name"]]
        shown = (members if len(members) > 1 else []) + [dataset]
        for summary in shown:
            name = summary["name"] if summary["streams"] == 1 else f"**{summary['name']}** (mean)"
            rows.append([name, *(cell(c) for c in summary["coverage"])])
    return report.markdown_table(["dataset", *(f"h={h}" for h in horizons)], rows)


def tally_lines(payload: dict[str, Any]) -> str:
    tally, n = payload["tally"], payload["tally"]["datasets"]
    need = "" if n != 9 else " (target: at least 7 of 9)"
    return "\n".join(
        [
            "### Acceptance tally (issue 10)",
            "",
            f"- ours <= river best, one step: {tally['le_river_best_one_step']} of {n}",
            f"- ours <= river best, h=1..{payload['horizon']}: {tally['le_river_best_horizon']} of {n}",
            f"- ours <= river best on both: {tally['le_river_best_both']} of {n}{need}",
            f"- ours < naive on both: {tally['lt_naive_both']} of {n} (target: all)",
            f"- ours < seasonal naive on both: {tally['lt_seasonal_naive_both']} of {n} (target: all)",
            f"- coverage within 5 points of {payload['level']:.0%} at h={payload['coverage_horizons']}: "
            f"{tally['coverage_ok']} of {n} (target: all)",
        ]
    )


def timing_line(payload: dict[str, Any]) -> str:
    seconds = payload["seconds_per_family"]
    failed = [r for r in payload["rows"] if r["error"] is not None]
    streams, grids = payload["series"], []
    for family in (HOLT_WINTERS, SNARIMAX):
        sizes = [sum(r["family"] == family and r["stream"] == s["name"] for r in payload["rows"]) for s in streams]
        grids.append(f"{family} {min(sizes)}" + (f" to {max(sizes)}" if max(sizes) > min(sizes) else ""))
    return (
        f"Configurations per stream: {', '.join(grids)} (fewer without a season, or with a value <= 0: "
        f"no multiplicative Holt-Winters; see `benchmarks/contenders.py`). {len(failed)} runs "
        "failed or diverged and were left out of the best (listed in the JSON with their error). "
        "Seconds per contender family: "
        + ", ".join(f"{family} {s}" for family, s in seconds.items())
        + f"; wall {payload['wall_seconds']} s."
    )
