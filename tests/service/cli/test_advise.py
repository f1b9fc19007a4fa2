"""``tbptt-online advise FILE.csv``: the truncation advisor on a CSV read offline."""

from __future__ import annotations

import csv
import json
import math
import random
import re
from pathlib import Path

import pytest

from tbptt_service.cli import main as cli
from tbptt_service.cli.advise import read_series
from tbptt_service.cli.csv_source import CsvSource


def write_echo(path: Path, lag: int = 20, values: int = 300) -> Path:
    """Two series of two features each: ``echo`` (feature 2 is feature 1 ``lag`` steps before)
    and ``noise`` (independent), interleaved by time as a feed file is; one cell missing."""
    rng = random.Random(3)
    first = [rng.gauss(0.0, 1.0) for _ in range(values + lag)]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["t", "name", "x", "x_before"])
        for t in range(values):
            echo = [f"{first[t + lag]:.6f}", f"{first[t]:.6f}"]
            writer.writerow([t, "echo", *(["", echo[1]] if t == 100 else echo)])
            writer.writerow([t, "noise", f"{rng.gauss(0.0, 1.0):.6f}", f"{rng.gauss(0.0, 1.0):.6f}"])
    return path


ARGS = ["--series-column", "name", "--value-column", "x", "--value-column", "x_before", "--time-column", "t"]


def test_a_k2_shorter_than_the_echo_is_flagged_with_the_window_that_reaches_it(tmp_path, capsys) -> None:
    path = write_echo(tmp_path / "echo.csv")
    assert cli.main(["advise", str(path), *ARGS, "--k1", "4", "--k2", "16", "--config", '{"hidden_size": 8}']) == 0
    out = capsys.readouterr().out
    assert "2 series, 300 to 300 values each, 2 feature(s)" in out  # the missing cell is a value still
    assert "echo 20, noise 0" in out
    # every loss an update scores (the last k1 = 4 of the window) must see 20 steps back: 24
    assert "recommended: k1 = 4, k2 = 24: 6.0 backpropagation steps per observation, 1.5x per update" in out
    assert "k2 = 16 is too short for the dependency of 20 steps found in 1 of 2 series" in out


def test_a_k2_long_enough_is_kept_and_json_gives_the_whole_report(tmp_path, capsys) -> None:
    path = write_echo(tmp_path / "echo.csv")
    assert cli.main(["advise", str(path), *ARGS, "--k1", "4", "--k2", "32", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dependencies"] == {"echo": 20, "noise": 0}
    assert (report["k1"], report["k2"], report["recommended_k2"], report["cost_ratio"]) == (4, 32, 32, 1.0)
    assert report["extra_bytes_per_series"] == 0 and report["verdict"].startswith("k2 = 32 is long enough")


def test_a_bad_cell_or_config_is_an_error_naming_it(tmp_path, capsys) -> None:
    path = tmp_path / "typo.csv"
    path.write_text("t,name,x\n0,a,1.0\n1,a,abc\n")
    assert cli.main(["advise", str(path), "--series-column", "name", "--value-column", "x"]) == 1
    assert "typo.csv, line 3, column 'x': 'abc' is invalid" in capsys.readouterr().err
    path.write_text("t,name,x\n0,a,1.0\n")
    assert cli.main(["advise", str(path), "--series", "a", "--value-column", "x", "--config", '{"k3": 1}']) == 1
    assert "unknown config field(s) ['k3']" in capsys.readouterr().err


def test_the_console_script_offers_advise(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.build_parser().parse_args(["advise", "--help"])
    assert done.value.code == 0
    assert "usage: tbptt-online advise" in capsys.readouterr().out


def test_a_file_of_very_short_series_gets_a_report_not_an_internal_error(tmp_path, capsys) -> None:
    # fix: under 6 values a series has no season to test; the advisor's season search refused its
    # own arguments ("max_length must be >= min_length = 2, got 0")
    path = tmp_path / "short.csv"
    path.write_text("t,name,x\n0,a,1.0\n0,b,5.0\n1,a,2.0\n")
    assert cli.main(["advise", str(path), "--series-column", "name", "--value-column", "x"]) == 0
    out = capsys.readouterr().out
    assert "2 series, 1 to 2 values each, 1 feature(s)" in out
    assert "dependency length (longest season or significant lag; 0: none): a 0, b 0" in out
    assert "season found (length: series): none: 2" in out
    assert "verdict: k2 = 32 is long enough for what was found: no dependency found in 2 series." in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty\.csv: the file is empty; it needs a header row naming its columns"),
        (
            b"name,x\na,1\na," + b"1" * 200_000 + b"\n",
            r"empty\.csv, line 3: unreadable CSV: field larger than field limit",
        ),
        (b"name,x\n\xe9t\xe9,1\n", r"empty\.csv: not UTF-8 text \(invalid continuation byte\); save the file as UTF-8"),
    ],
)
def test_an_unreadable_file_is_an_error_naming_it_not_a_traceback(tmp_path, capsys, content, message) -> None:
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    assert cli.main(["advise", str(path), "--series-column", "name", "--value-column", "x"]) == 1
    err = capsys.readouterr().err
    assert re.search(f"^tbptt-online advise: error: .*{message}", err), err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[1]", "'[1]' is invalid: must be a JSON object"),  # was "'list' object is not a mapping"
        ("nope", "'nope' is invalid: not JSON (Expecting value"),  # was "invalid loads value: 'nope'"
    ],
)
def test_a_config_that_is_no_json_object_is_named(tmp_path, capsys, config, message) -> None:
    path = write_echo(tmp_path / "echo.csv", values=30)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["advise", str(path), *ARGS, "--config", config])
    assert exit_.value.code == 2  # argparse's usage error
    assert f"argument --config: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "k1", "k2"),
    [
        (["--config", '{"k2": 64}'], 8, 64),  # was k2 = 32: the flags' defaults replaced --config's k1 and k2
        (["--config", '{"k1": 4, "k2": 16}'], 4, 16),
        (["--k1", "2", "--config", '{"k2": 12}'], 2, 12),
        (["--k2", "12", "--config", '{"k2": 12, "hidden_size": 8}'], 8, 12),  # the same value twice is fine
        ([], 8, 32),  # the library's defaults
    ],
)
def test_config_k1_and_k2_are_the_ones_advised_on(tmp_path, capsys, flags, k1, k2) -> None:
    path = write_echo(tmp_path / "echo.csv", values=120)
    assert cli.main(["advise", str(path), *ARGS, "--json", *flags]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["k1"], report["k2"], report["window"]) == (k1, k2, k2)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--config", '{"k1": 0}'], "k1=0 is invalid"),  # was advised on with k1 = 8, the value unchecked
        (["--k2", "16", "--config", '{"k2": 64}'], '--k2 16 and --config\'s "k2": 64 disagree'),
        (["--config", '{"n_features": 3}'], "--config's \"n_features\": 3 is not the file's 2 value column(s)"),
    ],
)
def test_a_config_that_cannot_be_advised_on_is_an_error_naming_it(tmp_path, capsys, flags, message) -> None:
    path = write_echo(tmp_path / "echo.csv", values=30)
    assert cli.main(["advise", str(path), *ARGS, *flags]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tbptt-online advise: error: ") and message in err, err


def test_memory_figures_follow_the_config(tmp_path, capsys) -> None:
    path = write_echo(tmp_path / "echo.csv")
    extra = {}
    for hidden in (8, 64):
        config = json.dumps({"hidden_size": hidden, "k1": 4, "k2": 16})
        assert cli.main(["advise", str(path), *ARGS, "--json", "--config", config]) == 0
        extra[hidden] = json.loads(capsys.readouterr().out)["extra_bytes_per_series"]
    assert 0 < extra[8] < extra[64]  # k2 16 -> 24 keeps 8 more steps of a larger state per series


def test_many_series_name_the_ten_longest_dependencies_only(tmp_path, capsys) -> None:
    # fix: the dependency line named every series (10,000 series: one line of 100 KB)
    path = tmp_path / "many.csv"
    rows = ["t,name,x"] + [f"{t},s{i},{(t * (i + 1)) % 7}" for t in range(3) for i in range(12)]
    path.write_text("\n".join(rows) + "\n")
    assert cli.main(["advise", str(path), "--series-column", "name", "--value-column", "x"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("dependency length"))
    named = ", ".join(f"s{i} 0" for i in range(10))  # all 0 (3 values each): the first ten, in file order
    tail = "(the 10 longest of 12 series; --json lists them all)"
    assert line == f"dependency length (longest season or significant lag; 0: none): {named} {tail}"


def test_an_adaptive_config_is_shown_as_its_range_and_the_k2_max_recommended(tmp_path, capsys) -> None:
    # The text said "given: k1 = 4, k2 = 8" and "recommended: k1 = 4, k2 = 24" where the verdict
    # said k2_max = 24: an adaptive model has no k2 to set.
    path = write_echo(tmp_path / "echo.csv")
    config = '{"hidden_size": 8, "k2": "adaptive", "k2_min": 8, "k2_max": 16}'
    assert cli.main(["advise", str(path), *ARGS, "--k1", "4", "--config", config]) == 0
    out = capsys.readouterr().out
    assert "given:       k1 = 4, k2 = adaptive 8..16, window 8: 2.0 backpropagation steps per observation" in out
    assert "recommended: k1 = 4, k2_max = 24, window 24: 6.0 backpropagation steps per observation" in out
    assert "k2_max = 24 would cost 3.0x per update at its ceiling" in out


def test_a_series_gaps_in_time_are_filled_as_the_server_fills_them(tmp_path, capsys) -> None:
    """A new user (session 50): a logger's export drops the rows of an outage, and ``advise`` read the values in
    file order: a 15-minute sensor's daily season (96) was not found, where the server, which fills the gaps,
    found it. 10 days of a daily cycle, 60 readings dropped in 6 outages, and a series without times."""
    rng = random.Random(7)
    dropped = {t for start in (150, 300, 420, 610, 700, 850) for t in range(start, start + 10)}
    path = tmp_path / "sensor.csv"
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["time", "sensor", "celsius"])
        for t in range(960):
            if t not in dropped:
                writer.writerow(
                    [1_700_000_000 + 900 * t, "s", f"{20 + 4 * math.sin(2 * math.pi * t / 96) + rng.gauss(0, 0.3):.3f}"]
                )
    args = ["--series-column", "sensor", "--value-column", "celsius", "--time-column", "time", "--json"]
    assert cli.main(["advise", str(path), *args]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["seasons"] == {"96": 1}, report["seasons"]
    assert cli.main(["advise", str(path), "--series-column", "sensor", "--value-column", "celsius", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["seasons"] != {"96": 1}  # without times: the rows as they come


def read(path: Path, *value_columns: str, time_column: str | None = None) -> tuple[list[str], list[list[list]]]:
    """``read_series`` of ``path`` (series column ``name``): the names, each series' rows, NaN as None."""
    source = CsvSource.from_path(
        str(path), value_columns=list(value_columns), series_column="name", series_name=None, time_column=time_column
    )
    names, series = read_series(source)
    return names, [[[None if math.isnan(v) else v for v in row] for row in values.tolist()] for values in series]


def test_each_series_is_handed_on_as_its_own_rows_in_file_order(tmp_path) -> None:
    """What the advisor gets of a file of series of three lengths: each series' rows as the file gives them,
    a missing cell None, the steps of a gap filled (as before session 51, less the padding at the start that
    made every series as long as the longest)."""
    path = tmp_path / "mixed.csv"
    rows = [f"{60 * t},a,{t},{10 + t}" for t in range(10)]  # a cadence of 60 s, known after 9 values
    rows[1:1] = ["0,b,,20", "60,c,7,70"]
    rows += ["120,b,5,", "720,a,12,22", "180,b,6,60"]  # a: 720 s is 3 steps after 540 s, 2 missing
    path.write_text("t,name,x,y\n" + "\n".join(rows) + "\n")
    names, series = read(path, "x", "y", time_column="t")
    assert names == ["a", "b", "c"]
    assert series == [
        [[t, 10 + t] for t in range(10)] + [[None, None], [None, None], [12, 22]],
        [[None, 20], [5, None], [6, 60]],
        [[7, 70]],
    ]


def test_many_short_series_beside_a_long_one_are_held_at_their_own_lengths(tmp_path) -> None:
    """A hostile test (session 51): every series was NaN-padded to the longest before the advisor grouped
    them by length, so 10,000 one-value series beside one of 20,000 values (a CSV of 309 KB) took 1.6 GB of
    padding and 4.0 GB at the peak. 2,000 beside 5,000 made 2,001 x 5,000 values; the file holds 7,000."""
    path = tmp_path / "wide.csv"
    rows = [f"long,{i % 7}" for i in range(5000)] + [f"s{i},1" for i in range(2000)]
    path.write_text("name,x\n" + "\n".join(rows) + "\n")
    names, series = read_series(
        CsvSource.from_path(str(path), value_columns=["x"], series_column="name", series_name=None, time_column=None)
    )
    assert len(names) == 2001
    assert sum(values.numel() for values in series) == 7000
