"""A downloaded wheel to read data from without installing it: the file named, or the newest of a
package's wheels in a folder (``benchmarks.pmdarima_series``, ``benchmarks.sktime_series``)."""

from __future__ import annotations

import zipfile
from pathlib import Path


def wheel_in(path: Path, package: str, version: str) -> Path:
    """``path`` itself when it is a file, else the newest ``PACKAGE-*.whl`` in the folder (by
    version number: 2.0.10 after 2.0.9); a path that does not exist, a folder without one and a
    file that is not a zip archive are named with the command that fetches ``version``."""
    if not path.exists():  # (a review: a wheel's file misnamed was taken for a folder to download into)
        raise FileNotFoundError(f"{path}: no such file or folder; {fetch(package, version, 'DIR')}")
    if path.is_file():
        wheel = path
    else:
        wheels = sorted(path.glob(f"{package}-*.whl"), key=release)
        if not wheels:
            raise FileNotFoundError(f"no {package} wheel in {path}: {fetch(package, version, path)}")
        wheel = wheels[-1]
    if not zipfile.is_zipfile(wheel):
        raise ValueError(f"{wheel} is not a wheel (a zip archive): {fetch(package, version, 'DIR')}")
    return wheel


def fetch(package: str, version: str, folder: object) -> str:
    """The command that downloads the wheel: ``pip download PACKAGE==VERSION --no-deps -d FOLDER``."""
    return f"pip download {package}=={version} --no-deps -d {folder}"


def release(wheel: Path) -> tuple[int, ...]:
    """The release numbers of a wheel's name: pmdarima-2.0.10-cp311-... -> (2, 0, 10).

    >>> release(Path("pmdarima-2.0.10-cp311-none-any.whl")), release(Path("sktime-1.2.0-py3-none-any.whl"))
    ((2, 0, 10), (1, 2, 0))
    """
    numbers = wheel.name.split("-")[1]
    return tuple(int(part) if part.isdigit() else -1 for part in numbers.split("."))
