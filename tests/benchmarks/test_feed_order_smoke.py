"""The feed-order benchmark runs end to end at its smoke size: a real server, the real ``feed`` CLI.

Speed is never asserted: only that every row reached each model, in each of the four runs, and that a file
sorted by series and merged by time learns what the file sorted by time does (the same requests).
"""

from __future__ import annotations

from tests.benchmarks.smoke import run_smoke


def test_feed_order_smoke_feeds_every_row_in_each_order_and_merged_runs_learn_alike(tmp_path):
    payload = run_smoke("feed_order", tmp_path)
    runs = {(run["sorted_by"], run["in_file_order"]): run for run in payload["runs"]}
    assert sorted(runs) == [("series", False), ("series", True), ("time", False), ("time", True)]
    assert all(run["held"] == 4 * 30 and run["observations_per_s"] > 0 for run in runs.values())
    merged = runs[("series", False)]["mae_over_naive"]
    assert merged == runs[("time", False)]["mae_over_naive"] == runs[("time", True)]["mae_over_naive"]
