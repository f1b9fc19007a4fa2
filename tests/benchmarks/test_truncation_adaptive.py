"""Part (c) of the truncation wall: a run whose advisor finds the bias unbounded still writes JSON."""

from __future__ import annotations

import dataclasses
import json
import math

from benchmarks import truncation_adaptive as part_c
from benchmarks.truncation_wall import BASE
from tbptt_online import Forecaster


def test_an_unbounded_bias_is_recorded_as_such_and_the_row_is_valid_json(monkeypatch) -> None:
    real = Forecaster.truncation

    def unbounded(self):  # the report a model whose gradient does not decay within the probe gives
        return dataclasses.replace(real(self), relative_bias=math.inf)

    monkeypatch.setattr(Forecaster, "truncation", unbounded)
    job = part_c.EchoJob(10, n_series=1, ticks=40, period=20, base=dataclasses.replace(BASE, hidden_size=4))
    row = part_c.run_echo_job(job, scored_share=0.25)
    assert row["advisor"]["bias_unbounded"] and row["advisor"]["relative_bias"] is None
    json.dumps(row, allow_nan=False)  # what report.write does
    _, body = part_c.table([row])
    assert body[0][8] == "unbounded" and row["updates"] == 4 and row["backprop_steps"] == 4 * 10
