"""Bit-exact snapshots of everything a Forecaster holds, gathered from its parts
(not from its own ``state_dict``, which is itself under test)."""

from __future__ import annotations

import copy
import math
from typing import Any

import torch

from tbptt_online import Forecaster


def snapshot(f: Forecaster) -> dict[str, Any]:
    """A deep copy of every piece of mutable state: weights, gradients, optimizer
    state, counters, every series tensor, names and slots, the sampler's generator."""
    generator = getattr(f.sampler, "generator", None)
    return {
        "parameters": {k: p.detach().clone() for k, p in f.network.named_parameters()},
        "grads": {k: None if p.grad is None else p.grad.clone() for k, p in f.network.named_parameters()},
        "requires_grad": {k: p.requires_grad for k, p in f.network.named_parameters()},
        "buffers": {k: b.clone() for k, b in f.network.named_buffers()},
        "optimizer": copy.deepcopy(f.engine.optimizer.state_dict()),
        "counters": (f.engine.attempts, f.engine.skipped, list(f.engine.recent), f.observations),
        # the rows of slots: the spare capacity past them holds nothing (a loaded store has none)
        "store": {k: v[: len(f.store.names)].clone() for k, v in f.store.tensors.items()},
        "slots": (dict(f.store.slots), list(f.store.names), list(f.store.free)),
        "sampler": None if generator is None else generator.get_state(),
    }


def assert_identical(a: Any, b: Any, path: str = "") -> None:
    """Equal structure; tensors equal in dtype, shape and every byte (NaN == NaN)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor), path
        assert a.dtype == b.dtype and a.shape == b.shape, (path, a.dtype, b.dtype, a.shape, b.shape)
        assert a.contiguous().numpy().tobytes() == b.contiguous().numpy().tobytes(), f"{path} differs"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), (path, list(a), list(b) if isinstance(b, dict) else b)
        for k in a:
            assert_identical(a[k], b[k], f"{path}/{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_identical(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b), path
        for name in a.__dataclass_fields__:
            assert_identical(getattr(a, name), getattr(b, name), f"{path}.{name}")
    else:
        assert a == b, (path, a, b)


def assert_close(a: Any, b: Any, tol: float, path: str = "") -> None:
    """Like ``assert_identical`` but floats (and float tensors) may differ by ``tol``
    relative: for a batch of rows against single rows, where BLAS kernels differ in the
    last bits (measured: 1 ulp in float64)."""
    if isinstance(a, torch.Tensor) and a.is_floating_point():
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape, path
        assert torch.equal(torch.isnan(a), torch.isnan(b)), path
        both = ~torch.isnan(a)
        diff = (a[both] - b[both]).abs()
        assert bool((diff <= tol * b[both].abs().clamp(min=1.0)).all()), f"{path} differs by {float(diff.max()):.3e}"
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            assert_close(a[k], b[k], tol, f"{path}/{k}")
    elif isinstance(a, list | tuple):
        assert type(a) is type(b) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_close(x, y, tol, f"{path}[{i}]")
    elif isinstance(a, float) and not math.isnan(a):
        assert isinstance(b, float) and abs(a - b) <= tol * max(1.0, abs(b)), (path, a, b)
    elif hasattr(a, "__dataclass_fields__"):
        assert type(a) is type(b), path
        for name in a.__dataclass_fields__:
            assert_close(getattr(a, name), getattr(b, name), tol, f"{path}.{name}")
    else:
        assert_identical(a, b, path)
