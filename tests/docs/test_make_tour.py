"""``docs/make_tour.py`` end to end on three days of the tour's file: a real server, the feed command,
the per-host figures and (where Debian's ``chromium`` and playwright are installed) the screenshot."""

from __future__ import annotations

import csv
import doctest
import importlib.util
import math
import shutil
from pathlib import Path

import pytest

from docs import make_tour

HOSTS = ["web-1", "web-2", "db-1", "batch-1"]
DAYS = 3
CAN_SCREENSHOT = (shutil.which("chromium") or shutil.which("chromium-browser")) is not None and bool(
    importlib.util.find_spec("playwright")
)


def first_days(source: Path, target: Path, days: int) -> int:
    """The first ``days`` days of every host (hourly rows), written as a CSV of the same columns."""
    with source.open(newline="") as file:
        rows = list(csv.DictReader(file))
    kept = [row for row in rows if row["timestamp"] < f"2024-03-{4 + days:02d}"]
    with target.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    return len(kept)


def test_the_doctests_of_make_tour_pass() -> None:
    assert doctest.testmod(make_tour).failed == 0


# A server, the feed command and chromium, each a process that imports its libraries: 19 s in CI (session 62),
# past 60 s at load 13 with 2 CPU hogs (session 63); a bound with room for that, a hang still ends at it.
@pytest.mark.timeout(240)
def test_the_tour_prints_every_host_with_numbers_and_takes_the_screenshot(tmp_path: Path) -> None:
    shortened = tmp_path / "three_days.csv"
    rows = first_days(make_tour.ROOT / make_tour.TOUR_CSV, shortened, DAYS)
    assert rows == len(HOSTS) * 24 * DAYS

    tour = make_tour.make_tour(shortened, tmp_path / "out", screenshot=CAN_SCREENSHOT)

    assert (tmp_path / "out" / "tour_output.txt").read_text() == tour.table
    block = (tmp_path / "out" / "tour_stats.txt").read_text()
    assert block == make_tour.stats_block(tour.hosts["web-1"].stats) + "\n"
    assert block.startswith('{"series": "web-1", "count": 72,') and '"name": "network",' in block
    lines = tour.table.splitlines()
    assert lines[0] == f"model 'default': {rows} rows in the file, {rows} sent, 0 already on the server (skipped)."
    table = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert sorted(table) == sorted([*HOSTS, "all"])
    for host in HOSTS:
        count, *errors = table[host][:6]
        assert count == str(24 * DAYS)
        assert all(math.isfinite(float(e)) and float(e) > 0 for e in errors), table[host]
    assert sorted(tour.hosts) == sorted(HOSTS)
    for figures in tour.hosts.values():
        assert figures.cycle.day == 24
        assert math.isfinite(figures.stats.relative_mae) and math.isfinite(figures.cycle.correlation)
    assert "MAE/naive <= 0.8 on every host" in make_tour.report(tour)
    if CAN_SCREENSHOT:
        assert tour.screenshot is not None and tour.screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert tour.screenshot is None
