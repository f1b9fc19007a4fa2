"""AppliedKeys: the idempotency keys of a model's recent observation requests, with their answers.

A request may carry an ``Idempotency-Key`` (a shard gives every request of a front's call one:
the call's key and its place in the call). The model's worker journals the keys of a batch with
the batch (the ``keys`` of its ``observe`` record), remembers each key's results once the batch
is durable, and answers a request whose key it knows with those results, applying nothing.
Recovery rebuilds the keys from the checkpoint (which holds them) and the records after it: the
replayed batches compute the same results, bit for bit, so a request retried after a restart is
answered as it was the first time, timestamped or not.

Bounded: the newest ``max_keys`` keys, pinning at most ``max_results`` values together (a result
counts once per feature of its model; the oldest keys go first). A key keeps a reference to its
batch's results and its elements' places in it (nothing is copied on the hot path: a micro-batch's
requests share one batch), so the bound counts each batch a key pins once, whole. A key is tied to
its request's content (``digest``): the same key with another request is refused (422) rather than
answered with someone else's results.

>>> from tbptt_online import Prediction, StepResult
>>> keys = AppliedKeys(max_keys=2)
>>> r = StepResult("a", 1, 1.0, Prediction(None, None, None), Prediction(1.0, 0.5, 1.5), False, 0)
>>> for key in ("k1", "k2", "k3"):
...     keys.remember(key, digest_of([("a", 1.0, None)]), [r], [0], 0)
>>> "k1" in keys, "k3" in keys, keys.get("k3").results == [r]
(False, True, True)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from tbptt_online import StepResult

MAX_KEYS = 10_000  # per model
# per model, all keys together, in values: a result of a model of n_features d counts d times (one
# of d = 1 is about 200 bytes; one of d = 1024, about 300 KB, counted once, let a model's keys pin
# 60 GB, a hostile test's: three keyed requests of 1,000 such results held 800 MB more)
MAX_RESULTS = 200_000


def digest_of(observations: Sequence[Sequence[Any]]) -> str:
    """A request's content, as a key is tied to it: the ``(series, value, timestamp)`` s in order."""
    return hashlib.blake2b(orjson.dumps([list(o) for o in observations]), digest_size=12).hexdigest()


@dataclass(frozen=True)
class KeyedAnswer:
    digest: str  # the request's content (digest_of)
    batch: Sequence[StepResult]  # the results of the micro-batch that applied it (shared, never copied)
    sources: tuple[int | StepResult, ...]  # per element of the request: its place in batch, or the result it repeated
    update_count: int  # the model's update counter after that batch

    @property
    def results(self) -> list[StepResult]:
        """One per element of the request, in its order."""
        return [self.batch[s] if type(s) is int else s for s in self.sources]  # type: ignore[misc]


def _width(batch: Sequence[StepResult]) -> int:
    """The features of a batch's results (its model's n_features): how many times each counts."""
    mean = batch[0].forecast_next.mean if len(batch) else None
    return len(mean) if isinstance(mean, list) else 1


class AppliedKeys:
    def __init__(self, max_keys: int = MAX_KEYS, max_results: int = MAX_RESULTS) -> None:
        self.max_keys, self.max_results = max_keys, max_results
        self._answers: OrderedDict[str, KeyedAnswer] = OrderedDict()
        self._pins: dict[int, int] = {}  # id(batch) -> keys holding it
        self._pinned = 0  # results of the batches held, each counted once

    def __contains__(self, key: str) -> bool:
        return key in self._answers

    def __len__(self) -> int:
        return len(self._answers)

    @property
    def pinned_results(self) -> int:
        return self._pinned

    def get(self, key: str) -> KeyedAnswer | None:
        return self._answers.get(key)

    def remember(
        self,
        key: str,
        digest: str,
        batch: Sequence[StepResult],
        sources: Sequence[int | StepResult],
        update_count: int,
    ) -> None:
        if key in self._answers:  # not expected (a known key is answered, not applied); keep the first
            return
        self._answers[key] = KeyedAnswer(digest, batch, tuple(sources), update_count)
        self._pin(batch, +1)
        while len(self._answers) > self.max_keys or (self._pinned > self.max_results and len(self._answers) > 1):
            _, oldest = self._answers.popitem(last=False)
            self._pin(oldest.batch, -1)

    def _pin(self, batch: Sequence[StepResult], change: int) -> None:
        held = self._pins.get(id(batch), 0) + change
        if held == 0:
            del self._pins[id(batch)]
            self._pinned -= len(batch) * _width(batch)
        else:
            if held == 1 and change > 0:
                self._pinned += len(batch) * _width(batch)
            self._pins[id(batch)] = held

    def items(self) -> Iterator[tuple[str, KeyedAnswer]]:
        """Oldest first (a checkpoint keeps this order, so a recovery evicts as the live model would)."""
        return iter(list(self._answers.items()))
