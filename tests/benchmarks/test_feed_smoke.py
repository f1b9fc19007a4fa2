"""The one-series feed benchmark runs end to end at its smoke size: a real server, the real ``feed`` CLI.

Speed is never asserted: only that every row reached the server and both paths were measured.
"""

from __future__ import annotations

from tests.benchmarks.smoke import run_smoke


def test_feed_one_series_smoke_feeds_every_row_and_measures_both_paths(tmp_path):
    payload = run_smoke("feed_one_series", tmp_path)
    assert payload["feed"]["held"] == payload["rows"] == 60
    assert payload["library"]["observations_per_s"] > 0 and payload["feed"]["observations_per_s"] > 0
    assert payload["feed"]["server_cpu_seconds"] is None or payload["feed"]["server_cpu_seconds"] > 0
    assert payload["feed"]["printed"][-1].split()[:2] == ["s", "60"]  # the feed's report: series s, 60 values
