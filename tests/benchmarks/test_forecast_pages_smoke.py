"""The forecast-pages benchmark runs end to end at its smoke size: a real server, the Python client.

Speed is never asserted: only that each way read every series' forecast in every round.
"""

from __future__ import annotations

from tests.benchmarks.smoke import run_smoke


def test_forecast_pages_smoke_reads_every_series_each_way_each_round(tmp_path):
    payload = run_smoke("forecast_pages", tmp_path)
    assert payload["series"] == 4 and payload["rounds"] == 2
    assert sorted(payload["seconds"]) == ["a GET per series", "pages of 1,000", "pages of 100"]
    assert all(len(times) == 2 and min(times) > 0 for times in payload["seconds"].values())
