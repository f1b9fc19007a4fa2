"""Run one benchmark script at its smoke size, as CI runs it, and read what it wrote.

The script runs as a separate process (``python -m benchmarks.NAME --smoke --out DIR``)
into a temporary folder, so the published results under benchmarks/results/ stay as they are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_smoke(name: str, out: Path, *more: str) -> dict:
    """``more``: further options of the script (e.g. ``--only``)."""
    done = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{name}", "--smoke", "--out", str(out), *more],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    markdown = (out / f"{name}.md").read_text()
    assert markdown.strip() in done.stdout  # the table printed is the table written
    payload = json.loads((out / f"{name}.json").read_text())
    assert payload["smoke"] is True
    assert payload["machine"]["cores"] >= 1 and payload["machine"]["torch"] and payload["machine"]["cpu"]
    return payload
