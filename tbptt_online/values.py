"""Observation values in and out: a float (d = 1), a list of d floats, or None.

Parsing is where bad input is caught, before anything is applied: a non-number, an
infinity or the wrong number of features raises ``ValueError`` naming the index.
``None`` or NaN marks a missing value (a whole value or one feature of it).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

Value = float | Sequence[float | None] | None
MAX_FLOAT = sys.float_info.max
# The largest magnitude a value may have for every config to stay finite: a float32 network fed
# raw values (hybrid=False, normalize=False) needs them well inside float32's 3.4e38, and a pair
# of values of opposite sign near float64's limit (1e308, -1e308) made the hybrid's changes
# infinite, after which the series served null forever. Measured (GRU and LSTM, every loss, hybrid
# or not, normalised or raw, 1 and 64 features): alternating +-1e38 left every forecast finite,
# +-1e100 did not for the raw float32 network; tests/tbptt_online/test_values_range.py checks the bound.
# Forecaster.validate refuses a value beyond it (ValueError naming the series and the bound), so
# observe and observe_many do; the service refuses it earlier, in the request's schema (422).
MAX_ABS_VALUE = 1e36


def _plain(value: Any) -> Any:
    """A numpy or torch scalar or array as Python's own numbers and lists (``tolist``): a
    ``np.float32(3.0)`` or ``np.int64(4)`` was refused as "not a number" (a hostile test); a
    numpy bool stays a bool, and is refused as one."""
    return value.tolist() if hasattr(value, "tolist") and not isinstance(value, str | bytes) else value


def _row(value: Any, d: int, index: int) -> list[float]:
    value = _plain(value)
    if value is None:
        return [math.nan] * d
    if isinstance(value, int | float) and not isinstance(value, bool):
        items: Sequence[Any] = [value]
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        items = value
    else:
        raise ValueError(f"observation {index}: value {value!r} is not a number, a list of numbers or null")
    if len(items) != d:
        raise ValueError(f"observation {index}: value has {len(items)} feature(s), expected n_features={d}")
    row = []
    for item in map(_plain, items):
        if item is None:
            row.append(math.nan)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            if isinstance(item, int) and abs(item) > MAX_FLOAT:  # fix: float(10**400) raised OverflowError
                raise ValueError(
                    f"observation {index}: feature is an integer of {item.bit_length()} bits, beyond the float "
                    "range; only finite numbers or null"
                )
            if math.isinf(item):
                raise ValueError(f"observation {index}: value {value!r} is infinite; only finite numbers or null")
            row.append(float(item))
        else:
            raise ValueError(f"observation {index}: feature {item!r} is not a number or null")
    return row


def parse_values(values: Sequence[Value], d: int) -> torch.Tensor:
    """Values -> ``[B, d]`` float64 with NaN where missing.

    >>> parse_values([1.5, None, [2]], 1)
    tensor([[1.5000],
            [   nan],
            [2.0000]], dtype=torch.float64)
    >>> parse_values([float("inf")], 1)
    Traceback (most recent call last):
    ...
    ValueError: observation 0: value inf is infinite; only finite numbers or null
    """
    if d == 1 and set(map(type, values)) <= {float}:
        # Fast path for the common univariate stream: a C-level check, one conversion, and the infinities looked
        # for in it. numpy's: 10,000 floats in 0.12 ms against torch.tensor's 0.38, and two scans of the list
        # for math.inf took 0.3 ms more (the same float64 values)
        column = np.array(values, dtype=np.float64)  # [B]
        if not np.isinf(column).any():
            return torch.from_numpy(column).reshape(-1, 1)
    return torch.tensor([_row(v, d, i) for i, v in enumerate(values)], dtype=torch.float64).reshape(-1, d)


def format_row(row: Sequence[float]) -> float | list[float | None] | None:
    """The inverse convention: a float when d = 1, a list otherwise; NaN -> None."""
    clean = [None if math.isnan(x) else x for x in row]
    return clean[0] if len(clean) == 1 else clean
