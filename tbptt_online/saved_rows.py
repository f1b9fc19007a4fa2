"""Copy on write by rows: what a snapshot of an in-place field reads.

The store writes its large hybrid fields (``series_store.IN_PLACE``) in place. A snapshot
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

import torch


class SavedRows:
    """The rows of ``base`` [C, ...] saved before their first write since a snapshot, packed in
    the order saved (a snapshot usually sees a few ticks' rows, not the whole field)."""

    def __init__(self, base: torch.Tensor) -> None:
        self.base = base
        self.copy = base.new_empty((0, *base.shape[1:]))  # [S, ...] the saved rows, packed
        self.size = 0  # rows of ``copy`` in use
        # [C] a row's place in copy, -1: not saved; None until the first save (a snapshot that no
        # write follows, e.g. a forecast's own view, allocates nothing per row)
        self.where: torch.Tensor | None = None

    def save(self, slots: torch.Tensor) -> None:
        """Keep rows ``slots`` [B] (int64, distinct) as they are now, unless kept already."""
        where = self.where if self.where is not None else torch.full((self.base.shape[0],), -1, dtype=torch.int64)
        new = slots[where[slots] < 0]  # [B'] not saved yet
        n = new.numel()
        if n == 0:
            return
        if self.size + n > self.copy.shape[0]:  # a larger copy (the old one stays valid for a reader holding it)
            grown = self.base.new_empty((max(2 * self.copy.shape[0], self.size + n, 16), *self.base.shape[1:]))
            grown[: self.size] = self.copy[: self.size]
            self.copy = grown
        self.copy[self.size : self.size + n] = self.base[new]
        where[new] = torch.arange(self.size, self.size + n)  # after the copy: a reader that sees it finds the row
        self.where = where  # published once its places are set
        self.size += n


class AsOfSnapshot:
    """A field as it was at a snapshot: index it by rows (a 1-D int64 tensor of slots)."""

    def __init__(self, base: torch.Tensor, saved: SavedRows) -> None:
        self.base, self.saved = base, saved
        self.shape, self.dtype = base.shape, base.dtype

    def __getitem__(self, slots: torch.Tensor) -> torch.Tensor:
        if not (isinstance(slots, torch.Tensor) and slots.dim() == 1 and slots.dtype == torch.int64):
            raise TypeError("a snapshot's in-place field is read by rows: a 1-D int64 tensor of slots")
        rows = self.base[slots]  # [B, ...] a copy, gathered before the places are read (see above)
        if self.saved.where is None:  # nothing saved yet
            return rows
        where = self.saved.where[slots]  # [B]
        saved = where >= 0
        if bool(saved.any()):
            rows[saved] = self.saved.copy[where[saved]]  # the copy read after the places: it holds them
        return rows
