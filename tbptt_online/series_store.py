"""SeriesStore: every series' private state, one row per series in shared tensors.

A series owns a *slot* (a row index). Each field is a tensor whose first dimension
is the capacity (C), so a tick of B series is one gather and one scatter, never a
Python loop over series. Fields (d features, p outputs,
A anchors, layers x H the state, R = ``config.ring_size``):

- ``carried_h`` (+ ``carried_c`` for lstm) [C, layers, H]: the live carried state
- ``anchor_h`` (+ ``anchor_c``) [C, A, layers, H]: detached states where windows start
- ``steps`` [C] int64: values consumed; ``hist_x`` [C, R, d], ``hist_mask`` [C, R, d]:
  the ring of normalised inputs (step s at row (s - 1) % R) and which were observed
- ``stats`` [C, F, d] float64: the normaliser, the last value and the score sums,
  one row per name of ``scoring.STAT_FIELDS``
- ``next_pred`` [C, p]: the one-step forecast served after the last value
- ``served`` [C, 4, d] float64, *derived*: that forecast as served (rows ``SERVED``: its
  normalised mean, and mean, lower, upper in the series' units), kept so that the next
  value is scored without recomputing it. Not saved: ``Forecaster.load_state`` rebuilds
  it from ``next_pred`` and ``stats``; the row of a slot that holds no series is blank.
- ``served_path`` [C, Hc, d] float64, *derived* (the hybrid): the served mean at horizons
  1 .. ``calibrated_horizon`` made after the last value, so that a forecast up to that
  horizon is read, not recomputed (rebuilt on load from the saved state, as the tick made it).

Tensors are **written in place, copied on write**: a snapshot (``snapshot()``, a shallow
copy of ``tensors``) is consistent, and later ticks cannot change it. A field a snapshot or
a state_dict took is copied whole before the next write (``copied_on_write``; before,
every write replaced the whole tensor, a copy of every field on every tick even when
nobody held the old one); without a snapshot, as in a library's loop, nothing is copied,
and a tick whose slots are one run works on the hybrid's rows where they lie
(``hybrid_rows``: no gather). The hybrid's large fields (``IN_PLACE``), and any other field
whose tensor holds more than ``ROW_COPY_BYTES``, are copied on write by rows: a snapshot
reads them through ``saved_rows.AsOfSnapshot``, and each write first saves the rows it
changes for every snapshot still held. (A service publishes a snapshot after every batch:
with the small fields copied whole at any size, a long request of one series in a model of
2,000 series copied 5.6 MB a tick, 1.9 ms of its 8 ms, and glibc's heap kept the churn: the
process grew from 600 MB to 1.45 GB over 1,500 values, and from 788 MB to 3.2 GB at 5,000
series in a hostile test.) The ``PRIVATE`` fields (the
anchors): only updates read them, never a forecast, so ``snapshot()`` leaves them out and
they are written in place (at 10,000 series they are 70 % of the bytes: copying them on
every tick cost more than the tick's own work). ``state_dict`` copies
them. ``slots`` is replaced, never changed, when series come and go, so a snapshot shares
it without a copy.
"""

from __future__ import annotations

import weakref
from collections import Counter
from typing import Any

import numpy as np
import torch

from tbptt_online import huge_pages, hybrid
from tbptt_online.compiled import keep_numpy
from tbptt_online.config import ForecasterConfig
from tbptt_online.experts import SHARED
from tbptt_online.hybrid import ORIGIN_RING
from tbptt_online.network import State
from tbptt_online.saved_rows import AsOfSnapshot, SavedRows
from tbptt_online.scoring import STAT, blank_stats

MAX_NAME_LENGTH = 200


def plain_name(name: object) -> object:
    """A series name of a ``str`` subclass (an Enum of str) as its text, a plain ``str``; anything else as it is.
    Names are kept as plain strings (the subclass in the store made a checkpoint fail
    ``torch.load(weights_only=True)``: a hostile test, session 48) and looked up as them, so that a subclass
    whose hash or equality is not its text's still finds its series.

    >>> import enum
    >>> class Host(str, enum.Enum):  # noqa: UP042
    ...     WEB = "web-1"
    >>> type(plain_name(Host.WEB)), plain_name(Host.WEB), plain_name(3)
    (<class 'str'>, 'web-1', 3)
    """
    return str.__str__(name) if isinstance(name, str) and type(name) is not str else name  # (not name[:], which a
    # subclass may override: a review's)


def slots_in_use(names: list[Any]) -> int:
    """1 + the last slot that holds a series in ``names`` (a store's, None for a free slot), 0 for none:
    the rows a state holds (``SeriesStore.state_dict``), the free slots past them blank rows.

    >>> slots_in_use(["a", None, "b", None, None]), slots_in_use([None, None])
    (3, 0)
    """
    return next((i + 1 for i in range(len(names) - 1, -1, -1) if names[i] is not None), 0)


SERVED = ("mean_n", "mean", "lower", "upper")  # the rows of ``served``
DERIVED = ("served", "served_path")  # fields rebuilt on load, not saved
PRIVATE = ("anchor_h", "anchor_c", *ORIGIN_RING)  # read by updates only: in no snapshot, written in place
# The hybrid's large fields (a forecast reads them): written in place at the rows written.
# A snapshot reads them as of its making (the rows a write changes are saved for it first,
# saved_rows.py); a state_dict hands out the whole tensors, copied whole before the next
# write (checkpoints are rare; a snapshot follows every batch of a service).
IN_PLACE = ("x_raw", "x_season", "x_ar_p", "x_arc_p", "x_arl_p", "x_ars_p", "c_loss", "c_slow_loss")
# Any other field a snapshot holds is read by rows too once its tensor is larger than this (the
# history ring at about 60 series, the carried states at 250): below it a whole copy costs less.
ROW_COPY_BYTES = 65536
# Every other field but the PRIVATE ones is written in place too, but a snapshot or a
# state_dict holds the tensor itself, which is copied whole before the next write
# (``handed_out``, ``copied_on_write``): a whole copy of a small field costs less than saving
# its rows, and a library's loop (no snapshot) copies nothing.
# A tick's ``rows`` (the names alone: any level makes the same fields)
HYBRID_ROWS = tuple(k for k in hybrid.fields(0, 1, 1, 1, 1, ForecasterConfig.interval_level) if k not in ORIGIN_RING)


# A new store holds this many rows, or fewer where they would take more than INITIAL_BYTES (one
# row at least): a model with calibrated_horizon=1000 (88 MB a row) allocated 1.4 GB, and
# wrote it to every checkpoint, with no series at all. It grows by doubling.
INITIAL_ROWS, INITIAL_BYTES = 16, 16 * 2**20


def doubled_rows(initial: int, n: int) -> int:
    """The rows a store of ``initial`` rows grows to for ``n`` series: ``initial`` doubled until they
    are enough (what it holds, and what ``memory.Footprint.rows_for`` counts).

    >>> doubled_rows(16, 16), doubled_rows(16, 17), doubled_rows(16, 1000)
    (16, 32, 1024)
    """
    rows = initial
    while rows < n:
        rows *= 2
    return rows


class SeriesStore:
    _last_run: tuple[torch.Tensor, int | None] | None = None  # ``_run``'s last slots and answer (none: a copy's)

    def __init__(self, config: ForecasterConfig, dtype: torch.dtype, capacity: int | None = None) -> None:
        self.config = config
        self.dtype = dtype
        self.lstm = config.cell == "lstm"
        self.anchors = config.max_window // config.k1 + 1 if config.mode == "stateful" else 0
        self.slots: dict[str, int] = {}
        # slot -> the steps a series had seen before it restarted (its stats' restarted_steps), for
        # the series that did: their reported step is steps + this (a new dict when it changes:
        # views keep theirs). Derived from the stats, so that the common case reads nothing.
        self.offsets: dict[int, int] = {}
        self.names: list[str | None] = []
        self.free: list[int] = []
        row = sum(t.numel() * t.element_size() for t in self._blank(1, meta=True).values())  # bytes
        self.initial_rows = max(1, min(INITIAL_ROWS, INITIAL_BYTES // row))  # then doubled: memory.rows_for
        self.tensors: dict[str, torch.Tensor] = self._blank(self.initial_rows if capacity is None else capacity)
        self.handed_out: set[str] = set()  # fields a state_dict or a snapshot holds: copied before a write
        self.saving: dict[str, list[weakref.ref[SavedRows]]] = {}  # per field read by rows: live snapshots' rows
        self._views: tuple[tuple[int, int], list[torch.Tensor], dict[str, torch.Tensor]] | None = None  # hybrid_rows
        self._last_run = None

    def __getstate__(self) -> dict[str, Any]:
        """What a copy (``pickle``, ``copy.deepcopy``) takes: the store less what ties it to
        the live objects around it. The row views ``hybrid_rows`` keeps are dropped: a pickle
        shares a storage only between the same tensor objects, so the views came back as copies
        apart from the store's tensors, which the copy's ticks then wrote into instead (its
        smoothing state, combination and widths stayed as pickled while its means went on).
        Nothing reads the copy's rows as of a moment (``saving``: weak references to the
        original's snapshots, which a pickle refused). ``handed_out`` is kept: a state dict
        copied together with the forecaster (``deepcopy((f, state))``) shares its tensors
        with the copy's store, which must copy them before it writes (a review's)."""
        state = self.__dict__.copy()
        state.update(_views=None, saving={}, _last_run=None)
        return state

    # -- layout -----------------------------------------------------------------
    def _blank(self, n: int, meta: bool = False) -> dict[str, torch.Tensor]:
        """Zeroed fields of ``n`` rows (``meta``: their shapes and dtypes only, nothing allocated)."""
        if meta:
            with torch.device("meta"):
                return self._blank(n)
        cfg, dt = self.config, self.dtype
        d, layers, hid = cfg.n_features, cfg.num_layers, cfg.hidden_size
        r = cfg.ring_size
        out = {
            "carried_h": torch.zeros(n, layers, hid, dtype=dt),
            "steps": torch.zeros(n, dtype=torch.int64),
            "hist_x": torch.zeros(n, r, cfg.input_size, dtype=dt),  # what the network was fed
            "hist_y": torch.zeros(n, r, d, dtype=dt),  # what its forecast was scored against
            "hist_mask": torch.zeros(n, r, d, dtype=torch.bool),
            "stats": blank_stats(n, d),
            "next_pred": torch.zeros(n, cfg.output_size, dtype=dt),
            "served": torch.zeros(n, len(SERVED), d, dtype=torch.float64),
        }
        if cfg.hybrid:
            out.update(
                hybrid.fields(
                    n, d, cfg.values_ring_size, cfg.season_table_size, cfg.calibrated_horizon, cfg.interval_level
                )
            )
            out["served_path"] = torch.zeros(n, cfg.calibrated_horizon, d, dtype=torch.float64)
        if self.anchors:
            out["anchor_h"] = torch.zeros(n, self.anchors, layers, hid, dtype=dt)
        if self.lstm:
            out["carried_c"] = torch.zeros_like(out["carried_h"])
            if self.anchors:
                out["anchor_c"] = torch.zeros_like(out["anchor_h"])
        return out

    @property
    def capacity(self) -> int:
        return self.tensors["steps"].shape[0]

    def __len__(self) -> int:
        return len(self.slots)

    # -- names and slots --------------------------------------------------------
    def slot_of(self, name: str) -> int:
        name = plain_name(name)
        try:
            return self.slots[name]
        except KeyError:
            raise ValueError(f"series {name!r} is unknown") from None

    def add(self, names: list[str]) -> torch.Tensor:
        """Give each new name a fresh slot (reset to the blank state); returns the slots."""
        taken, slots_of = [], dict(self.slots)  # a new dict: snapshots keep the old one
        for name in names:
            slot = self.free.pop() if self.free else len(self.names)
            if slot == len(self.names):
                self.names.append(name)
            else:
                self.names[slot] = name
            slots_of[name] = slot
            taken.append(slot)
        self.slots = slots_of
        slots = torch.tensor(taken, dtype=torch.int64)
        if len(self.names) > self.capacity:
            # the initial rows doubled until there are enough, as the memory estimate counts them: growing
            # to max(n, 2 * capacity) left a capacity off that sequence (63 after a batch of 63 new series,
            # or the rows a checkpoint held) whose next doubling the estimate did not count (126 rows for
            # 64 series where 64 were counted: a hostile test)
            self.tensors = self._grown(doubled_rows(self.initial_rows, len(self.names)))
        self.put(slots, **self._blank(len(taken)))  # a reused slot forgets its last owner
        return slots

    def _grown(self, rows: int, fields: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """The ``fields`` (the store's own when None; a loaded state's in ``load_state_dict``) with ``rows``
        rows: the rows held, then blank ones. Each field is made empty and written once, the old rows
        copied and a blank row repeated (``_blank(1)``, every row of ``_blank(n)`` being the same): a
        ``torch.cat`` with ``_blank`` of the new rows zeroed and wrote every new page twice and the old
        rows' once more, and growing from 16,384 to 32,768 series stalled a tick 4.4 s (the new series'
        batch: 0.6 s before the growth)."""
        blank, grown = self._blank(1), {}
        for name, held in (self.tensors if fields is None else fields).items():
            field = torch.empty(rows, *held.shape[1:], dtype=held.dtype)  # [rows, ...]
            huge_pages.advise(field)  # before its first write: a large field on huge pages (``huge_pages``)
            field[: len(held)].copy_(held)
            field[len(held) :].copy_(blank[name].expand(rows - len(held), *held.shape[1:]))
            grown[name] = field
        return grown

    def remove(self, name: str) -> None:
        name = plain_name(name)
        slot = self.slot_of(name)
        self.slots = {other: i for other, i in self.slots.items() if other != name}  # snapshots keep the old one
        self.names[slot] = None
        self.free.append(slot)
        if slot in self.offsets:
            self.offsets = {k: v for k, v in self.offsets.items() if k != slot}
        # the whole row blank, as a new series' (the derived fields as a load would leave them): a
        # freed row kept its last owner's fields, and a checkpoint holds the rows up to the last
        # slot in use, so a forgotten series whose state had gone NaN made the model's own
        # checkpoint fail check_state
        self.put(torch.tensor([slot]), **self._blank(1))

    def reset(self, slots: torch.Tensor, keep: tuple[str, ...]) -> None:
        """Blank the rows ``slots`` [B] as new series' but for the fields ``keep``."""
        self.put(slots, **{k: v for k, v in self._blank(len(slots)).items() if k not in keep})

    # -- rows -------------------------------------------------------------------
    def get(self, field: str, slots: torch.Tensor) -> torch.Tensor:
        """The rows ``slots`` [B] of the field, a copy."""
        run = self._run(slots)
        if run is not None:  # (a run of rows, a tick's of every series in slot order: a slice's copy, no gather)
            return self.tensors[field][run : run + len(slots)].clone()
        return self.tensors[field][slots]

    def _run(self, slots: torch.Tensor) -> int | None:
        """a where ``slots`` [B] (B >= 1) is a, a + 1, ..., a + B - 1, else None (``_run_start``), remembered for
        the last tensor asked about: a tick's slots are asked about a dozen times, and a batch of the series of the
        last one is that batch's tensor again (``Forecaster.observe_many``). Nothing writes a slots tensor."""
        held = self._last_run
        if held is not None and held[0] is slots:
            return held[1]
        run = _run_start(slots) if slots.dtype == torch.int64 and slots.dim() == 1 and len(slots) else None
        self._last_run = (slots, run)
        return run

    def snapshot(self) -> dict[str, torch.Tensor | AsOfSnapshot]:
        """The fields a forecast may read, as they are now: later ticks replace them, never
        change them; the ``IN_PLACE`` ones and the large ones (``by_rows``) are read as of now,
        by rows (``AsOfSnapshot``); the ``PRIVATE`` ones, which no forecast reads, are left
        out; the others are copied whole before their next write."""
        out: dict[str, torch.Tensor | AsOfSnapshot] = {}
        for k, v in self.tensors.items():
            if k in PRIVATE:
                continue
            if self.by_rows(k):
                saved = SavedRows(v)
                self.saving.setdefault(k, []).append(weakref.ref(saved))
                out[k] = AsOfSnapshot(v, saved)
            else:
                out[k] = v
                self.handed_out.add(k)
        return out

    def by_rows(self, field: str) -> bool:
        """Whether a snapshot reads ``field`` by rows (its rows saved before a write) rather than
        holding the tensor (copied whole before the next write): ``IN_PLACE``, or larger than
        ``ROW_COPY_BYTES`` now."""
        tensor = self.tensors[field]
        return field in IN_PLACE or tensor.numel() * tensor.element_size() > ROW_COPY_BYTES

    @property
    def copied_on_write(self) -> tuple[str, ...]:
        """The fields a snapshot holds whole: copied before the first write after it."""
        return tuple(k for k in self.tensors if k not in PRIVATE and not self.by_rows(k))

    def put(self, slots: torch.Tensor, **rows: torch.Tensor) -> None:
        """Write rows in place (``writable``: what a snapshot or a state_dict holds is copied or
        saved first)."""
        run = self._run(slots)
        for field, value in rows.items():
            current = self.tensors[field]
            if value.dtype != current.dtype:
                value = value.to(current.dtype)
            target = self.writable(field, slots)
            if run is not None and value.shape == (len(slots), *target.shape[1:]):  # a run of rows: a slice's copy
                target[run : run + len(slots)].copy_(value)
            else:
                target.index_copy_(0, slots, value)

    def put_at(self, field: str, index: tuple[torch.Tensor, ...], value: torch.Tensor) -> None:
        """Write ``value`` at an advanced index, e.g. (slots, ring positions), in place (as ``put``)."""
        current = self.tensors[field]
        if value.dtype != current.dtype:
            value = value.to(current.dtype)
        target, run = self.writable(field, index[0]), self._run(index[0])
        if run is not None and len(index) <= 2:  # a run of rows, at one place of each (every series at one step)
            place = index[1].numpy() if len(index) == 2 else None
            if place is None or (len(place) and (place == place[0]).all()):
                rows = target[run : run + len(index[0])]
                part = rows if place is None else rows[:, int(place[0])]
                if value.shape == part.shape:
                    part.copy_(value)
                    return
        target.index_put_(index, value)

    def writable(self, field: str, slots: torch.Tensor) -> torch.Tensor:
        """The field's tensor, to be written in place at rows ``slots`` [B] (int64) and
        nowhere else: their values are saved first for every snapshot still held, and the
        whole tensor is copied first if a state_dict holds it."""
        if field in self.handed_out:
            self.tensors[field] = self.tensors[field].clone()
            self.handed_out.discard(field)
        current = self.tensors[field]
        if field in self.saving:
            live = []
            for ref in self.saving[field]:
                saved = ref()
                if saved is not None and saved.base is current:  # held, and of this tensor
                    saved.save(slots)
                    live.append(ref)
            if live:
                self.saving[field] = live
            else:  # no snapshot of it is held any more (``hybrid_rows``' quick path needs none)
                del self.saving[field]
        return current

    def hybrid_rows(self, slots: torch.Tensor) -> tuple[dict[str, torch.Tensor], bool]:
        """The hybrid's ``rows`` for a tick of ``slots`` [B] (``hybrid.rows_at``'s layout), to be
        written in place: each field made writable first (its rows saved for the snapshots);
        where the slots are one run a, a + 1, ... (one series; or every series in the order
        they came) its rows are views of the store's tensors (True: the kernels' writes land in
        the store, and ``put`` is needed only for a field whose tensor the tick replaced), else
        gathered copies (False: ``put`` writes each back). The views of the last run are kept
        and given again while the run and the fields' tensors are the same (a series' next tick:
        two dozen slices cost more than its kernels' arithmetic)."""
        run = _run_start(slots)
        if self.handed_out or self.saving:
            bases = [self.writable(field, slots) for field in HYBRID_ROWS]
        else:  # nothing to copy or save first (most ticks): ``writable`` would return the tensors as they are
            bases = list(map(self.tensors.__getitem__, HYBRID_ROWS))
        if run is None:
            rows = {k: v if k in SHARED else v[slots] for k, v in zip(HYBRID_ROWS, bases, strict=True)}  # copies
        else:
            key = (run, len(slots))
            held = self._views
            if held is None or held[0] != key or any(a is not b for a, b in zip(bases, held[1], strict=True)):
                views = {
                    k: v if k in SHARED else v[run : run + len(slots)] for k, v in zip(HYBRID_ROWS, bases, strict=True)
                }
                self._views = (key, bases, views)  # [B, ...] views each (the SHARED ones whole)
                keep_numpy(list(views.values()))  # the kernels' arrays of them, converted once
            rows = dict(self._views[2])
        rows["slot"] = slots
        return rows, run is not None

    def state(self, prefix: str, slots: torch.Tensor, *more: torch.Tensor) -> State:
        """The state stored under ``prefix`` ('carried' or 'anchor') for ``slots``."""
        h = self.tensors[f"{prefix}_h"][(slots, *more)]
        return (h, self.tensors[f"{prefix}_c"][(slots, *more)]) if self.lstm else h

    def put_state(self, prefix: str, slots: torch.Tensor, state: State, *more: torch.Tensor) -> None:
        parts = zip(("h", "c"), state, strict=True) if self.lstm else [("h", state)]
        for part, value in parts:
            self.put_at(f"{prefix}_{part}", (slots, *more), value.detach())

    # -- persistence ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        # The PRIVATE fields are copied: later ticks write them in place, and the state may be
        # saved on another thread (the service's checkpoints).
        # Only the rows of slots (the spare capacity is zeros, and would be written whole: a
        # store of 1,025 series holds 2,048 rows): those copied, or the whole tensor where every
        # row is a slot (copied before the next write, as a snapshot's).
        # up to the last slot in use: the free slots past it are blank rows (``remove``), which a load
        # makes again (forgetting 99 of 100 series left their rows in every checkpoint, a new user's)
        used = slots_in_use(self.names)
        whole = used == self.capacity
        fields = [k for k in self.tensors if k not in DERIVED]
        tensors = {k: self.tensors[k] if whole and k not in PRIVATE else self.tensors[k][:used].clone() for k in fields}
        if whole:
            self.handed_out.update(k for k in fields if k not in PRIVATE)
        return {"names": list(self.names), "free": list(self.free), "tensors": tensors}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load saved fields; the derived ones come back blank (the caller rebuilds them)."""
        expected = {k: v for k, v in self._blank(0).items() if k not in DERIVED}
        tensors = state["tensors"]
        if set(tensors) != set(expected):
            raise ValueError(f"series state has fields {sorted(tensors)}, expected {sorted(expected)}")
        for key, blank in expected.items():
            t = tensors[key]
            if t.dtype != blank.dtype or t.shape[1:] != blank.shape[1:]:
                raise ValueError(
                    f"series state field {key!r} has shape {tuple(t.shape)} {t.dtype}, "
                    f"expected (*, {', '.join(map(str, blank.shape[1:]))}) {blank.dtype}"
                )
            if t.requires_grad:  # (torch.load keeps the flag: every later observe raised, a hostile test, session 48)
                raise ValueError(f"series state field {key!r} requires the gradient; a saved state's never does")
        rows, names, free = tensors["steps"].shape[0], state["names"], state["free"]
        if any(t.shape[0] != rows for t in tensors.values()):  # (a short field raised IndexError at a later tick)
            raise ValueError(f"series state fields hold different numbers of rows; 'steps' holds {rows}")
        used = slots_in_use(names)
        if used > rows:  # only free slots lie past the rows saved (``state_dict``): a cut state loaded them blank
            raise ValueError(f"series state names {names[used - 1]!r} in slot {used - 1}, past its {rows} rows")
        if any(not 0 <= int(i) < len(names) or names[int(i)] is not None for i in free):
            raise ValueError("series state lists a free slot that is not one of its free slots")
        live = Counter(name for name in state["names"] if name is not None)
        if any(count > 1 for count in live.values()):  # (a row was left orphaned, the same test's)
            twice = sorted(name for name, count in live.items() if count > 1)[:3]
            raise ValueError(f"series state names {twice} more than once; a name holds one slot")
        self.names = list(state["names"])
        self.free = [int(i) for i in state["free"]]
        self.slots = {name: i for i, name in enumerate(self.names) if name is not None}
        capacity = max(rows, len(self.names))  # the free slots past the rows saved: blank rows (``state_dict``)
        if rows < capacity:
            tensors = self._grown(capacity, tensors)
        self.saving = {}  # snapshots hold the old tensors, which nothing writes any more
        self.tensors = {  # in the order of a fresh store; derived fields blank (zeros)
            k: torch.zeros(capacity, *v.shape[1:], dtype=v.dtype)
            if k in DERIVED
            else tensors[k].clone()  # PRIVATE fields are written in place: never the caller's tensor
            if k in PRIVATE
            else tensors[k]
            for k, v in self._blank(0).items()
        }
        self.handed_out = {k for k in self.tensors if k not in PRIVATE and k not in DERIVED}  # the caller's
        self.offsets = _offsets(self.tensors["stats"], self.slots)


def _offsets(stats: torch.Tensor, slots: dict[str, int]) -> dict[int, int]:
    """slot -> restarted_steps of the live series that restarted (``SeriesStore.offsets``)."""
    live = torch.tensor(sorted(slots.values()), dtype=torch.int64)
    restarted = stats[live, STAT["restarted_steps"], 0] if len(live) else torch.zeros(0)
    return {int(live[i]): int(restarted[i]) for i in (restarted > 0).nonzero().squeeze(1).tolist()}


def offsets_at(offsets: dict[int, int], slots: torch.Tensor) -> torch.Tensor:
    """``[B]`` int64: the restarted steps ``offsets`` (``SeriesStore.offsets``: slot -> steps before a
    restart) of each of ``slots`` [B], 0 where none. By a search in the few restarted slots: a tick's
    lookup of every slot in the dict, in Python, cost about 1.1 ms at 10,000 series.

    >>> offsets_at({7: 40, 2: 5}, torch.tensor([3, 7, 2, 9])).tolist()
    [0, 40, 5, 0]
    """
    items = sorted(offsets.items())
    keys = torch.tensor([k for k, _ in items], dtype=torch.int64)  # [K] sorted
    values = torch.tensor([v for _, v in items], dtype=torch.int64)  # [K]
    if not len(keys):
        return torch.zeros(len(slots), dtype=torch.int64)
    at = torch.searchsorted(keys, slots).clamp(max=len(keys) - 1)  # [B] where each slot would be among the keys
    return torch.where(keys[at] == slots, values[at], 0)


def _run_start(slots: torch.Tensor) -> int | None:
    """a when ``slots`` [B] (B >= 1) is a, a + 1, ..., a + B - 1, else None."""
    s = slots.numpy()
    if len(s) == 1 or (s[-1] - s[0] == len(s) - 1 and (np.diff(s) == 1).all()):
        return int(s[0])
    return None


def window(
    tensors: dict[str, torch.Tensor],
    ring_size: int,
    slots: torch.Tensor,
    last: torch.Tensor,
    length: int,
    with_base: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The ``length`` steps of each series ending at step ``last`` [B], read from the
    history ring of ``tensors`` (a store's, or a snapshot's): the inputs x [L, B, i], the
    targets y and mask [L, B, d] (mask False before step 1: padding), and base [L, B, d],
    the target before each step (0 before step 2: the residual head's base; None unless
    ``with_base``)."""
    # (the indices in numpy: a window's few integers without torch's per-operation overhead)
    step_of = last.numpy()[None, :] - np.arange(length - 1, -1, -1)[:, None]  # [L, B]
    rows, at = slots.numpy()[None, :], (step_of - 1) % ring_size  # [1, B], [L, B]
    x = _gathered(tensors["hist_x"], rows, at)  # [L, B, i]
    y = _gathered(tensors["hist_y"], rows, at)  # [L, B, d]
    mask = _gathered(tensors["hist_mask"], rows, at) & torch.from_numpy(step_of >= 1)[..., None]
    if not with_base:
        return x, y, mask, None
    base = _gathered(tensors["hist_y"], rows, (step_of - 2) % ring_size) * torch.from_numpy(step_of >= 2)[..., None]
    return x, y, mask, base  # (base: y_{s-1})


def _gathered(field: torch.Tensor | AsOfSnapshot, rows: np.ndarray, at: np.ndarray) -> torch.Tensor:
    """``field[rows, at]`` (a copy): a store's own tensor gathered in numpy (a few rows' update
    without torch's per-call cost of microseconds), a snapshot's read as it answers it."""
    if type(field) is torch.Tensor:
        array = field.numpy()  # [C, R, ...]
        # one flat index of the rows of [C * R, ...] (a view of the contiguous field): numpy's take of those is
        # faster than its indexing by two arrays (an update's windows at 10,000 series: 3.6 -> 2.2 ms for hist_x)
        flat = array.reshape(array.shape[0] * array.shape[1], *array.shape[2:])
        return torch.from_numpy(np.take(flat, rows * array.shape[1] + at, axis=0))
    return field[torch.from_numpy(rows), torch.from_numpy(at)]
