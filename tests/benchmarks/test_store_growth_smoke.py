"""The store growth benchmark runs end to end at its smoke size, as CI runs it.

Speed is never asserted: only that each case grew the store past its held rows, with both growths.
"""

from __future__ import annotations

from tests.benchmarks.smoke import run_smoke


def test_store_growth_smoke_grows_the_store_with_both_growths(tmp_path):
    payload = run_smoke("store_growth", tmp_path)
    assert [(r["held"], r["growth"]) for r in payload["runs"]] == [(300, "cat"), (300, "grown")]
    for run in payload["runs"]:
        assert run["batch"] == 500 and run["rows_after"] > run["rows_before"] >= 300
        assert run["batch_s"] > 0 and run["tick_after_s"] > 0
