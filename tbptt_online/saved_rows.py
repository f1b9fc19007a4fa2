"""Copy on write by rows: what a snapshot of an in-place field reads.

The store writes its large fields (``series_store.IN_PLACE``, and any field past
``series_store.ROW_COPY_BYTES``) in place. A snapshot
(a published view that a forecast may read on another thread, later) must not see those
writes. Copying the whole field at the first write after each snapshot did that, but a
service publishes a view after every batch, so every batch copied every row of every such
field (at 2,000 series, 45 % of a single-POST load's model thread) to protect the few rows
a forecast might read.

Instead a snapshot holds, per field, the tensor as it was (``base``) and a ``SavedRows``:
before the store writes rows in place it saves their current values into every live
snapshot's ``SavedRows`` of that tensor, once per row. A read gathers the rows from
``base`` and takes the saved copy of any row saved since. Saving touches only the rows a
tick writes; a snapshot nobody holds any more costs nothing (the store keeps weak
references).

Reads need no lock against the writing thread: a writer saves a row (the copy, then the
row's place) before it changes it, and a reader gathers the rows before it reads the places,
so a row changed during the gather is marked saved by the time the reader looks.

>>> import torch
>>> live = torch.arange(6.0).view(3, 2)  # 3 rows
>>> saved = SavedRows(live)
>>> rows = AsOfSnapshot(live, saved)
>>> saved.save(torch.tensor([1]))  # the store saves row 1 ...
>>> live[1] = -1.0  # ... then writes it
>>> rows[torch.tensor([1, 2])].tolist()  # the snapshot still reads row 1 as it was
[[2.0, 3.0], [4.0, 5.0]]
>>> live[2] = -2.0  # a write without a save: the snapshot would see it (the store always saves first)
>>> rows[torch.tensor([2])].tolist()
[[-2.0, -2.0]]
"""

from __future__ import annotations

import numpy as np
import torch


class SavedRows:
    """The rows of ``base`` [C, ...] saved before their first write since a snapshot, packed in
    the order saved (a snapshot usually sees a few ticks' rows, not the whole field)."""

    def __init__(self, base: torch.Tensor) -> None:
        self.base = base
        self.copy: torch.Tensor | None = None  # [S, ...] the saved rows, packed; None until the first save
        self.size = 0  # rows of ``copy`` in use
        # [C] a row's place in copy, -1: not saved; None until the first save (a snapshot that no
        # write follows, e.g. a forecast's own view, allocates nothing per row). Kept in numpy: a
        # tick saves a row or two of each field, where torch's per-operation overhead was most of
        # the cost (57 us a save, 23 fields a tick, at 2,000 series)
        self._where: np.ndarray | None = None

    @property
    def where(self) -> torch.Tensor | None:
        """[C] int64: each row's place in ``copy`` (-1: not saved); None until the first save."""
        return None if self._where is None else torch.from_numpy(self._where)

    def save(self, slots: torch.Tensor) -> None:
        """Keep rows ``slots`` [B] (int64, distinct) as they are now, unless kept already."""
        where = self._where if self._where is not None else np.full(self.base.shape[0], -1, dtype=np.int64)
        index = slots.numpy()
        new = index[where[index] < 0]  # [B'] not saved yet
        n = len(new)
        if n == 0:
            return
        base = self.base.numpy()
        if self.copy is None or self.size + n > self.copy.shape[0]:  # larger (the old copy stays valid for a reader)
            held = 0 if self.copy is None else self.copy.shape[0]
            grown = np.empty((max(2 * held, self.size + n, 16), *base.shape[1:]), dtype=base.dtype)
            if self.copy is not None:
                grown[: self.size] = self.copy.numpy()[: self.size]
            self.copy = torch.from_numpy(grown)
        self.copy.numpy()[self.size : self.size + n] = base[new]
        where[new] = np.arange(self.size, self.size + n)  # after the copy: a reader that sees it finds the row
        if self._where is None:  # published once its places are set
            self._where = where
        self.size += n


class AsOfSnapshot:
    """A field as it was at a snapshot: index it by rows first (an int64 tensor of slots), as
    ``field[slots]``, ``field[slots, at]`` or ``field[rows, :h]``."""

    def __init__(self, base: torch.Tensor, saved: SavedRows) -> None:
        self.base, self.saved = base, saved
        self.shape, self.dtype = base.shape, base.dtype

    def __getitem__(self, key: torch.Tensor | tuple) -> torch.Tensor:
        """``field[slots]`` as of the snapshot: ``slots`` an int64 tensor of rows, followed by
        any index of the rest (``field[slots, at]``, ``field[rows, :h]``), as a tensor would
        answer it: the distinct rows gathered, then indexed."""
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if not (isinstance(first, torch.Tensor) and first.dtype == torch.int64 and first.dim() >= 1):
            raise TypeError("a snapshot's field read by rows is indexed by an int64 tensor of slots first")
        if first.dim() == 1 and not rest:
            return self._rows(first)
        distinct, inverse = torch.unique(first, return_inverse=True)  # field[first] == rows[inverse]
        return self._rows(distinct)[(inverse, *rest)]

    def _rows(self, slots: torch.Tensor) -> torch.Tensor:
        rows = self.base[slots]  # [B, ...] a copy, gathered before the places are read (see above)
        places = self.saved.where
        if places is None:  # nothing saved yet
            return rows
        where = places[slots]  # [B]
        saved = where >= 0
        if bool(saved.any()):
            rows[saved] = self.saved.copy[where[saved]]  # the copy read after the places: it holds them
        return rows
