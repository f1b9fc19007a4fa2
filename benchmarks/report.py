"""Where a benchmark's numbers go: one JSON and one markdown file, stamped with the machine.

Every script parses the same two options (``--smoke`` for a size of seconds and ``--out``
for the folder) and records the date, the cores, the torch version and the load average
when it started, so a figure can be read next to what else the machine was doing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark has: ``--smoke`` and ``--out``."""
    made = argparse.ArgumentParser(description=description)
    made.add_argument("--smoke", action="store_true", help="a size of seconds (CI), not the published one")
    made.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"folder for JSON and markdown ({RESULTS_DIR})")
    return made


def arguments(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    return parser(description).parse_args(argv)


def machine(module: str, argv: list[str] | None) -> dict[str, Any]:
    """What the figures were measured on, and the command that measured them."""
    args = sys.argv[1:] if argv is None else argv
    return {
        "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "cores": os.cpu_count(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "torch_threads_default": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(["python", "-m", module, *map(str, args)]),
    }


def cpu_model() -> str:
    """The processor's model name (Linux's /proc/cpuinfo; else ``platform.processor()``): the
    hosts this project runs on differ from one session to the next, and figures measured on one
    are compared with those of another only knowing that."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub markdown table; floats keep 3 significant decimals, None shows as a dash.

    >>> print(markdown_table(["a", "b"], [[1, 0.12345], [None, "x"]]))
    | a | b |
    |---|---|
    | 1 | 0.123 |
    | - | x |
    """

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            if abs(value) >= 1e7:
                return f"{value:.2e}"  # e.g. a model that diverged
            return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 0.01 else f"{value:.3f}"
        if isinstance(value, int):
            return f"{value:,}" if abs(value) >= 10_000 else str(value)
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(info: dict[str, Any]) -> str:
    return (
        f"{info['date_utc']} UTC, {info['cores']} cores ({info.get('cpu', 'processor not recorded')}), "
        f"torch {info['torch']}, Python {info['python']}, "
        f"load average at start {info['load_average_1_5_15'][0]}; command: `{info['command']}`"
    )


def write(out: Path, name: str, payload: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``NAME.json`` and ``NAME.md`` under ``out`` (created if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{name}.json", out / f"{name}.md"
    json_path.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n")
    md_path.write_text(markdown.rstrip() + "\n")
    return json_path, md_path
