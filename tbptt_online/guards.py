"""Instability guards: what the engine watches beyond a non-finite update, and how it answers.

- **Gradient explosion**: an update's gradient norm (before clipping) above
  ``EXPLOSION_FACTOR`` times the median of the last ``NORM_MEMORY`` accepted updates' (once
  ``MIN_HISTORY`` are known). Answer: the update is clipped harder, to that median.
- **Loss divergence**: the updates' losses per scored step, in blocks of ``LOSS_WINDOW``: a
  block's mean has risen above the best block's since the last roll-back (or since the last
  update that scored nothing: a run of missing values restarts the record) by more than
  ``DIVERGENCE_RISE`` times (|the best mean| + its standard deviation), in two blocks in a row:
  for a positive loss with little noise, about a quadrupling (a Gaussian NLL may be negative,
  hence not a ratio). One block was judged alone until session 52: a noise-free sine's lucky
  block (0.0065 per step, its neighbours 0.023 to 0.035) was the best, and the next ordinary
  one (0.036) a divergence, its model rolled back. Answer: the weights and
  the optimizer's state roll back to the last good copy and the learning rate backs off
  (times ``BACKOFF``, never below ``MIN_LR_SCALE`` of the configured one).
- **Prequential divergence** (checked by the forecaster on every tick, ``hybrid=False``): an
  exponential mean (weight ``PREQUENTIAL_WEIGHT``) of the served one-step forecasts' absolute
  errors above ``PREQUENTIAL_RATIO`` times that of the naive last-value forecast, after
  ``PREQUENTIAL_MIN`` ticks: a model far worse than doing nothing (a learning rate of 10).
  Answer: roll-back and back-off. (The hybrid's combination already weighs a bad network out.)
- **Forecast blow-up** (checked by the forecaster on every tick's new forecasts): a network
  output beyond ``BLOWUP_FACTOR`` times the largest target the updates have seen (at least
  1). Answer: the same roll-back and back-off, and the tick's forecasts are made again with
  the good weights.

- **Skipped updates in a row**: ``SKIPPED_RUN`` updates in a row skipped (a non-finite loss,
  gradient norm or weight: ``engine.replay_update``), where the good copy computes a finite loss of
  the same windows (``engine._good_copy_computes``: where it does not, the data are at fault, and a
  review's raw-value MSE network rolled back for a stretch of values times 1e25). Answer: roll-back
  and back-off, once per such run (the run is read from the engine's update records, so a restored
  engine goes on alike).
  Before it (a hostile test, session 48): with sgd, no clipping, an MSE loss and lr = 1 the weights
  reached 3.7e16 within 9 updates, before the other guards had the ``MIN_HISTORY`` norms they judge
  by; every later update's loss was not finite and was skipped, the weights stayed as they were, and
  half the forecasts of five series were null for good.

The good copy is taken at construction and then every ``GOOD_EVERY`` accepted updates
during which no guard fired and the loss did not trend up; it is part of the state dict
(a checkpoint restores it). ``Forecaster.reset_learning_rate`` undoes the back-offs.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import torch

EXPLOSION_FACTOR = 10.0
NORM_MEMORY = 64
MIN_HISTORY = 16
LOSS_WINDOW = 8
DIVERGENCE_RISE = 3.0
HEALTHY_RISE = 0.5  # a good copy is taken only while the last block's loss has risen less than this
BLOWUP_FACTOR = 20.0
BACKOFF = 0.3
MIN_LR_SCALE = 1e-4
GOOD_EVERY = 32
SKIPPED_RUN = 3  # updates skipped in a row that roll the weights back (module doc)
PREQUENTIAL_WEIGHT = 0.05
PREQUENTIAL_RATIO = 4.0
PREQUENTIAL_MIN = 50
COUNTERS = ("explosions", "divergences", "blowups", "rollbacks")


class InstabilityGuard:
    """The guards' memory: recent norms and losses, counters, the learning-rate scale and the good copy."""

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.norms: deque[float] = deque(maxlen=NORM_MEMORY)
        self.losses: list[float] = []  # the block being filled
        self.best: list[float] = []  # [mean, sd] of the best complete block since the last roll-back
        self.rise = 0.0  # the last complete block's rise over the best (see trend)
        self.counts = dict.fromkeys(COUNTERS, 0)
        self.lr_scale = 1.0
        self.target_range = 0.0  # the largest |target| an update has seen
        self.quiet = 0  # accepted updates since a guard last fired or a good copy was taken
        self.served_error = [0.0, 0.0, 0.0]  # exponential means of |served error|, |naive error|; ticks
        self.good: dict[str, Any] = {"params": [p.detach().clone() for p in params], "optimizer": {}, "at": 0}

    # -- checks -----------------------------------------------------------------------
    def explosion_limit(self) -> float:
        """The norm above which an update's gradient is an explosion (inf while too little is known)."""
        if len(self.norms) < MIN_HISTORY:
            return math.inf
        return EXPLOSION_FACTOR * _median(self.norms)

    def median_norm(self) -> float:
        return _median(self.norms)

    def trend(self) -> float:
        """The last complete block's mean loss over the best block's, in units of (|best mean| +
        its standard deviation); 0 while fewer than two blocks are known."""
        return self.rise

    def _close_block(self) -> None:
        mean = sum(self.losses) / len(self.losses)
        sd = math.sqrt(sum((v - mean) ** 2 for v in self.losses) / (len(self.losses) - 1))
        self.losses = []
        # a block of exact forecasts (every loss 0) has no scale to judge a rise by: as the best,
        # any later loss was an infinite rise, a divergence (a flat stretch, then any change)
        informative = abs(mean) + sd > 0
        if not self.best:
            self.best = [mean, sd] if informative else []
            return
        scale = abs(self.best[0]) + self.best[1]  # > 0: only an informative block is the best
        self.rise = (mean - self.best[0]) / scale
        if mean < self.best[0] and informative:
            self.best = [mean, sd]

    def blowup_limit(self) -> float:
        """The network output beyond which a forecast has blown up (inf while too little is known)."""
        if len(self.norms) < MIN_HISTORY:
            return math.inf
        return BLOWUP_FACTOR * max(1.0, self.target_range)

    # -- bookkeeping ------------------------------------------------------------------
    def accepted(
        self,
        grad_norm: float,
        loss_per_step: float,
        target_range: float,
        exploded: bool,
        settled: bool = True,
        scored: bool = True,
    ) -> bool:
        """Record an applied update; True when the loss now diverges (the caller rolls back).
        An update not ``settled`` (a series in its warm-up, or a window that scored no target:
        every value missing) adds no loss to the blocks: its loss is that of a network barely
        started on a window still growing, or none, and a block of them set as the best made a
        later, ordinary loss look like a divergence (co2: a warm-up block of 0.026 per step, the
        next ones 0.94, rolled back at step 95). A gradient norm of 0 (nothing scored, or every
        forecast exact) is not kept for the median: 280 of them in a row made it 0, and every
        later update an explosion clipped to 0, for good (a run of missing values, session 34).
        An update that scored nothing (``scored`` False: every value of its scored steps missing)
        restarts the loss record (no block under way, no best): the losses after a run of missing
        values are not comparable with those before it (the carried state has come through the
        run), and a model good before a gap of 600 values was rolled back after it, its learning
        rate cut to 0.3 (its first block 0.063 per step against a best of 0.011 +- 0.003, session 42)."""
        if not exploded and grad_norm > 0:  # (a norm of 0 tells nothing of the gradients' scale: see below)
            self.norms.append(grad_norm)
        if not scored:  # the record starts again after the run of missing values (see above)
            self.losses, self.best, self.rise = [], [], 0.0
        elif settled:
            self.losses.append(loss_per_step)
        self.target_range = max(self.target_range, target_range)
        self.quiet = 0 if exploded else self.quiet + 1
        if exploded:
            self.counts["explosions"] += 1
        if len(self.losses) < LOSS_WINDOW:
            return False
        risen = self.rise > DIVERGENCE_RISE  # the block before this one's
        self._close_block()
        if self.rise > DIVERGENCE_RISE and risen:  # two blocks in a row (module doc)
            self.counts["divergences"] += 1
            return True
        return False

    def healthy(self) -> bool:
        return (
            self.quiet >= GOOD_EVERY
            and self.trend() < HEALTHY_RISE
            and self.served_error[0] <= 2 * self.served_error[1] + 1e-12
        )

    def served(self, error: float, naive_error: float) -> bool:
        """Fold one tick's mean absolute errors in; True when the model diverges from the naive forecast."""
        model, naive, ticks = self.served_error
        w = max(PREQUENTIAL_WEIGHT, 1.0 / (ticks + 1))  # the plain mean until 1 / (ticks + 1) < the weight
        self.served_error = [(1 - w) * model + w * error, (1 - w) * naive + w * naive_error, ticks + 1]
        if ticks + 1 >= PREQUENTIAL_MIN and self.served_error[0] > PREQUENTIAL_RATIO * self.served_error[1] > 0:
            self.counts["divergences"] += 1
            return True
        return False

    def keep_good(self, params: list[torch.nn.Parameter], optimizer_state: dict[int, dict[str, Any]], at: int) -> None:
        self.good = {"params": [p.detach().clone() for p in params], "optimizer": optimizer_state, "at": at}
        self.quiet = 0

    def after_rollback(self) -> None:
        self.counts["rollbacks"] += 1
        self.lr_scale = max(MIN_LR_SCALE, self.lr_scale * BACKOFF)
        self.losses, self.best, self.rise = [], [], 0.0
        self.served_error = [0.0, 0.0, 0.0]
        self.quiet = 0

    # -- persistence ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "norms": list(self.norms),
            "losses": list(self.losses),
            "best": list(self.best),
            "rise": self.rise,
            "counts": dict(self.counts),
            "lr_scale": self.lr_scale,
            "target_range": self.target_range,
            "quiet": self.quiet,
            "served_error": list(self.served_error),
            "good": {
                "params": [p.clone() for p in self.good["params"]],
                "optimizer": _clone_state(self.good["optimizer"]),
                "at": self.good["at"],
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        # (a state saved before session 34 may hold the zero norms and the zero best block that
        # froze the learning: they load as this version would have kept them, i.e. not at all)
        self.norms = deque((float(v) for v in state["norms"] if v > 0), maxlen=NORM_MEMORY)
        self.losses = [float(v) for v in state["losses"]]
        best = [float(v) for v in state["best"]]
        self.best = best if best and abs(best[0]) + best[1] > 0 else []
        self.rise = float(state["rise"])
        self.counts = {k: int(state["counts"][k]) for k in COUNTERS}
        self.lr_scale = float(state["lr_scale"])
        self.target_range = float(state["target_range"])
        self.quiet = int(state["quiet"])
        self.served_error = [float(v) for v in state["served_error"]]
        good = state["good"]
        self.good = {
            "params": [p.clone() for p in good["params"]],
            "optimizer": _clone_state(good["optimizer"]),
            "at": int(good["at"]),
        }


def _median(values: deque[float]) -> float:
    items = sorted(values)
    return items[len(items) // 2] if items else math.nan


def _clone_state(state: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """An optimizer's per-weight state (by weight index), its tensors copied."""
    return {
        int(i): {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in entry.items()}
        for i, entry in state.items()
    }
