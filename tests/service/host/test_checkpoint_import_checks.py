"""Issue 11 defect 6: an imported checkpoint is checked for meaning, not just for shape, before
anything is journaled: each malformed field is refused with 422 naming it, the model keeps
its state and a restart finds nothing of the refused imports in the log."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from tbptt_service.api.app import create_app
from tbptt_service.storage.checkpoints import decode_checkpoint, encode_checkpoint

from ..state_probe import assert_same_state, crash_copy, model_state
from .test_durability_recovery import NO_TIMER, feed

pytestmark = pytest.mark.anyio
Mutation = Callable[[dict[str, Any]], None]  # on the plain model state (tbptt_service.host.model_state.to_plain)


def _tensor(path: Callable[[dict], dict], key: str, index: Any, value: float) -> Mutation:
    def mutate(model: dict) -> None:
        tensor = path(model)[key].clone()
        tensor[index] = value
        path(model)[key] = tensor

    return mutate


def _param_state(model: dict) -> dict:
    return next(iter(model["forecaster"]["engine"]["optimizer"]["state"].values()))


def _store(model: dict) -> dict:
    return model["forecaster"]["store"]


def _network(model: dict) -> dict:
    return model["forecaster"]["network"]


def _probe(model: dict) -> dict:
    return model["forecaster"]["probe"]["tensors"]


def _set(path: Callable[[dict], Any], key: Any, value: Any) -> Mutation:
    return lambda model: path(model).__setitem__(key, value)


def _steps(value: int) -> Mutation:
    def mutate(model: dict) -> None:
        steps = _store(model)["tensors"]["steps"].clone()
        steps[0] = value
        _store(model)["tensors"]["steps"] = steps

    return mutate


def _renamed(name: str) -> Mutation:
    """The first series renamed ``name``, in the store and in its mark."""

    def mutate(model: dict) -> None:
        names, marks = _store(model)["names"], model["marks"]["series"]
        old = names[0]
        names[0] = name
        marks[marks.index(old)] = name

    return mutate


# The cases first (NaN weights, negative and 2^62 step counters, a free slot naming a live
# series, string timestamps), then the other fields the brief names.
CASES: dict[str, tuple[Mutation, str]] = {
    "nan weights": (_tensor(_network, "head.weight", (0, 0), math.nan), "network['head.weight']"),
    "negative step counter": (_steps(-5), "store.tensors['steps']"),
    "step counter 2^62": (_steps(2**62), "store.tensors['steps']"),
    "free slot naming a live series": (_set(_store, "free", [0]), "store.free[0]"),
    "string timestamp": (lambda m: m["marks"]["timestamps"].__setitem__(0, "1700000000"), "marks.timestamps[0]"),
    "inf optimizer state": (_tensor(_param_state, "exp_avg", 0, math.inf), ".exp_avg"),
    "negative optimizer step": (_set(_param_state, "step", torch.tensor(-2.0)), ".step"),
    "negative observations": (_set(lambda m: m["forecaster"], "observations", -1), "observations"),
    "free slot out of range": (_set(_store, "free", [99]), "store.free[0]"),
    "series name not a string": (lambda m: _store(m)["names"].__setitem__(0, 12), "store.names[0]"),
    "mark name not a string": (lambda m: m["marks"]["series"].__setitem__(0, 12), "marks.series[0]"),
    "mark of no series": (lambda m: m["marks"]["series"].__setitem__(0, "ghost"), "marks.series[0]"),
    "weights of another dtype": (
        lambda m: _network(m).__setitem__("head.bias", _network(m)["head.bias"].float()),
        "network['head.bias']",
    ),
    "marks row too short": (lambda m: m["marks"]["results"].__setitem__(0, [1]), "marks.results[0]"),
    # 500 before the checks (an exception other than ValueError while loading)
    "weights of another shape": (
        lambda m: _network(m).__setitem__("head.bias", torch.zeros(3, dtype=torch.float64)),
        "network['head.bias']",
    ),
    "engine without its counters": (lambda m: m["forecaster"]["engine"].pop("attempts"), "engine"),
    "marks row not a list": (lambda m: m["marks"]["results"].__setitem__(0, 7), "marks.results[0]"),
    "sampler not a generator state": (
        _set(lambda m: m["forecaster"], "sampler", torch.zeros(5, dtype=torch.uint8)),
        "sampler",
    ),
    "names not a list": (_set(_store, "names", {"a": 0}), "store.names"),
    # session 15's hostile review: each was accepted, then the advisor or the next tick failed
    "probe lag past the lag search": (_tensor(_probe, "lags", 0, 10**6), "probe.tensors['lags']"),
    "a tensor that requires the gradient": (
        lambda m: _probe(m).__setitem__("x", _probe(m)["x"].clone().requires_grad_()),
        "probe.tensors['x']",
    ),
    # session 49's hostile test: each was imported, and journaled
    "timestamp past the year 9999": (  # every later timestamped value of the series was 409, "older"
        lambda m: m["marks"]["timestamps"].__setitem__(0, 1e300),
        "marks.timestamps[0]=1e+300 is invalid: must be unix seconds within the years 1 to 9999",
    ),
    "timestamp before the year 1": (lambda m: m["marks"]["timestamps"].__setitem__(0, -1e12), "marks.timestamps[0]"),
    "NaN value in a mark": (lambda m: m["marks"]["results"][0].__setitem__(1, math.nan), "marks.results[0][1]"),
    "infinite value in a mark": (lambda m: m["marks"]["results"][0].__setitem__(1, math.inf), "marks.results[0][1]"),
    "NaN forecast in a mark": (lambda m: m["marks"]["results"][0].__setitem__(5, math.nan), "marks.results[0][5]"),
    # session 50's hostile test: a name its routes refuse to write could come in by an import; one with a lone
    # surrogate made the series list answer 500 for good, and deleting '..' with httpx deleted the model
    "a series named with a lone surrogate": (
        _renamed("a\ud800"),
        "holds a lone surrogate at 1: a series name is Unicode text",  # (shown escaped: the answer is JSON)
    ),
    "a series named '..'": (_renamed(".."), 'a series\' name is invalid: ".." is or holds a URL dot segment'),
    "a series named 'x/forecast'": (_renamed("x/forecast"), 'a series\' name is invalid: "x/forecast" ends in'),
    # session 60's hostile test (F9): names holding a newline, a NUL or U+202E were taken and served; refused
    # when written since session 61, an import's too (a state journaled before is recovered as it was)
    "a series named with a newline": (_renamed("a\nb"), 'a series\' name is invalid: "a\\nb" holds U+000A at 1'),
    "a series named with U+202E": (_renamed("\u202eevil"), '"\\u202eevil" holds U+202E at 0: a series name must'),
    "a list value in a mark of one feature": (
        lambda m: m["marks"]["results"][0].__setitem__(1, [1.0]),
        "marks.results[0][1]=[1.0] is invalid: must be a finite number or null (the model has one feature)",
    ),
    # session 60's hostile test: imported (finite), then the guards' next block overflowed squaring them, and the
    # model was quarantined
    "guard losses of 1e300": (
        lambda m: m["forecaster"]["engine"]["guard"].__setitem__("losses", [1e300, 0.0]),
        "engine.guard.losses[0]=1e+300 is invalid",
    ),
}


def _malformed(data: bytes, mutate: Mutation) -> bytes:
    checkpoint = decode_checkpoint(data)
    mutate(checkpoint.state["model"])
    return encode_checkpoint(checkpoint.seq, checkpoint.state)  # a valid checksum around a bad state


async def test_each_malformed_field_is_refused_with_422_naming_it_and_nothing_is_journaled(
    make_settings, serve, tmp_path
) -> None:
    settings = make_settings(**NO_TIMER)  # SMALL_MODEL: float64
    async with serve(create_app(settings)) as client:
        await feed(client, 0, 6)
        data = (await client.get("/v1/models/default/checkpoint")).content
        before = await model_state(client)
        answers = {}
        for case, (mutate, _) in CASES.items():
            try:
                response = await client.post("/v1/models/default/checkpoint", content=_malformed(data, mutate))
            except Exception as e:
                answers[case] = (500, repr(e)[:100])
                continue
            response = await client.post("/v1/models/default/checkpoint", content=_malformed(data, mutate))
            answers[case] = (response.status_code, response.json().get("detail"))
        assert_same_state(await model_state(client), before)
        crashed = crash_copy(settings.state_dir, tmp_path / "crashed")
        fine = await client.post("/v1/models/default/checkpoint", content=_malformed(data, lambda m: None))
        assert fine.status_code == 200, fine.text  # re-encoding itself breaks nothing

    for case, (_, field) in CASES.items():
        status, detail = answers[case]
        assert status == 422 and detail.startswith("checkpoint: ") and field in detail, (case, status, detail)

    async with serve(create_app(settings.model_copy(update={"state_dir": crashed}))) as client:
        assert (await client.get("/readyz")).status_code == 200
        assert_same_state(await model_state(client), before)  # nothing of the refused imports was recovered
