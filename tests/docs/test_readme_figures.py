"""README's benchmark figures against the results files they come from: the accuracy table is
made from ``benchmarks/results/accuracy.json`` (``accuracy_render.readme_table``), those of the sets
outside it from theirs (``accuracy_render.outside_table``), and each
benchmark heading's date is its results file's (an audit, session 39, found a coverage range
that never matched its file and headings dated to earlier runs of regenerated files)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks.accuracy_render import outside_table, readme_table

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
RESULTS = ROOT / "benchmarks" / "results"
# a heading naming the command and the date of the run it shows: "### Title — `python -m benchmarks.NAME ...` (DATE"
HEADING = re.compile(
    r"^#{3,4} .* — `python -m benchmarks\.(\w+)([^`]*)` \((\d{4}-\d\d-\d\d \d\d:\d\d) UTC", re.MULTILINE
)
NOT_DATED = {"cluster_load": "its results file, of 2026-12-01, was written before the benchmark recorded its machine"}


def headings() -> list[tuple[str, str]]:
    """(results file stem, date) of each dated benchmark heading."""
    found = []
    for name, arguments, date in HEADING.findall(README):
        stem = f"{name}_pmdarima" if "--pmdarima" in arguments else name
        stem = f"{name}_sktime" if "--sktime" in arguments else stem
        stem = f"{stem}_mixed" if "--part mixed" in arguments else stem
        found.append((stem, date))
    return found


def test_readme_shows_the_accuracy_table_made_from_the_results_file():
    payload = json.loads((RESULTS / "accuracy.json").read_text())
    assert readme_table(payload) in README


@pytest.mark.parametrize("stem", ["accuracy_pmdarima", "accuracy_sktime", "heldout_series"])
def test_readme_shows_the_outside_sets_tables_made_from_their_results_files(stem):
    payload = json.loads((RESULTS / f"{stem}.json").read_text())
    assert outside_table(payload) in README


def test_every_benchmark_section_is_found():
    stems = [stem for stem, _ in headings()]
    assert {
        "throughput",
        "accuracy",
        "accuracy_pmdarima",
        "accuracy_sktime",
        "heldout_series",
        "timestamp_gaps",
    } <= set(stems)
    assert "truncation_wall" in stems
    assert {"http_load_mixed", "feed_one_series", "cluster_load"} <= set(stems)


@pytest.mark.parametrize(("stem", "date"), headings())
def test_a_benchmark_headings_date_is_its_results_files(stem, date):
    if stem in NOT_DATED:
        pytest.skip(NOT_DATED[stem])
    machine = json.loads((RESULTS / f"{stem}.json").read_text())["machine"]
    assert machine["date_utc"][:16] == date, f"README's {stem} heading says {date}, the file {machine['date_utc']}"
