"""The seven series read from a pmdarima wheel (benchmarks/pmdarima_series.py): the literals
parsed, nothing of the wheel run, a missing wheel named with the command that fetches it."""

from __future__ import annotations

import re
import zipfile

import pytest

from benchmarks.pmdarima_series import SERIES, VERSION, array_literal, pmdarima_series

MODULE = '''"""A dataset.

    >>> np.array([9, 9, 9])  # an example in the docstring is text, not the data
"""
import numpy as np
import pandas as pd

from ..compat import DTYPE

RAN = open("/nonexistent")  # a module that runs would fail here


def load_{name}(as_series=False, dtype=DTYPE):
    rslt = np.array([
        {values}]).astype(dtype)
    if as_series:
        return pd.Series(rslt)
    return rslt
'''


def fake_wheel(folder, values: dict[str, str]):
    path = folder / f"pmdarima-{VERSION}-cp311-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name in SERIES:
            text = MODULE.format(name=name, values=values.get(name, "1., 2, 3.5"))
            archive.writestr(f"pmdarima/datasets/{name}.py", text)
    return path


def test_every_series_is_read_from_its_array_literal_with_its_period(tmp_path):
    fake_wheel(tmp_path, {"ausbeer": "284., 213.,\n 227., None", "heartrate": "84.2697, 84.2697, 84.0619"})
    found = {s.name: s for s in pmdarima_series(tmp_path)}
    assert list(found) == list(SERIES)
    assert found["ausbeer"].values == [284.0, 213.0, 227.0]  # the quarter not yet observed dropped
    assert found["heartrate"].values == [84.2697, 84.2697, 84.0619]
    assert found["taylor"].values == [1.0, 2.0, 3.5]
    assert {name: s.period for name, s in found.items()} == {name: period for name, (period, _) in SERIES.items()}
    assert found["lynx"].source.startswith("pmdarima lynx: ")


def test_a_wheel_file_can_be_named_instead_of_its_folder(tmp_path):
    wheel = fake_wheel(tmp_path, {})
    assert [len(s.values) for s in pmdarima_series(wheel)] == [3] * len(SERIES)


def test_a_folder_without_the_wheel_names_the_command_that_fetches_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=re.escape(f"pip download pmdarima=={VERSION} --no-deps -d")):
        pmdarima_series(tmp_path)


def test_a_missing_value_inside_a_series_or_no_literal_is_refused_by_name():
    with pytest.raises(ValueError, match="lynx: a missing value inside the series"):
        array_literal("import numpy as np\nx = np.array([1, None, 3])", "lynx")
    with pytest.raises(ValueError, match=re.escape("taylor: no np.array")):
        array_literal("x = [1, 2, 3]", "taylor")
    with pytest.raises(ValueError):  # a name in the list is no literal: not evaluated
        array_literal("import numpy as np\nx = np.array([1, open('/etc/passwd')])", "wineind")


def test_the_newest_wheel_is_chosen_by_version_number_not_by_name(tmp_path):
    # sorted by name, 2.0.9 came after 2.0.10 (a review)
    for version, value in (("2.0.9", "9."), ("2.0.10", "10.")):
        with zipfile.ZipFile(tmp_path / f"pmdarima-{version}-cp311-none-any.whl", "w") as archive:
            for name in SERIES:
                archive.writestr(f"pmdarima/datasets/{name}.py", MODULE.format(name=name, values=value))
    assert pmdarima_series(tmp_path)[0].values == [10.0]


def test_a_file_that_is_no_wheel_or_lacks_a_module_is_named(tmp_path):
    bad = tmp_path / "pmdarima-2.1.1-cp311-none-any.whl"
    bad.write_text("not a zip")
    with pytest.raises(ValueError, match="is not a wheel"):
        pmdarima_series(bad)
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("pmdarima/datasets/taylor.py", MODULE.format(name="taylor", values="1."))
    with pytest.raises(ValueError, match=re.escape("has no pmdarima/datasets/wineind.py")):
        pmdarima_series(bad)


def test_only_names_a_series_pmdarima_does_not_have(tmp_path):
    # --only airline with --pmdarima divided by zero after scoring nothing; bogus names were ignored
    from benchmarks import accuracy

    fake_wheel(tmp_path, {})
    with pytest.raises(SystemExit, match="--only airline,bogus: not among --pmdarima's series taylor,"):
        accuracy.main(["--pmdarima", str(tmp_path), "--only", "lynx,airline,bogus", "--out", str(tmp_path / "out")])
