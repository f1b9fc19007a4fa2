"""Bit-for-bit equality of nested states (dicts, lists, tensors): the recovery tests' yardstick."""

from __future__ import annotations

from typing import Any

import torch


def assert_bitwise_equal(a: Any, b: Any, where: str = "state") -> None:
    """Nested containers equal, every tensor equal bit for bit (NaN payloads and -0.0 included)."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_bitwise_equal(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_bitwise_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert torch.equal(a.contiguous().flatten().view(torch.uint8), b.contiguous().flatten().view(torch.uint8)), (
            where
        )
    else:
        assert a == b, where
