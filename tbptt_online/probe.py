"""TruncationProbe: the few series the truncation advisor follows, and what it measured.

The probe follows up to ``PROBE_SERIES`` series (the first to arrive; a forgotten one's row
goes to the next new series). At each probe (``rotate``) a row that held no full window at
``STALE_PROBES`` probes running and whose series is not in the tick that ran the probe, and a
free row, go to series of that tick that no row follows: a model whose first series stopped
after a few values, or send rarely, otherwise never probed (a service with 5,162 series and
797 updates said "probes": 0). For each it keeps, in rings of its own (not in the series
store, so that no other series pays for them):

- the last ``probe_length`` steps (K_p) of what the network was fed and scored against,
  with the live state before each (so a probe window starts at the true ĥ_{t-K_p});
- the last ``LAG_MEMORY`` targets, where the data's dependency length is looked for
  (``truncation.longest_lag``).

Every ``probe_every`` updates (and, the first time, at an eighth, a quarter and a half of it:
``forecaster._probe_due``) the engine measures the gradient's reach on the full windows
(``engine.state_gradient_norms``, weights untouched) and the advisor's statistics move:
``phi`` (an exponential mean over probes, weight ``PROBE_WEIGHT`` on the newest), the decay
fit, in adaptive mode the window K the next updates use, and the bias of that window
measured on the probe's windows (``measured``: ``engine.measured_bias``, the newest probe's). All of it is in
``state_dict`` (tensors and plain numbers), so a round trip continues bit-identically.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tbptt_online.compiled import compiled, readable
from tbptt_online.config import ForecasterConfig
from tbptt_online.network import State

PROBE_SERIES = 8
STALE_PROBES = 2  # probes in a row without a full window, the series absent: its row goes to another
PROBE_WEIGHT = 0.3  # phi <- (1 - w) phi + w phi_new
LAG_MEMORY_MIN = 200  # targets kept per followed series for the lag search (at least 4 K_p)


class TruncationProbe:
    def __init__(self, config: ForecasterConfig, dtype: torch.dtype) -> None:
        self.config = config
        self.length = config.resolved_probe_length
        self.lag_memory = max(LAG_MEMORY_MIN, 4 * self.length)
        p, k, d, i = PROBE_SERIES, self.length, config.n_features, config.input_size
        layers, hid = config.num_layers, config.hidden_size
        self.lstm = config.cell == "lstm"
        self._kept_arrays: tuple[list[torch.Tensor], list[int], list[np.ndarray]] | None = None  # (_own_arrays)
        self.tensors: dict[str, torch.Tensor] = {
            "slots": torch.full((p,), -1, dtype=torch.int64),  # the store slot followed by each row (-1: none)
            "count": torch.zeros(p, dtype=torch.int64),  # steps recorded since the row was taken
            "x": torch.zeros(p, k, i, dtype=dtype),  # ring: step s at (s - 1) % K_p
            "y": torch.zeros(p, k, d, dtype=dtype),
            "mask": torch.zeros(p, k, d, dtype=torch.bool),
            "start_h": torch.zeros(p, k, layers, hid, dtype=dtype),  # the live state before step s
            "values": torch.full((p, self.lag_memory, d), torch.nan, dtype=torch.float64),  # targets, a ring
            "phi": torch.zeros(k, dtype=torch.float64),  # mean || dL_t / dh_{t-k} ||, k = 1 .. K_p
            "lags": torch.zeros(p, dtype=torch.int64),  # dependency length per row (last probe; longest_lag)
            "missed": torch.zeros(p, dtype=torch.int64),  # probes in a row at which the row held no full window
            # the relative bias of the window in force measured at the last probe (engine.measured_bias; NaN: none)
            "measured": torch.full((1,), torch.nan, dtype=torch.float64),
        }
        if self.lstm:
            self.tensors["start_c"] = torch.zeros_like(self.tensors["start_h"])
        self.probes = 0  # probes run
        self.windows = 0  # windows in the last probe
        self.window = config.k2_min if config.adaptive else config.k2  # the window the next update uses

    # -- following series -----------------------------------------------------------
    def follow(self, slots: torch.Tensor) -> None:
        """Give free rows to new series (their slots), in order."""
        free = (self.tensors["slots"] < 0).nonzero().squeeze(1).tolist()
        for row, slot in zip(free, slots.tolist(), strict=False):
            self._take(row, slot)

    def _take(self, row: int, slot: int) -> None:
        t = self.tensors
        self._clear(row)
        t["slots"][row] = slot
        t["count"][row] = 0
        t["values"][row] = torch.nan
        t["lags"][row] = 0  # a new series: no lag found yet (nor one of the row's previous series)
        t["missed"][row] = 0

    def _clear(self, row: int) -> None:
        """The row's rings of what the network was fed, as a fresh probe's: a series that restarted
        (or was forgotten) had left the NaN that made it restart there, and a checkpoint holds
        them (check_state refused the model's own)."""
        for key in ("x", "y", "mask", "start_h", "start_c"):
            if key in self.tensors:
                self.tensors[key][row] = 0

    def rotate(self, seen: torch.Tensor) -> None:
        """At a probe, before its windows are taken: count the followed rows without a full
        window, and give the stale ones (``STALE_PROBES`` of those in a row, their series not
        among ``seen``, the slots of the tick that runs the probe) and the free ones to series
        of ``seen`` that no row follows, in order. A row stays as it is when none is left."""
        t = self.tensors
        followed = t["slots"] >= 0
        t["missed"] = torch.where(followed & ~self._ready(), t["missed"] + 1, 0)
        present = torch.isin(t["slots"], seen)
        stale = ~followed | ((t["missed"] >= STALE_PROBES) & ~present)
        if not bool(stale.any()):
            return
        candidates = seen[~torch.isin(seen, t["slots"])].tolist()
        for row, slot in zip(stale.nonzero().squeeze(1).tolist(), candidates, strict=False):
            self._take(row, slot)

    def _ready(self) -> torch.Tensor:
        """[P] bool: the rows holding K_p steps whose last target is observed."""
        t = self.tensors
        ready = (t["slots"] >= 0) & (t["count"] >= self.length)
        last = (t["count"] - 1) % self.length
        return ready & t["mask"][torch.arange(PROBE_SERIES), last].any(1)

    def _rows_of(self, slot: int) -> list[int]:
        """The rows following ``slot`` (none or one)."""
        return (self.tensors["slots"] == slot).nonzero().squeeze(1).tolist()

    def restart(self, slots: torch.Tensor) -> None:
        """The rows following ``slots`` [B] start again, as for new series (their rings emptied)."""
        for slot in slots.tolist():
            for row in self._rows_of(slot):
                self._take(row, slot)

    def drop(self, slot: int) -> None:
        for row in self._rows_of(slot):
            self._clear(row)
            self.tensors["slots"][row] = -1

    def record(
        self, slots: torch.Tensor, x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, before: State | None
    ) -> None:
        """One tick of B series: x [B, i], y and mask [B, d] (y NaN-free), ``before`` the live
        state before x (None in stateless mode, where windows start at h_0)."""
        t = self.tensors
        if before is None:  # stateless: no state is kept (the kernel reads none)
            h = torch.zeros(len(slots), *t["start_h"].shape[2:], dtype=t["start_h"].dtype)
        else:
            h = (before[0] if self.lstm else before).detach()  # [B, layers, H]
        c = before[1].detach() if self.lstm and before is not None else h  # (not an LSTM: not read)
        _record(
            *readable(slots, x.detach(), y.detach(), mask, h, c),
            *self._own_arrays(),  # the probe's own tensors, written in place
            self.length,
            self.lag_memory,
            before is not None,
            self.lstm,
        )

    def _own_arrays(self) -> list[np.ndarray]:
        """numpy views of the probe's tensors that ``record`` writes, kept while the tensors are
        the same objects at the same addresses (a tick's eight conversions otherwise; ``follow`` or
        a load replaces them; a deep copy or a pickle of the probe copies the arrays apart from the
        tensors, and moves the tensors)."""
        names = ("slots", "count", "x", "y", "mask", "start_h", "start_c" if self.lstm else "start_h", "values")
        tensors = [self.tensors[name] for name in names]
        kept = self._kept_arrays
        if kept is None or any(
            a is not b or a.data_ptr() != at for a, b, at in zip(kept[0], tensors, kept[1], strict=True)
        ):
            kept = self._kept_arrays = (tensors, [t.data_ptr() for t in tensors], [t.numpy() for t in tensors])
        return kept[2]

    def full_windows(self) -> tuple[State, torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """The probe windows of the rows holding K_p steps whose last target is observed:
        start [n, layers, H] (or (h, c)), x [K_p - 1, n, i], y and mask [n, d]; None if none."""
        t = self.tensors
        rows = self._ready().nonzero().squeeze(1)
        if len(rows) == 0:
            return None
        order = (t["count"][rows, None] + torch.arange(self.length)[None, :]) % self.length  # [n, K_p] oldest first
        x = t["x"][rows[:, None], order]  # [n, K_p, i]
        start_h = t["start_h"][rows, order[:, 0]]
        start: State = (start_h, t["start_c"][rows, order[:, 0]]) if self.lstm else start_h
        return start, x[:, :-1].transpose(0, 1), t["y"][rows, order[:, -1]], t["mask"][rows, order[:, -1]]

    def targets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The followed rows' kept targets, oldest first [n, lag_memory, d], and their slots [n]."""
        t = self.tensors
        rows = (t["slots"] >= 0).nonzero().squeeze(1)
        order = (t["count"][rows, None] + torch.arange(self.lag_memory)[None, :]) % self.lag_memory
        return t["values"][rows[:, None], order], t["slots"][rows]

    def update_phi(self, phi_new: torch.Tensor, n_windows: int) -> None:
        phi = self.tensors["phi"]
        phi_new = phi_new.double()
        self.tensors["phi"] = phi_new if self.probes == 0 else (1 - PROBE_WEIGHT) * phi + PROBE_WEIGHT * phi_new
        self.probes += 1
        self.windows = n_windows

    # -- persistence ------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "tensors": {k: v.clone() for k, v in self.tensors.items()},
            "probes": self.probes,
            "windows": self.windows,
            "window": self.window,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        tensors = state["tensors"]
        if set(tensors) != set(self.tensors):
            raise ValueError(f"probe state has fields {sorted(tensors)}, expected {sorted(self.tensors)}")
        for key, blank in self.tensors.items():
            if tensors[key].dtype != blank.dtype or tensors[key].shape != blank.shape:
                raise ValueError(
                    f"probe state field {key!r} has shape {tuple(tensors[key].shape)} {tensors[key].dtype}, "
                    f"expected {tuple(blank.shape)} {blank.dtype}"
                )
        self.tensors = {k: v.clone() for k, v in tensors.items()}
        self.probes = int(state["probes"])
        self.windows = int(state["windows"])
        self.window = int(state["window"])


@compiled
def _record(
    slots, x, y, mask, h, c, followed, count, px, py, pmask, ph, pc, values, length, lag_memory, states, lstm
) -> None:
    """``TruncationProbe.record``: for each row of the tick (``slots`` [B], fed ``x`` [B, i], scored
    against ``y`` and ``mask`` [B, d], from the live state ``h`` (and ``c``) [B, layers, H]) whose
    series a probe row follows (``followed`` [P]), write them at the row's ring place (``count``
    % K_p): ``px``, ``py``, ``pmask``, ``ph``, ``pc`` (the states only where ``states``: stateful;
    ``pc`` only for an LSTM), the target into ``values`` (NaN where not observed) at count %
    ``lag_memory``, and count one more step. Cast to the probe's dtypes as numpy's assignment
    did (round to nearest)."""
    for b in range(len(slots)):
        for row in range(len(followed)):
            if followed[row] != slots[b]:
                continue
            n = count[row]
            at = n % length
            for j in range(x.shape[1]):
                px[row, at, j] = x[b, j]
            for k in range(y.shape[1]):
                py[row, at, k] = y[b, k]
                pmask[row, at, k] = mask[b, k]
                values[row, n % lag_memory, k] = np.float64(y[b, k]) if mask[b, k] else np.nan
            if states:
                for layer in range(h.shape[1]):
                    for j in range(h.shape[2]):
                        ph[row, at, layer, j] = h[b, layer, j]
                        if lstm:
                            pc[row, at, layer, j] = c[b, layer, j]
            count[row] = n + 1
