"""benchmarks.against_naive: a set's geometric means (all streams, the short ones) and calibrated cells
by hand, the comparison naming only streams that moved by more than 1 %, and the CLI's refusals."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.against_naive import compare, main, summary


def row(one: float, mean: float, n: int, cov: list[float]) -> dict:
    return {"one": one, "mean": mean, "n": n, "cov": cov}


def test_a_sets_summary_is_its_streams_geometric_means_and_its_cells_within_five_points():
    streams = {
        "a": row(0.5, 0.8, 100, [0.90, 0.84, 0.95]),  # 0.84 is 6 points off: not near
        "b": row(2.0, 0.2, 1000, [0.86, 0.94, 0.90]),
    }
    got = summary(streams)
    assert got["geo_one"] == pytest.approx(1.0) and got["geo_mean"] == pytest.approx(0.4)
    assert got["short"] == 1 and got["short_one"] == pytest.approx(0.5) and got["short_mean"] == pytest.approx(0.8)
    assert (got["cells_near"], got["cells"]) == (5, 6)
    assert got["streams"] is streams


def test_a_set_without_short_streams_has_no_short_means_and_writes_as_json():
    got = summary({"long": row(0.9, 0.9, 5000, [0.9, 0.9, 0.9])})
    assert got["short"] == 0 and got["short_one"] is None and got["short_mean"] is None
    assert json.loads(json.dumps(got, allow_nan=False))["geo_one"] == pytest.approx(0.9)


def test_the_comparison_names_each_set_and_only_the_streams_that_moved_more_than_one_percent():
    before = {"s": summary({"x": row(1.0, 1.0, 50, [0.9] * 3), "y": row(0.5, 0.5, 50, [0.9] * 3)})}
    after = {"s": summary({"x": row(1.005, 0.98, 50, [0.9] * 3), "y": row(0.5, 0.5, 50, [0.9] * 3)})}
    lines = compare(before, after)
    assert lines[0].startswith("s: 0.7071 / 0.7071, short (2)") and "->  0.7089 / 0.7000" in lines[0]
    assert lines[1:] == ["    x: mean 1.0000 -> 0.9800"]  # one step moved 0.5 %: not named; y did not move
    assert math.isclose(after["s"]["geo_mean"], math.sqrt(0.98 * 0.5))


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--sets", "nine,weekly"], "--sets weekly: not among nine,outside,pmdarima,sktime,heldout"),
        (["--sets", "heldout"], "--sets heldout read downloaded archives: give --wheels FOLDER"),
        (["--sets", "nine", "--config", '{"hiden_size": 4}'], "hiden_size"),
    ],
)
def test_a_bad_command_line_is_refused_naming_what_is_wrong(argv, named, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    said = capsys.readouterr().err
    assert named in said
