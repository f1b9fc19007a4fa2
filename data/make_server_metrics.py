"""Write data/server_metrics.csv: three weeks of hourly metrics of four servers (synthetic, deterministic).

It looks like what a monitoring system exports: one row per (hour, host) with the
CPU utilisation in percent and the request rate. Each host has a daily cycle (busy
in working hours, quieter at the weekend), slow drift, autocorrelated noise, a few
short load spikes and a few scrape gaps (empty cells). Fixed seed: the file is the
same on every machine. Regenerate with ``python data/make_server_metrics.py``.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
HOURS = 21 * 24
HOSTS = {  # name: (base cpu %, daily amplitude, requests/s at peak)
    "web-1": (22.0, 30.0, 420.0),
    "web-2": (20.0, 27.0, 390.0),
    "db-1": (35.0, 18.0, 160.0),
    "batch-1": (12.0, 8.0, 15.0),
}
OUTPUT = Path(__file__).with_name("server_metrics.csv")


def daily_load(hour_of_day: float, weekday: int) -> float:
    """0..1: low at night, a morning ramp, a lunch dip, an evening tail; weekends at 40%."""
    day = math.exp(-(((hour_of_day - 11.0) / 3.5) ** 2)) + 0.8 * math.exp(-(((hour_of_day - 16.0) / 3.0) ** 2))
    return (day / 1.2) * (0.4 if weekday >= 5 else 1.0)


def rows(rng: random.Random) -> list[dict[str, str]]:
    out = []
    noise = dict.fromkeys(HOSTS, 0.0)
    for t in range(HOURS):
        moment = START + timedelta(hours=t)
        for host, (base, amplitude, peak_rps) in HOSTS.items():
            noise[host] = 0.7 * noise[host] + rng.gauss(0.0, 2.0)  # AR(1): errors that persist
            load = daily_load(moment.hour, moment.weekday())
            if host == "batch-1":  # a nightly job at 02:00-04:00 instead of a daytime cycle
                load = 1.0 if 2 <= moment.hour < 4 else 0.1
            cpu = base + amplitude * load + 0.01 * t + noise[host]
            if rng.random() < 0.01:
                cpu += rng.uniform(15.0, 35.0)  # a short spike
            rps = peak_rps * (0.15 + load) * (1.0 + 0.05 * rng.gauss(0.0, 1.0))
            gap = rng.random() < 0.005  # a missed scrape
            out.append(
                {
                    "timestamp": moment.isoformat().replace("+00:00", "Z"),
                    "host": host,
                    "cpu_percent": "" if gap else f"{min(max(cpu, 0.0), 100.0):.2f}",
                    "requests_per_s": "" if gap else f"{max(rps, 0.0):.1f}",
                }
            )
    return out


def main(argv: list[str] | None = None) -> None:
    # fix: any argument (--help too) was ignored and the file written
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    with OUTPUT.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=["timestamp", "host", "cpu_percent", "requests_per_s"])
        writer.writeheader()
        writer.writerows(rows(random.Random(20240304)))
    print(f"wrote {OUTPUT} ({HOURS * len(HOSTS)} rows)")


if __name__ == "__main__":
    main()
