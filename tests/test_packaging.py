"""The distribution installs the library as ``tbptt_online`` and the folder ``service/`` as
``tbptt_service``: no top-level ``service`` package in site-packages, where another distribution's could
collide with it, and no subpackage left out of the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def folder_packages() -> set[str]:
    """Every package the two folders hold, by its installed name."""
    names = set()
    for folder, installed in (("tbptt_online", "tbptt_online"), ("service", "tbptt_service")):
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            names.add(".".join((installed, *parts)))
    return names


def test_pyproject_lists_every_package_of_both_folders() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"tbptt_service": "service"}
    assert set(setuptools["packages"]) == folder_packages()


def test_wheel_holds_tbptt_service_and_no_top_level_service(tmp_path: Path) -> None:
    # built from a copy of what the Dockerfile copies (setuptools writes build/ beside the sources)
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("tbptt_online", "service"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), "."],
        cwd=source,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (wheel,) = tmp_path.glob("tbptt_online-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names if not name.split("/", 1)[0].endswith((".dist-info", ".data"))}
    assert top_level == {"tbptt_online", "tbptt_service"}
    assert "tbptt_service/api/app.py" in names
    assert "tbptt_service/api/static/index.html" in names  # the dashboard's files travel with the package
    entry_points = next(name for name in names if name.endswith(".dist-info/entry_points.txt"))
    assert "tbptt-online = tbptt_service.cli.main:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
