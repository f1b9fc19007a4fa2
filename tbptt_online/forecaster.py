"""Forecaster: one set of weights shared by any number of named series, learning online.

Within ``observe(x_t)`` of a series: the state advances with the weights in force,
then the update runs if due, then the new one-step forecast is made with the
(possibly updated) weights. Stateful mode updates a series at each step t that is
a multiple of k1, replaying its last min(t, k2) values from the stored, detached
live state ``ĥ_{t-k2}`` with the current weights and summing the losses of the last
m = min(k1, k2) steps. Series due at the same tick share one replay, whose loss is
the mean over those series of their window sums. Stateless mode trains every k1
observations of the model on ``replay_batch`` windows of length k2 sampled from all
retained history, each from the fresh initial state (loss: the mean of the window
sums of all k2 steps), and forecasts from a fresh state run over the last k2 values.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from operator import itemgetter
from typing import Any

import numpy as np
import torch

from tbptt_online import allocator, fork_guard, hybrid
from tbptt_online.advisor import TruncationReport, advise
from tbptt_online.config import ForecasterConfig
from tbptt_online.engine import ProbeWindows, TBPTTEngine, measured_bias, probe_gradients
from tbptt_online.flat_runs import hold_flat_runs
from tbptt_online.hybrid_tick import HybridTick
from tbptt_online.intervals import served_rows, z_value
from tbptt_online.losses import shift_mean
from tbptt_online.network import RecurrentNetwork, State, select_rows
from tbptt_online.normalizer import std
from tbptt_online.probe import TruncationProbe
from tbptt_online.results import Forecast, StepResult, StepResults, TickColumns, UpdateStats
from tbptt_online.rollout import fresh_state
from tbptt_online.sampler import UniformWindowSampler, WindowSampler
from tbptt_online.scoring import STAT, add_scores, any_blown_up, blown_up, observed_stats
from tbptt_online.series_store import MAX_NAME_LENGTH, SeriesStore, offsets_at, plain_name, window
from tbptt_online.state_check import STATE_KEYS
from tbptt_online.state_format import FORMAT_VERSION, current_state
from tbptt_online.truncation import adaptive_window, confirmed_lags, data_window, fit_decay, longest_lag
from tbptt_online.values import MAX_ABS_VALUE, Value, format_row, parse_values
from tbptt_online.view import ForecasterView, ForecastRequest

RESTART_FACTOR = (
    1e6  # a mean h steps ahead h^2 times this many (1 + |last value| + sd) from the last value has blown up...
)
RESTART_HORIZON = 12  # ...at a horizon up to this; further, only a mean that is not finite
# A hybrid series whose first change is more than this many times the largest of the next ones, up to its value
# ``GLITCH_AT`` (and more than ``GLITCH_ROUNDING`` of its largest value), starts again from its second value there
# (``_restart_glitched``): its first value was a glitch (a sensor's 0 at boot) or a level it left at once, and either
# way nothing later should be measured from it. Taken in full, a first value of 0 before values about 100 with noise 1
# left the slow level, the scale, the ARs' fits, the intervals and the season detection to forget it for hundreds of
# values: MAE / naive over the 470 values from 30 on 0.54-0.69 against 0.45-0.50 without it (three seeds; 0.60-0.66
# for a first value of 1e4). Judged against the second change alone (at value 3), the rule fired on 6 of the 39
# accuracy streams, whose second change was small by chance or by rounding (seat belts' 1687, 1508, 1507); against the
# largest of three, the largest ratio among them is 4.3.
GLITCH_RATIO = 10.0
GLITCH_AT = 5  # the value at which the first is judged: its change against the next three
GLITCH_ROUNDING = 1e-9  # a first change below this share of the largest |value| up to GLITCH_AT is rounding, no glitch
_PAIR_TYPES = {tuple, list}  # the exact types validate's fast pass accepts as (series, value)


def loss_steps(steps: np.ndarray, k1: int, k2: int, warmup: int) -> np.ndarray:
    """m_t [B]: the steps an update at step t (t due: t <= warmup or t % k1 == 0) scores, the
    steps since the previous update, at most k2: 1 during the warm-up (every value updates),
    then min(k1, k2, t - warmup). Every loss is scored once when k2 >= k1. (numpy: a few
    integers, without torch's per-operation overhead.)

    >>> loss_steps(np.array([1, 5, 8, 16, 24]), k1=8, k2=32, warmup=5).tolist()
    [1, 1, 3, 8, 8]
    """
    since = np.where(steps <= warmup, 1, np.minimum(k1, steps - warmup))
    return np.minimum(since, k2)


def _loadable(state: Any) -> dict[str, Any]:
    """``state`` in the current format (an older one migrated, or ``ValueError`` saying why not:
    state_format.py), and a dict holding every key of a ``Forecaster.state_dict()``, or
    ``ValueError`` (fix: ``from_state_dict(5)`` raised TypeError, a state without a key KeyError)."""
    state = current_state(state)
    if not isinstance(state, dict):
        raise ValueError(f"a state must be a Forecaster.state_dict(), a dict, not {type(state).__name__}")
    missing = [key for key in STATE_KEYS if key not in state]
    if missing:
        raise ValueError(f"the state has no {missing}: not a Forecaster.state_dict()")
    return state


def _check_name(series: Any, index: int) -> str:
    if not isinstance(series, str) or not 0 < len(series) <= MAX_NAME_LENGTH:
        raise ValueError(
            f"observation {index}: series {series!r} is invalid: must be a non-empty string "
            f"of at most {MAX_NAME_LENGTH} characters"
        )
    return plain_name(series)  # (a str subclass as its text: series_store.plain_name)


class Forecaster:
    """An online TBPTT(k1, k2) forecaster over many series.

    >>> f = Forecaster(ForecasterConfig(hidden_size=8, k1=2, k2=4, seed=0))
    >>> for v in [1.0, 2.0, 3.0, 4.0]:
    ...     r = f.observe("sensor-1", v)
    >>> r.step, r.updated, f.update_stats().updates  # the warm-up: every value updates up to step k2
    (4, True, 4)
    >>> fc = f.forecast("sensor-1", horizon=3, level=0.9)
    >>> len(fc.mean), fc.lower[0] < fc.mean[0] < fc.upper[0]
    (3, True)
    >>> g = Forecaster.from_state_dict(f.state_dict())
    >>> g.observe("sensor-1", 5.0) == f.observe("sensor-1", 5.0)
    True
    """

    def __init__(self, config: ForecasterConfig, sampler: WindowSampler | None = None) -> None:
        if not isinstance(config, ForecasterConfig):
            raise ValueError(f"config={config!r} is invalid: must be a ForecasterConfig")
        self.config = config
        allocator.keep_freed_memory()  # with TBPTT_KEEP_FREED_MEMORY=1: an update's freed heap kept (allocator.py)
        fork_guard.register()  # a child forked from here on gets one torch thread: libgomp's hang (fork_guard.py)
        self.dtype = torch.float64 if config.dtype == "float64" else torch.float32
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(config.seed)
            self.network = RecurrentNetwork(config).to(self.dtype)
        self.engine = TBPTTEngine(self.network, config)
        self.store = SeriesStore(config, self.dtype)
        self.hybrid_tick = HybridTick(config, self.store)  # the hybrid's part of a tick (unused with hybrid=False)
        self.probe = TruncationProbe(config, self.dtype)
        self.sampler: WindowSampler = sampler or UniformWindowSampler(config.seed + 1)
        self.observations = 0  # values consumed by the model, all series together
        self._z = z_value(config.interval_level)  # the served one-step intervals' quantile
        self._frozen: tuple[tuple[int, int], RecurrentNetwork] | None = None
        self._batch: tuple[dict[str, int], list[str], torch.Tensor] | None = None  # ``observe_many``'s last batch

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A copy's attributes (``pickle``, ``copy.deepcopy``), and the fork guard registered in this
        process as by ``__init__``, which a copy does not run (a review's: a process whose forecaster came
        from a pickle forked children on its threads)."""
        self.__dict__.update(state)
        self.__dict__.setdefault("_batch", None)  # (a copy made before the attribute was)
        fork_guard.register()

    # -- reading ------------------------------------------------------------------
    @property
    def series(self) -> list[str]:
        return list(self.store.slots)

    def update_stats(self) -> UpdateStats:
        return self.engine.stats()

    def view(self) -> ForecasterView:
        """A consistent read-only snapshot (cheap: weights are copied once per update)."""
        if self.config.hybrid:  # its forecasts never run the network: the correction is in the state
            return ForecasterView(
                self.config, None, self.store.snapshot(), self.store.slots, self.engine.updates, self.store.offsets
            )
        attempts = (self.engine.attempts, self.engine.guard.counts["rollbacks"])  # a roll-back changes the weights too
        if self._frozen is None or self._frozen[0] != attempts:
            frozen = copy.deepcopy(self.network).requires_grad_(False)
            self._frozen = (attempts, frozen)
        return ForecasterView(
            self.config,
            self._frozen[1],
            self.store.snapshot(),
            self.store.slots,
            self.engine.updates,
            self.store.offsets,
        )

    def _live(self) -> ForecasterView:
        """A view of the state as it is now, for a read that ends before the next observe on
        this thread (``forecast``, ``forecast_many``, ``series_stats``, whose answers are plain
        lists): it reads the store's tensors and the weights themselves, without the snapshot
        of the in-place fields and the copy of the weights that ``view()`` makes for a reader
        that outlives later ticks (the same numbers; a copy per call cost more than the read)."""
        network = None if self.config.hybrid else self.network
        return ForecasterView(
            self.config, network, self.store.tensors, self.store.slots, self.engine.updates, self.store.offsets
        )

    def forecast(self, series: str, horizon: int = 1, level: float | None = None) -> Forecast:
        """Multi-step forecast with intervals; never mutates any state (see ForecasterView)."""
        return self._live().forecast(series, horizon, level)

    def forecast_many(self, requests: Sequence[ForecastRequest]) -> list[Forecast | ValueError]:
        """Many forecasts with one batched rollout; a bad request fails alone (see ForecasterView)."""
        return self._live().forecast_many(requests)

    def series_stats(self, series: str):
        return self._live().series_stats(series)

    def step_of(self, series: str) -> int:
        """The series' step as its results report it: the values it has seen, across restarts."""
        slot = self.store.slot_of(series)
        return int(self.store.tensors["steps"][slot]) + self.store.offsets.get(slot, 0)

    def truncation(self) -> TruncationReport:
        """The truncation advisor's report: the gradient's reach, the data's dependency
        length, and whether k2 is long enough (see advisor.py); changes nothing."""
        return advise(self)

    # -- observing ----------------------------------------------------------------
    def observe(self, series: str, value: Value) -> StepResult:
        return self.observe_many([(series, value)])[0]

    def observe_many(self, items: Iterable[tuple[str, Value]]) -> StepResults:
        """Observe values of many series; results come back in the order given.

        The k-th value of each series in ``items`` goes into tick k: one batched
        forward per tick, each series' own order kept. Everything is validated
        before anything is applied: a bad element raises ``ValueError`` naming its
        index and nothing changes. The results are built lazily (see StepResults).
        """
        try:
            items = list(items)
        except TypeError:  # fix: observe_many(5) raised TypeError ("'int' object is not iterable")
            raise ValueError(f"observations must be an iterable of (series, value) pairs, not {items!r}") from None
        batch = self._batch  # the last batch of distinct series: (the store's slots dict, their names, their slots)
        names, raw = self.validate(items, None if batch is None else batch[1])
        if batch is not None and batch[0] is self.store.slots and names == batch[1]:
            # the same series in the same order as the last batch (a feeder's every tick), none added or removed
            # since (either replaces the store's dict): its slots again, without a lookup of each name
            return StepResults([self._tick(batch[2], raw, names)])
        slots_of, distinct = self.store.slots, set(names)
        if not slots_of.keys() >= distinct:  # C-level check; new names in order of appearance
            self._add_series([name for name in dict.fromkeys(names) if name not in slots_of])
            slots_of = self.store.slots  # adding replaced the dict (snapshots keep the old one)
        if names and len(distinct) == len(names):  # the common case: every series once, in the order given
            slots = torch.from_numpy(np.array(list(map(slots_of.__getitem__, names)), dtype=np.int64))  # [B]
            self._batch = (slots_of, list(names), slots)  # (a copy: the results hand ``names`` to the caller)
            return StepResults([self._tick(slots, raw, names)])
        ticks: list[list[int]] = []
        seen: dict[str, int] = {}
        for i, name in enumerate(names):
            k = seen.get(name, 0)
            seen[name] = k + 1
            if k == len(ticks):
                ticks.append([])
            ticks[k].append(i)
        columns, positions = [], [(0, 0)] * len(items)
        for k, tick in enumerate(ticks):
            slots = torch.tensor([slots_of[names[i]] for i in tick], dtype=torch.int64)
            columns.append(self._tick(slots, raw[torch.tensor(tick)], [names[i] for i in tick]))
            for row, i in enumerate(tick):
                positions[i] = (k, row)
        return StepResults(columns, positions)

    def validate(
        self, items: list[tuple[str, Value]], known: list[str] | None = None
    ) -> tuple[list[str], torch.Tensor]:
        """Check observations without applying them: the names, and the values as
        ``[N, d]`` float64 (NaN = missing). Raises ``ValueError`` naming the index. Names
        equal to ``known`` (a list of names checked before) are not checked again."""
        # C-level passes (map, set) over the batch; the per-element loops below run only
        # to find and name the first bad element (or to accept subclasses of tuple / str).
        if not (set(map(type, items)) <= _PAIR_TYPES and set(map(len, items)) <= {2}):
            for i, item in enumerate(items):
                if not isinstance(item, tuple | list) or len(item) != 2:
                    raise ValueError(f"observation {i}: {item!r} is not a (series, value) pair")
        names = list(map(itemgetter(0), items))
        if names and not (
            set(map(type, names)) <= {str}  # (first: a str subclass may compare equal to anything)
            and (names == known or (min(map(len, names)) > 0 and max(map(len, names)) <= MAX_NAME_LENGTH))
        ):
            names = [_check_name(name, i) for i, name in enumerate(names)]
        raw = parse_values(list(map(itemgetter(1), items)), self.config.n_features)  # [N, d]
        if (np.abs(raw.numpy()) > MAX_ABS_VALUE).any():  # one vectorised check per batch (NaN compares False)
            i = int(raw.abs().gt(MAX_ABS_VALUE).any(dim=1).nonzero()[0])  # the first bad element, named
            raise ValueError(
                f"observation {i}: series {names[i]!r}: value {format_row(raw[i].tolist())!r} is out of range: "
                f"a value's magnitude must be at most {MAX_ABS_VALUE:g}"
            )
        return names, raw

    def forget(self, series: str) -> None:
        """Drop a series and everything the model keeps for it (the weights stay)."""
        slot = self.store.slot_of(series)
        self.store.remove(series)
        self.probe.drop(slot)

    def reset_learning_rate(self) -> None:
        """Undo the instability guards' learning-rate back-offs (the configured ``lr`` again)."""
        self.engine.reset_learning_rate()

    def _add_series(self, names: list[str]) -> None:
        slots = self.store.add(names)
        self.probe.follow(slots)
        self._first_forecasts(slots)

    def _first_forecasts(self, slots: torch.Tensor) -> None:
        """What is served for a new series' first value (its rows blank)."""
        if self.config.hybrid:  # nothing is known of a new series: no forecast of its first value
            d, horizons = self.config.n_features, self.config.calibrated_horizon
            nothing = dict(served=torch.full((len(slots), 4, d), math.nan))
            self.store.put(slots, served_path=torch.full((len(slots), horizons, d), math.nan), **nothing)
            return
        with torch.no_grad():
            state = self.network.initial_state(len(slots))
            self._serve(slots, self.network.predict(state), self.store.get("stats", slots))  # the forecast of value 1

    def _restart_broken(
        self, slots: torch.Tensor, observed: torch.Tensor, stats: torch.Tensor, path: torch.Tensor
    ) -> torch.Tensor | None:
        """The rows [B] bool of the tick's series whose served mean [B, H, d] blew up, restarted
        (None: none). ``path``: the hybrid's served path, horizons 1..Hc (a forecast that blows
        up only steps ahead counts: a review's seasons of 24 and 25 served 2.2e15 twelve steps
        ahead on values of 100 to 220, unguarded), else the next mean.

        Blown up: not finite where the tick observed a value (``observed`` [B, d]), or (with
        ``normalize``, which keeps the values' sd) at a horizon h up to ``RESTART_HORIZON`` further
        than ``RESTART_FACTOR`` times h^2 (1 + |last value| + the values' sd) from the last value
        (``stats`` [B, F, d] with this value; ``scoring.any_blown_up``: further out a damped
        multiplicative trend's legitimate path outgrows any such bound). Such a series' state (its
        experts, the values its members read, its carried network state) is past repair, and its
        forecasts and scores, in float32 rings, were about to be NaN: a hostile test's runaway
        series served None for good and, its network input NaN, had every update of the shared
        weights skipped for the series ticking with it. It starts again as a new series would, under
        its name, its prequential statistics kept, counted in them (``restarts``); its step goes on
        from where it was (``restarted_steps``). With ``hybrid=False`` its interval still comes from
        its lifetime squared residuals (``resid_sq``): wide after a blow-up, until new ones dilute them."""
        arrays = (path.numpy(), stats.numpy(), observed.numpy(), RESTART_FACTOR, self.config.normalize, RESTART_HORIZON)
        if not any_blown_up(*arrays):  # (numpy views, one call: the common case)
            return None
        out = np.empty(len(slots), dtype=np.bool_)
        blown_up(*arrays, out)
        broken = torch.from_numpy(out)  # [B]
        which = slots[broken]
        kept = self.store.get("stats", which)  # [b, F, d] a copy
        kept[:, STAT["restarts"]] += 1
        kept[:, STAT["restarted_steps"]] += self.store.get("steps", which)[:, None].double()
        self._start_again(which, kept)
        return broken

    def _start_again(self, which: torch.Tensor, kept: torch.Tensor) -> None:
        """Blank the rows ``which`` [g] as new series' under their names, but for their statistics ``kept``
        [g, F, d] (their ``restarts`` and ``restarted_steps`` already counted) and their coverage per horizon
        (``hybrid.COVERAGE``, as it is): their step goes on from
        ``restarted_steps`` (``SeriesStore.offsets``), and they are served what a new series is."""
        self.store.reset(which, keep=("stats", *hybrid.COVERAGE))  # (its coverage per horizon: a statistic too)
        self.store.put(which, stats=kept)
        restarted = kept[:, STAT["restarted_steps"], 0].long().tolist()
        self.store.offsets = {**self.store.offsets, **dict(zip(which.tolist(), restarted, strict=True))}
        self.probe.restart(which)
        self._first_forecasts(which)

    def _restart_glitched(self, slots: torch.Tensor, steps: torch.Tensor, names: list[str]) -> torch.Tensor | None:
        """The rows [B] bool of the tick's series (hybrid) that start again from their second value (None: none):
        at their value ``GLITCH_AT``, all observed so far (none missing, no restart before), where some feature's
        first change |y2 - y1| is more than ``GLITCH_RATIO`` times the largest of the next ones, which are not all
        0, and more than ``GLITCH_ROUNDING`` of the largest |y|. The row is blanked as a blown-up one is (its
        statistics and coverage per horizon kept, the glitch scored in them as it was served; ``restarts`` counts
        it), and its values 2 .. ``GLITCH_AT`` are observed again in ticks of its own, whose results nobody reads:
        its state is then that of a series whose first values were those (the shared network's weights aside, which
        those ticks may update as any tick does), and its step goes on (``restarted_steps`` + 1). Its statistics,
        its coverage per horizon and the forecaster's count of observations are put back as the tick left them: no
        value is counted twice."""
        due = (steps == GLITCH_AT).nonzero().squeeze(1)
        if not len(due):
            return None
        stats = self.store.get("stats", slots[due])  # [b, F, d]
        # values 2 .. K observed and scored (a forecast is served from value 2 on), value 1 too (a state starts
        # at its first observed value: ``_start_at_first_value``), and no restart before
        scored = (stats[:, STAT["score_n"]] == GLITCH_AT - 1).all(dim=1)  # [b]
        clean = (stats[:, STAT["restarts"]] == 0).all(dim=1) & scored
        y = self.store.get("x_raw", slots[due])[:, :GLITCH_AT]  # [b, K, d] values 1..K (step t at ring index t - 1)
        changes = y.diff(dim=1).abs()  # [b, K - 1, d]
        first, rest = changes[:, 0], changes[:, 1:].amax(dim=1)  # [b, d] each
        rounding = GLITCH_ROUNDING * y.abs().amax(dim=1)  # [b, d]
        # (the next changes not all 0: a count's 1, 0, 0, 0, 0 is no glitch, 6 % of a Poisson(0.5)'s rows were)
        glitch = clean & ((first > GLITCH_RATIO * rest) & (rest > 0) & (first > rounding)).any(dim=1)  # [b]
        if not bool(glitch.any()):
            return None
        rows = due[glitch]  # [g] the tick's rows that start again
        which, again = slots[rows], y[glitch, 1:]  # [g], [g, K - 1, d]: their values 2 .. K
        kept = stats[glitch]  # [g, F, d] as this tick left them
        kept[:, STAT["restarts"]] += 1
        kept[:, STAT["restarted_steps"]] += 1  # value 1: values 2 .. K become the new state's steps 1 .. K - 1
        coverage = {k: self.store.get(k, which) for k in hybrid.COVERAGE}  # [g, H, 4, d] each, copies
        self._start_again(which, kept)
        observations, names_of = self.observations, [names[i] for i in rows.tolist()]
        for j in range(again.shape[1]):
            self._tick(which, again[:, j], names_of)  # (its results are those values' again: not reported)
        restarts = [STAT["restarts"], STAT["restarted_steps"]]  # as those ticks left them: one of them may have
        kept[:, restarts] = self.store.get("stats", which)[:, restarts]  # restarted a blown-up row (a review)
        self.store.put(which, stats=kept, **coverage)
        self.observations = observations
        out = torch.zeros(len(slots), dtype=torch.bool)
        out[rows] = True
        return out

    def _start_at_first_value(
        self, slots: torch.Tensor, mask: torch.Tensor, stats: torch.Tensor, steps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The tick's ``stats`` [B, F, d] and ``steps`` [B] (before the tick), after the rows (hybrid) whose first
        observed value this tick brings, after missing ones, were blanked: their state starts at this value as a
        new series' would, the missing values before it counted in their step (``restarted_steps``, not in
        ``restarts``). Their ticks had written the experts' ring as 0 (nothing to impute from), which the season
        detection read as a step from 0 to the values: 30 missing values before a daily sine's first were a season
        of 23 for about 2,000 values, its 12-step MAE 10 to 22 % worse over 1,800 values (a new user, session
        53)."""
        never = torch.isnan(stats[:, STAT["last_value"]]).all(dim=1)  # [B] no value observed yet (kept across restarts)
        late = never & (steps > 0) & mask.any(dim=1)  # [B]
        if not bool(late.any()):
            return stats, steps
        which = slots[late]
        kept = stats[late]  # [g, F, d]
        kept[:, STAT["restarted_steps"]] += steps[late][:, None].double()  # the missing values: its step goes on
        self._start_again(which, kept)
        stats, steps = stats.clone(), steps.clone()
        stats[late], steps[late] = kept, 0
        return stats, steps

    def _serve(
        self, slots: torch.Tensor, pred: torch.Tensor, stats: torch.Tensor, scale: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Store the one-step forecast ``pred`` [B, p] made with the series' ``stats`` [B, F, d]
        (and their std ``scale``, computed here when not given): raw, and as served."""
        if scale is None and self.config.normalize:
            scale = std(stats[:, STAT["norm_count"]], stats[:, STAT["norm_m2"]])
        served = served_rows(pred, self.config.n_features, stats, self._z, scale if self.config.normalize else None)
        self.store.put(slots, next_pred=pred, served=served)
        return served  # [B, 4, d]

    def _tick(self, slots: torch.Tensor, raw: torch.Tensor, names: list[str]) -> TickColumns:
        """Consume one value of each of B distinct series: raw [B, d] float64, NaN = missing."""
        cfg, st = self.config, self.store
        stats = st.get("stats", slots)  # [B, F, d] float64, rows named by STAT_FIELDS
        sent, held = raw, None  # what the results report; where a stuck value's repeat was held [B, d] (None: none)
        if cfg.flat_improbable is not None:  # a stuck value's repeats: missing (flat_runs.hold_flat_runs)
            raw, held = hold_flat_runs(stats, raw, cfg.flat_improbable)
        mask = ~torch.isnan(raw)  # [B, d]
        before = st.get("steps", slots)  # [B] t - 1
        if cfg.hybrid:
            stats, before = self._start_at_first_value(slots, mask, stats, before)
        mean_n, *made = st.get("served", slots).unbind(1)  # [B, d] each: what was served for this value
        new_stats = observed_stats(stats, raw, mask, cfg.normalize)  # the normaliser and last value with raw
        scale = None
        if cfg.normalize and not cfg.hybrid:  # (the hybrid's network sees its own features)
            scale = std(new_stats[:, STAT["norm_count"]], new_stats[:, STAT["norm_m2"]])  # [B, d]
        steps = before + 1  # [B] t after this value
        rows, flagged = None, None
        if cfg.hybrid:  # inputs: the hybrid's features; target: the experts' error (see hybrid.py)
            rows, in_place = st.hybrid_rows(slots)  # the store's rows themselves, or copies (saved for snapshots first)
            store_rows = dict(rows) if in_place else None  # the store's own fields: the kernels write them in place
            x, y, target_mask, paths, base, flagged = self.hybrid_tick.step(rows, raw, mask, made, stats, steps)
            residual = y
        else:
            centre = new_stats[:, STAT["norm_mean"]]
            x = (raw - centre) / scale if cfg.normalize else raw  # normalised with the stats including it
            x = torch.where(mask, x, mean_n)  # a missing value: the model feeds its own forecast
            y, target_mask = x, mask
            residual = torch.where(mask, x - mean_n, 0.0)
        add_scores(new_stats, stats, raw, mask, *made, residual)  # scored where a forecast was served
        diverged = cfg.guards and not cfg.hybrid and self._prequential_diverges(raw, made[0], stats, mask)
        stats = new_stats
        st.put(slots, stats=stats, steps=steps)
        ring = before % cfg.ring_size  # [B] where step t lives: (t - 1) % R
        x = x.to(self.dtype)  # [B, i] the network's input, as the history keeps it
        st.put_at("hist_x", (slots, ring), x)
        st.put_at("hist_y", (slots, ring), y.to(self.dtype))
        st.put_at("hist_mask", (slots, ring), target_mask)

        attempts = self.engine.attempts
        if cfg.mode == "stateful":
            before = st.state("carried", slots)  # ĥ_{t-1}
            if cfg.probe_every:
                self.probe.record(slots, x, y, target_mask, before)
            with torch.no_grad():
                carried = self.network.advance(x, before)  # ĥ_t
            st.put_state("carried", slots, carried)
            self._store_anchors(slots, steps)
            # (numpy: a tick's few steps without torch's per-operation overhead)
            due = (steps.numpy() % cfg.k1 == 0) | (steps.numpy() <= cfg.resolved_warmup_updates)  # [B]
            updated = torch.from_numpy(due)
            if due.any():
                self._update_stateful(slots[updated], steps[updated])
        else:
            if cfg.probe_every:
                self.probe.record(slots, x, y, target_mask, None)
            due = (self.observations + len(slots)) // cfg.k1 - self.observations // cfg.k1
            ran = any([self._update_stateless() for _ in range(due)])
            updated = torch.full((len(slots),), ran)
            carried = self._refresh_stateless(slots)
        self.observations += len(slots)
        if cfg.probe_every and _probe_due(attempts, self.engine.attempts, cfg.probe_every):
            self.probe.rotate(slots)  # stale rows go to series of this tick (probe.py)
            self.probe_truncation()

        with torch.no_grad():  # an update changed the weights, never the carried state
            if diverged:  # served far worse than the naive forecast: back to the good weights
                self.engine.rollback()
            next_pred = self.network.predict(carried)  # [B, p] with updated weights
            limit = self.engine.guard.blowup_limit() if cfg.guards else math.inf  # inf: nothing is past it
            if limit < math.inf and (np.abs(next_pred[:, : cfg.n_features].numpy()) > limit).any():
                # a forecast blow-up: the weights go back to the last good copy, the forecasts are made again
                self.engine.guard.counts["blowups"] += 1
                self.engine.rollback()
                next_pred = self.network.predict(carried)
        if rows is not None:
            served, path = self.hybrid_tick.serve(rows, store_rows, slots, steps, next_pred, paths, base)
            nxt = served.unbind(1)[1:]
        else:
            if cfg.residual:
                next_pred = shift_mean(next_pred, x)  # the change from x_t
            nxt = self._serve(slots, next_pred, stats, scale).unbind(1)[1:]  # mean, lower, upper [B, d] each
            path = nxt[0][:, None]  # [B, 1, d] (a view): the one step it serves
        offsets = self.store.offsets  # (empty unless a series restarted)
        reported = steps + offsets_at(offsets, slots) if offsets else steps
        broken = self._restart_broken(slots, mask, stats, path)
        glitched = self._restart_glitched(slots, steps, names) if rows is not None else None
        if broken is not None or glitched is not None:  # a series that starts again is served what its new state
            # serves (blown up: nothing, as a new series; a first value's glitch: the state of its values 2 to 5)
            restarted = broken if glitched is None else glitched if broken is None else broken | glitched
            served = self.store.get("served", slots).unbind(1)[1:]  # mean, lower, upper [B, d], as stored now
            nxt = tuple(torch.where(restarted[:, None], new, old) for new, old in zip(served, nxt, strict=True))
        held = None if held is None else held.any(1)  # [B] (any feature)
        return TickColumns(names, reported, updated, self.engine.updates, (sent, *made, *nxt), flagged, held)

    def _prequential_diverges(
        self, raw: torch.Tensor, made: torch.Tensor, stats: torch.Tensor, observed: torch.Tensor
    ) -> bool:
        """Fold the tick's served and naive absolute errors into the guard (see guards.py)."""
        naive = stats[:, STAT["last_value"]]  # [B, d] the value before this one (NaN: none yet)
        both = observed & ~torch.isnan(made) & ~torch.isnan(naive)  # scored (a forecast was served), naive too
        if not bool(both.any()):
            return False
        error = float((raw - made).abs()[both].mean())
        naive_error = float((raw - naive).abs()[both].mean())
        return self.engine.guard.served(error, naive_error)

    # -- stateful -----------------------------------------------------------------
    def _store_anchors(self, slots: torch.Tensor, steps: torch.Tensor) -> None:
        """Keep ĥ_s where a future window will start: s = t - K for a t that is a multiple
        of k1 and a window K in k2 (adaptive: k2_min, k2_min + k1, ... k2_max), i.e.
        (s + K) % k1 == 0 for the shortest K; it is used at t = s + K."""
        k1, base = self.config.k1, self.config.min_window
        due = (steps.numpy() + base) % k1 == 0  # [B] (numpy: no torch overhead on most ticks, where none is)
        if due.any():
            due = torch.from_numpy(due)
            which = (steps[due] + base) // k1 % self.store.anchors  # [n] ring index j % A
            self.store.put_state("anchor", slots[due], self.store.state("carried", slots[due]), which)

    def _update_stateful(self, slots: torch.Tensor, steps: torch.Tensor) -> None:
        """One replay for every series due: windows of min(t, K) values aligned at t, each
        scoring its last m_t steps (the steps since its previous update, see loss_steps);
        K = k2, or the adaptive window the last probe chose."""
        k1, k2 = self.config.k1, self.probe.window if self.config.adaptive else self.config.k2
        warmup = self.config.resolved_warmup_updates
        # (the update's few integers in numpy: without torch's per-operation overhead)
        t = steps.numpy()  # [B]
        lengths = np.minimum(t, k2)  # [B] w = min(t, K)
        length = int(lengths.max())
        scored = loss_steps(t, k1, k2, warmup)  # [B] m_t
        m = int(scored.max())
        residual = self.config.residual and not self.config.hybrid  # the base: the residual head's x_{s-1}
        x, y, mask, base = window(self.store.tensors, self.config.ring_size, slots, steps, length, residual)
        # a row scoring fewer than m steps has its earlier ones among the last m left out of the loss
        at = np.arange(length)[:, None]  # [L, 1]
        mask = mask & torch.from_numpy((at >= length - scored[None, :]) | (at < length - m))[..., None]
        # The window starts at the stored live state ĥ_{t-k2}, which is detached (it was
        # stored from a no-grad forward): the value crosses the boundary, the gradient not.
        back = (k2 - self.config.min_window) // k1  # anchors between ĥ_{t-K} and ĥ_{t-k2_min}
        anchor = self.store.state("anchor", slots, torch.from_numpy((t // k1 - back) % self.store.anchors))
        start = anchor  # t > K for every row (the common case): the anchors as they are
        if not (t > k2).all():  # t <= K: h_0
            start = select_rows(torch.from_numpy(t > k2), anchor, self.network.initial_state(len(slots)))
        base = base[length - m :] if residual else None
        settled = bool((t > warmup).all())  # no series in its warm-up
        active_from = torch.from_numpy(length - lengths)
        self.engine.replay_update(start, x, y, mask, active_from, m, base, window=k2, settled=settled)

    # -- the truncation probe -------------------------------------------------------
    def probe_truncation(self) -> bool:
        """Measure the gradient's reach on the followed series' full windows (the weights are
        not touched), fold it into the advisor's statistics, look for the data's longest lag,
        and in adaptive mode choose the window of the next updates. False when no followed
        series holds a full window yet."""
        cfg, probe = self.config, self.probe
        windows = self.probe_windows()
        if windows is None:
            return False
        params = self.engine.params
        norms, full = probe_gradients(self.network, params, windows, cfg.loss)  # [K_p, n], g
        # A window through values near the bound can overflow a float32 network's gradient: it teaches
        # the advisor nothing, and one NaN in phi would stay there (and in every checkpoint) for good.
        finite = torch.isfinite(norms).all(dim=0)  # [n]
        if bool(finite.any()):
            probe.update_phi(norms[:, finite].mean(dim=1), int(finite.sum()))
        values, _ = probe.targets()
        live = probe.tensors["slots"] >= 0
        previous = probe.tensors["lags"].clone()  # [P] the lags of the previous probe
        probe.tensors["lags"][live] = longest_lag(values, max_lag=probe.lag_memory // 3)
        if cfg.adaptive:
            phi, candidates = probe.tensors["phi"], cfg.window_candidates
            gradient = adaptive_window(phi, fit_decay(phi), candidates, cfg.truncation_bias)
            # The bias measures what the current weights reach, short before they learn anything
            # long: the window also covers the dependency the data showed at two probes running.
            dependency = int(confirmed_lags(previous, probe.tensors["lags"]).max())
            probe.window = max(gradient, data_window(dependency, cfg.k1, candidates))
        # the bias of the window the next updates use, measured on the same windows (the finite ones)
        if not bool(finite.all()):
            windows, full = windows.rows(finite), None
        measured = None
        if bool(finite.any()):
            measured = measured_bias(self.network, params, windows, cfg.loss, probe.window, full)
        probe.tensors["measured"] = torch.tensor([math.nan if measured is None else measured], dtype=torch.float64)
        return True

    def probe_windows(self) -> ProbeWindows | None:
        """The probe's full windows as the updates would score their last step (``ProbeWindows``:
        ``TruncationProbe.full_windows``; stateless windows start at h_0; the base x_{t-1} for a
        network-only model's residual head). None when no followed series holds a full window."""
        windows = self.probe.full_windows()
        if windows is None:
            return None
        start, x, y, mask = windows
        if self.config.mode == "stateless":  # stateless windows start at h_0
            start = self.network.initial_state(y.shape[0])
        residual = self.config.residual and not self.config.hybrid and x.shape[0] > 0
        return ProbeWindows(start, x, y, mask, x[-1, :, : y.shape[1]] if residual else None)

    # -- stateless ----------------------------------------------------------------
    def _update_stateless(self) -> bool:
        """One update on sampled windows; False when no series holds a full window yet."""
        cfg, st = self.config, self.store
        steps = st.tensors["steps"]
        live = torch.zeros_like(steps, dtype=torch.bool)
        live[torch.tensor(list(st.slots.values()), dtype=torch.int64)] = True
        slots, ends = self.sampler(torch.where(live, steps, 0), cfg.resolved_history_size, cfg.k2, cfg.replay_batch)
        if len(slots) == 0:
            return False
        residual = cfg.residual and not cfg.hybrid
        x, y, mask, base = window(self.store.tensors, cfg.ring_size, slots, ends, cfg.k2, residual)  # [k2, n, .]
        start = self.network.initial_state(len(slots))  # every window from the fresh state
        zeros = torch.zeros(len(slots), dtype=torch.int64)
        self.engine.replay_update(start, x, y, mask, zeros, cfg.k2, base)
        return True  # ran (a non-finite one is skipped and counted, as in stateful mode)

    def _refresh_stateless(self, slots: torch.Tensor) -> State:
        """Carried state := a fresh state run over the last min(t, k2) values (returned)."""
        with torch.no_grad():
            state = fresh_state(self.network, self.store.tensors, self.config.ring_size, self.config.k2, slots)
        self.store.put_state("carried", slots, state)
        return state

    # -- persistence --------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit-identically: tensors and plain values only,
        so it loads with ``torch.load(weights_only=True)``."""
        sampler_state = self.sampler.generator.get_state() if hasattr(self.sampler, "generator") else None
        return {
            "format": FORMAT_VERSION,
            "config": self.config.to_dict(),
            "network": {k: v.clone() for k, v in self.network.state_dict().items()},
            "engine": copy.deepcopy(self.engine.state_dict()),
            "store": self.store.state_dict(),
            "observations": self.observations,
            "sampler": sampler_state,
            "probe": self.probe.state_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], sampler: WindowSampler | None = None) -> Forecaster:
        state = _loadable(state)
        forecaster = cls(ForecasterConfig.from_dict(state["config"]), sampler)
        forecaster.load_state(state)
        return forecaster

    def load_state(self, state: dict[str, Any]) -> None:
        """Load a state dict of a forecaster with the same config (ValueError otherwise); an
        older format is migrated first (state_format.py). A state refused part way (a field of
        the wrong shape) changes nothing: what was loaded before the refusal is put back (the
        weights had been replaced when a series field was refused, and the forecaster went on
        with its own series and another model's network and optimizer)."""
        state = _loadable(state)
        config = ForecasterConfig.from_dict(state["config"])
        if config != self.config:
            raise ValueError(f"config {config} does not match this forecaster's {self.config}")
        generator = getattr(self.sampler, "generator", None)
        kept = (  # the weights and optimizer copied (small); the store's and probe's fields are replaced, not written
            copy.deepcopy(self.network.state_dict()),
            copy.deepcopy(self.engine.state_dict()),
            dict(vars(self.store)),
            dict(vars(self.probe)),
            self.observations,
            None if generator is None else generator.get_state(),
        )
        try:
            self._load(state)
        except Exception as error:
            network, engine, store, probe, self.observations, sampler = kept
            self.network.load_state_dict(network)
            self.engine.load_state_dict(engine)
            vars(self.store).update(store)
            vars(self.probe).update(probe)
            if generator is not None:
                generator.set_state(sampler)
            if isinstance(error, ValueError):
                raise
            raise ValueError(  # torch's or Python's own error for a malformed state (a hostile test, session 48)
                f"state is invalid: {type(error).__name__}: {str(error)[:300]} (tbptt_online.state_check.check_state "
                "names the field)"
            ) from error

    def _load(self, state: dict[str, Any]) -> None:
        self.network.load_state_dict(state["network"])
        self.engine.load_state_dict(copy.deepcopy(state["engine"]))
        self.store.load_state_dict(state["store"])
        live = torch.tensor(list(self.store.slots.values()), dtype=torch.int64)
        with torch.no_grad():  # the derived rows: the served forecasts, from what was saved
            if self.config.hybrid:
                self.hybrid_tick.rebuild_served(live)
            else:
                self._serve(live, self.store.get("next_pred", live), self.store.get("stats", live))
        self.observations = int(state["observations"])
        self.probe.load_state_dict(state["probe"])
        if state["sampler"] is not None and hasattr(self.sampler, "generator"):
            self.sampler.generator.set_state(state["sampler"])
        self._frozen = None


def _probe_due(before: int, after: int, every: int) -> bool:
    """A probe is due when the update count passes a multiple of ``every``, or, before the
    first of those, an eighth, a quarter or a half of it: the adaptive window follows a lag
    once two probes have found it, so a young model learns its window in ``every // 4``
    updates instead of ``2 * every``.

    >>> [n for n in range(1, 200) if _probe_due(n - 1, n, 64)]
    [8, 16, 32, 64, 128, 192]
    """
    if after // every > before // every:
        return True
    if after >= every:
        return False
    marks = [m for m in (every // 8, every // 4, every // 2) if m >= 1]
    return any(before < m <= after for m in marks)
