"""The markdown of ``benchmarks.throughput``: side by side, latency, this checkout's other ways, memory, profiles."""

from __future__ import annotations

from typing import Any

from benchmarks import report


def render(payload: dict[str, Any]) -> str:
    info, baseline = payload["machine"], payload["baseline"]
    commit = baseline["baseline_commit"]
    parts = [
        "## Throughput and latency: the new defaults against the old main, side by side",
        "",
        report.machine_line(info)
        + f"; load average at the end {payload['load_average_at_end'][0]} (other processes on the machine slow "
        "the 2-thread runs most).",
        "",
        *_side_by_side(payload, commit),
        "",
        *_windows(payload),
        "",
        *_latency(baseline["runs"], commit),
        "",
        report.markdown_table(
            ["target", "goal", "measured (each way at its best thread setting)", "met"],
            [[t["target"], float(t["goal"]), t["measured"], "yes" if t["met"] else "no"] for t in payload["targets"]],
        ),
        "",
        *_this_checkout(payload),
        "",
        *_memory(payload["memory"], commit),
    ]
    for name, prof in payload["profiles"].items():
        parts += ["", *_profile(name, prof)]
    return "\n".join(parts)


def _side_by_side(payload: dict[str, Any], commit: str) -> list[str]:
    runs = payload["baseline"]["runs"]
    network_only = {
        (r["way"], r["series"], r["threads"]): r["obs_per_s"]
        for r in runs["new library, old network-only config"]["rows"]
    }
    table = []
    for r in payload["ratios"]:
        key = (r["way"], r["series"], r["threads"])
        new_row = next(x for x in runs["new defaults"]["rows"] if (x["way"], x["series"], x["threads"]) == key)
        table.append(
            [
                r["way"],
                r["series"],
                r["threads"],
                f"{new_row['steps'][0]}-{new_row['steps'][1]}",
                r["new_obs_per_s"],
                ", ".join(map(str, new_row["detection_steps"])) or "none",
                r["new_obs_per_s_without_detection"],
                r["old_obs_per_s"],
                r["old_settings_obs_per_s"],
                r["new_over_old"],
                network_only.get(key),
            ]
        )
    return [
        f"Training, one `observe_many` call per tick of all series. New: this checkout's `ForecasterConfig()` (the "
        f"hybrid). Old: `ForecasterConfig()` of main at `{commit}` (network-only: GRU 64, k1 8, k2 32, Adam "
        "lr 1e-3, gaussian), from its own library in its own process. The last column runs the old network-only "
        "config (`hybrid=False, warmup_updates=0, lr=1e-3`) on the new library, in a third process. They "
        "take turns, one at a time, the first to go rotating: one tick each at 10,000 series, so that a slow spell "
        "of the machine falls on all of them; at fewer series a whole row each (a process that waited runs slower "
        "for a while: one series' tick took 2.4 ms after 50 ms asleep, 0.6 ms without); between two turns the driver "
        "waits 20 ms, so that no process's idle OpenMP threads spin on into the next one's turn (libgomp's default "
        "wait burns several milliseconds of a core after an operation: `benchmarks/results/openmp_spin.md`). "
        "Each runs the steps before the first timed one untimed "
        "(at full size 48: the hybrid's warm-up updates at steps 1-32 and its season detections at 16 to 48); "
        "the timed ticks are the steps shown, season detection ticks included in the new obs/s and left out of "
        "the next column. Values: standard normal (no season is found). libgomp's busy wait "
        "(`GOMP_SPINCOUNT`): each library as it comes (the old main with libgomp's default; the new library sets "
        "10,000 rounds when it is imported before torch, `tbptt_online/openmp.py`), and the old main once more "
        'with the new library\'s setting, in a fourth process ("new process settings", set in its environment); '
        "new / old is against the better of the old main's two. glibc malloc's thresholds: its own rule in all "
        "four (the library's, `tbptt_online/allocator.py`, are off by default).",
        "",
        report.markdown_table(
            [
                "way",
                "series",
                "threads",
                "timed steps",
                "new obs/s",
                "detection steps timed",
                "new obs/s without them",
                "old obs/s",
                "old obs/s, new process settings",
                "new / old at its better",
                "new library, network-only config",
            ],
            table,
        ),
    ]


def _windows(payload: dict[str, Any]) -> list[str]:
    """Each long phase's rate over each ``window_ticks`` of its ticks: how much a short run's figure swings."""
    table = [
        [
            w["run"],
            w["way"],
            w["series"],
            w["threads"],
            f"{w['steps'][0]}-{w['steps'][1]}",
            ", ".join(f"{rate:,.0f}" for rate in w["obs_per_s"]),
            max(w["obs_per_s"]) / min(w["obs_per_s"]),
        ]
        for w in payload["windows"]
    ]
    if not table:
        return ["(No phase was long enough to show its windows: smoke size.)"]
    return [
        f"obs/s of each {payload['window_ticks']} consecutive ticks of the long phases above, in step order "
        "(the whole phase's figure is the one above; largest / smallest in the last column).",
        "",
        report.markdown_table(
            ["process", "way", "series", "threads", "timed steps", "obs/s per window", "largest / smallest"],
            table,
        ),
    ]


def _latency(runs: dict[str, Any], commit: str) -> list[str]:
    table = []
    for name in ("new defaults", "baseline"):
        lat = runs[name]["latency"]
        both = lat["observe_and_forecast"]
        table.append(
            [
                name,
                both["n"],
                both["median_ms"],
                both["p90_ms"],
                both["p99_ms"],
                both["max_ms"],
                lat["observe"]["median_ms"],
                lat["forecast"]["median_ms"],
                lat["steps_with_an_update"].get("median_ms"),
                lat["steps_without_an_update"].get("p99_ms"),
                len(lat["detection_steps"]),
            ]
        )
    lat = runs["new defaults"]["latency"]
    return [
        f"Single series, one `observe` + `forecast(horizon={lat['horizon']})` per step, one thread, after "
        f"{lat['warmup_steps']} untimed steps; stream 10 + 3 sin(2 pi t / 24) + N(0, 0.5^2). Old: main at "
        f"`{commit}`; each runs all its steps in one turn. Milliseconds. New: detections at steps "
        f"{lat['detection_steps']} took "
        f"{lat['detection_step_ms']} ms (they are in the figures).",
        "",
        report.markdown_table(
            [
                "library",
                "steps",
                "median",
                "p90",
                "p99",
                "max",
                "observe median",
                "forecast median",
                "median of steps with an update",
                "p99 of steps without",
                "detection steps",
            ],
            table,
        ),
    ]


def _this_checkout(payload: dict[str, Any]) -> list[str]:
    rows, warmups = payload["rows"], {s["warmup"] for s in payload["forward_only_sizes"].values()}
    keys = sorted({(r["series"], r["threads"]) for r in rows})

    def get(way: str, key: tuple[int, int]) -> float | None:
        return next((r["obs_per_s"] for r in rows if r["way"] == way and (r["series"], r["threads"]) == key), None)

    table = []
    for key in keys:
        train, naive = get("training", key), get("naive", key)
        ratio = None if naive is None or train is None else train / naive
        forward = [get("forward-only", key), get("forward-only, network-only config", key)]
        table.append([key[0], key[1], train, get("training, every result read", key), *forward, naive, ratio])
    return [
        "The new defaults alone. Forward-only: k1 = 100,000 and `warmup_updates=0` (no update falls due; the "
        f"library has no switch), after {', '.join(map(str, sorted(warmups)))} untimed ticks; season detections "
        "(54, 60, 66, 72, 84, 96, ...) run in the timed ticks. Naive: one network-only model per series, one "
        "call per value, replay of k2 values and a "
        "backward every k1 steps (no experts: not the same work as the hybrid). The network-only config forward-only: "
        "`hybrid=False` and the library's other defaults (GRU 32), k1 = 100,000: the kind of forecaster the first "
        "round's forward-only target was set for (its GRU had 64 units). `observe_many` builds its "
        "StepResults lazily: the training column reads none, the next one reads all (1 thread).",
        "",
        report.markdown_table(
            [
                "series",
                "threads",
                "training obs/s",
                "same, every StepResult read",
                "forward-only obs/s",
                "forward-only obs/s, network-only config",
                "naive obs/s",
                "training / naive",
            ],
            table,
        ),
    ]


def _memory(memory: dict[str, Any], commit: str) -> list[str]:
    table = [
        [
            f"new defaults, {mode}",
            m["bytes_per_series_row"],
            m["allocated_bytes_per_series"],
            m["weights_bytes_shared"],
        ]
        for mode, m in ((k, memory[k]) for k in ("stateful", "stateless"))
    ]
    old = memory["baseline"]
    table.append([f"old main `{commit}`, stateful", old["bytes_per_series_row"], old["allocated_bytes_per_series"]])
    table[-1].append(old["weights_bytes_shared"])
    fields = sorted(memory["stateful"]["fields"].items(), key=lambda kv: kv[1], reverse=True)[:6]
    return [
        f"Memory per series at {memory['series']:,} series (bytes of one row of the store's tensors; allocated "
        "includes the spare capacity of the doubling growth). The hybrid keeps its experts' state (raw values "
        "ring, seasonal tables of the longest season for every variant), the combination's losses and the "
        "origins' forecasts per series. Largest fields (new, stateful): "
        + ", ".join(f"`{k}` {v:,} B" for k, v in fields)
        + ".",
        "",
        report.markdown_table(
            ["model", "bytes per series", "allocated bytes / series", "shared weights bytes"],
            table,
        ),
    ]


def _profile(name: str, prof: dict[str, Any]) -> list[str]:
    return [
        f"Profile, {name} (cProfile, 1 thread, {prof['ticks']} ticks after {prof['warmup']}; "
        f"{100 * prof['share_in_torch_calls']:.0f} % of own time inside torch calls):",
        "",
        report.markdown_table(
            ["function (top own time)", "calls", "own %", "cumulative %"],
            [[e["function"], e["calls"], e["own_pct"], e["cumulative_pct"]] for e in prof["top_own_time"][:8]],
        ),
        "",
        report.markdown_table(
            ["library function (top cumulative)", "calls", "own %", "cumulative %"],
            [
                [e["function"], e["calls"], e["own_pct"], e["cumulative_pct"]]
                for e in prof["top_library_cumulative"][:10]
            ],
        ),
    ]
