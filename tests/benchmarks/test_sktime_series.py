"""The ten series read from an sktime wheel (benchmarks/sktime_series.py): each CSV column read
with its period, nothing of the wheel run, a missing wheel named with the command that fetches it,
a value that is no number or a file the wheel lacks named."""

from __future__ import annotations

import re
import zipfile

import pytest

from benchmarks.sktime_series import ROOT, SERIES, VERSION, sktime_series

COLUMNS = {  # each file's header as sktime ships it (a first column without a name where it has one)
    "seatbelts/seatbelts.csv": ",KSI,label",
    "PBS_dataset/PBS_dataset.csv": "Month,Scripts",
    "solar/solar.csv": "datetime_gmt,solar_gen",
    "yahoo/yahoo.csv": "data,label",
    "mitdb/mitdb.csv": "data,label",
    "Uschange/Uschange.csv": ",Quarter,Consumption,Income,Production,Savings,Unemployment",
}
ROWS = {
    "seatbelts/seatbelts.csv": ["1969-01-01,1687,0", "1969-02-01,1508,0"],
    "PBS_dataset/PBS_dataset.csv": ["1991 Jul,1", "1991 Aug,0"],
    "solar/solar.csv": ["2021-05-01 00:00:00+00:00,0.0", "2021-05-01 00:30:00+00:00,0.00165"],
    "yahoo/yahoo.csv": ["-46.39,0", "311.35,1"],
    "mitdb/mitdb.csv": ["-0.195,0", "-0.21,0"],
    "Uschange/Uschange.csv": ["0,1970 Q1,0.61,0.97,-2.45,4.81,0.9", "1,1970 Q2,0.46,1.17,-0.55,7.29,0.5"],
}
RUN = "import os; os.remove('/etc/passwd')  # a module that ran would fail here\n"


def fake_wheel(folder, rows=ROWS, version=VERSION, skip=(), headers=COLUMNS):
    path = folder / f"sktime-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("sktime/datasets/__init__.py", RUN)
        for file, header in headers.items():
            if file not in skip:
                archive.writestr(ROOT + file, "\n".join([header, *rows[file]]) + "\n")
    return path


def test_every_series_is_read_from_its_column_with_its_period(tmp_path):
    found = {s.name: s for s in sktime_series(fake_wheel(tmp_path).parent)}
    assert list(found) == list(SERIES)
    assert found["seatbelts"].values == [1687.0, 1508.0]
    assert found["pbs"].values == [1.0, 0.0]
    assert found["solar"].values == [0.0, 0.00165]
    assert found["yahoo"].values == [-46.39, 311.35]
    assert found["mitdb"].values == [-0.195, -0.21]
    assert found["uschange_production"].values == [-2.45, -0.55]
    assert found["uschange_unemployment"].values == [0.9, 0.5]
    assert {name: s.period for name, s in found.items()} == {name: period for name, (_, _, period, _) in SERIES.items()}
    assert [found[name].period for name in ("seatbelts", "solar", "mitdb", "uschange_savings")] == [12, 48, 296, 4]
    assert found["pbs"].source.startswith("sktime pbs: monthly scripts")


def test_a_folder_without_the_wheel_names_the_command_that_fetches_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"pip download sktime=={VERSION} --no-deps -d {tmp_path}")):
        sktime_series(tmp_path)


def test_the_newest_wheel_is_chosen_by_version_number(tmp_path):
    for version, value in (("1.2.9", "9"), ("1.2.10", "10")):
        fake_wheel(tmp_path, {**ROWS, "yahoo/yahoo.csv": [f"{value},0"]}, version)
    assert {s.name: s.values for s in sktime_series(tmp_path)}["yahoo"] == [10.0]


def test_a_value_that_is_no_number_a_missing_column_or_file_is_named(tmp_path):
    broken = fake_wheel(tmp_path, {**ROWS, "solar/solar.csv": ["2021-05-01 00:00:00+00:00,0.0", "2021-05-01,"]})
    with pytest.raises(ValueError, match=re.escape("solar: row 3 of its file has '', not a finite number")):
        sktime_series(broken)
    broken.unlink()
    lacking = fake_wheel(tmp_path, skip=("yahoo/yahoo.csv",))
    with pytest.raises(ValueError, match=re.escape(f"has no {ROOT}yahoo/yahoo.csv")):
        sktime_series(lacking)
    lacking.unlink()
    renamed = fake_wheel(tmp_path, headers={**COLUMNS, "PBS_dataset/PBS_dataset.csv": "Month,Count"})
    why = "pbs: no column 'Scripts' in its file (columns: ['Month', 'Count'])"
    with pytest.raises(ValueError, match=re.escape(why)):
        sktime_series(renamed)


@pytest.mark.parametrize("cell", ["nan", "inf", "-Infinity"])
def test_a_value_that_is_not_finite_is_refused(tmp_path, cell):
    # a review: float() takes them, and they passed as values
    wheel = fake_wheel(tmp_path, {**ROWS, "yahoo/yahoo.csv": ["1.5,0", f"{cell},0"]})
    with pytest.raises(ValueError, match=re.escape(f"yahoo: row 3 of its file has '{cell}', not a finite number")):
        sktime_series(wheel)


def test_a_file_that_is_not_utf8_or_a_path_that_does_not_exist_is_named(tmp_path):
    # a review: the first came out as a raw UnicodeDecodeError, the second was taken for a folder to download into
    path = tmp_path / f"sktime-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for file, header in COLUMNS.items():
            text = ("\n".join([header, *ROWS[file]]) + "\n").encode()
            archive.writestr(ROOT + file, text + (b"1991 Sep,\xe9\n" if file.startswith("PBS") else b""))
    with pytest.raises(ValueError, match=re.escape(f"{ROOT}PBS_dataset/PBS_dataset.csv is not UTF-8 text")):
        sktime_series(path)
    missing = tmp_path / "sktime-9.9.9-py3-none-any.whl"
    with pytest.raises(FileNotFoundError, match=re.escape(f"{missing}: no such file or folder; pip download sktime==")):
        sktime_series(missing)


def test_a_file_that_is_no_wheel_is_named(tmp_path):
    bad = tmp_path / f"sktime-{VERSION}-py3-none-any.whl"
    bad.write_text("not a zip")
    with pytest.raises(ValueError, match=re.escape(f"is not a wheel (a zip archive): pip download sktime=={VERSION}")):
        sktime_series(bad)


def test_only_names_a_series_sktime_does_not_have_and_one_set_at_a_time(tmp_path, capsys):
    from benchmarks import accuracy

    fake_wheel(tmp_path)
    with pytest.raises(SystemExit, match="--only airline,bogus: not among --sktime's series seatbelts,"):
        accuracy.main(["--sktime", str(tmp_path), "--only", "pbs,airline,bogus", "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as refused:
        accuracy.main(["--sktime", str(tmp_path), "--pmdarima", str(tmp_path), "--out", str(tmp_path / "out")])
    assert refused.value.code == 2  # argparse's usage error, naming both
    assert "argument --pmdarima: not allowed with argument --sktime" in capsys.readouterr().err
