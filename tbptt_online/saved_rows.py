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
row's flag) before it changes it, and a reader gathers the rows before it reads the flags,
so a row changed during the gather is flagged by the time its flags are read.

>>> import torch
>>> live = torch.arange(6.0).view(3, 2)  # 3 rows
>>> saved = SavedRows(live)
>>> rows = AsOfSnapshot(live, saved)
>>> saved.save(torch.tensor([1]))  # the store saves row 1 ...
>>> live[1] = -1.0  # ... then writes it
>>> rows[torch.tensor([1, 2])].tolist()  # the snapshot still reads row 1 as it was
[[2.0, 3.0], [4.0, 5.0]]
>>> live[2] = -2.0  # a write without a save: the snapshot would see it (the store always saves)
>>> rows[torch.tensor([2])].tolist()
[[-2.0, -2.0]]
"""

from __future__ import annotations

import torch


class SavedRows:
    """The rows of ``base`` [C, ...] saved before their first write since a snapshot."""

    def __init__(self, base: torch.Tensor) -> None:
        self.base = base
        self.copy: torch.Tensor | None = None  # [C, ...] like base; only saved rows hold values
        self.flags = torch.zeros(base.shape[0], dtype=torch.bool)  # [C] which rows are in ``copy``

    def save(self, slots: torch.Tensor) -> None:
        """Keep rows ``slots`` [B] (int64) as they are now, unless kept already."""
        new = slots[~self.flags[slots]]  # [B'] not saved yet
        if new.numel() == 0:
            return
        if self.copy is None:
            self.copy = torch.empty_like(self.base)  # uninitialised: memory only for the rows written
        self.copy[new] = self.base[new]
        self.flags[new] = True  # after the copy: a reader that sees the flag finds the row


class AsOfSnapshot:
    """A field as it was at a snapshot: index it by rows (a 1-D int64 tensor of slots)."""

    def __init__(self, base: torch.Tensor, saved: SavedRows) -> None:
        self.base, self.saved = base, saved
        self.shape, self.dtype = base.shape, base.dtype

    def __getitem__(self, slots: torch.Tensor) -> torch.Tensor:
        if not (isinstance(slots, torch.Tensor) and slots.dim() == 1 and slots.dtype == torch.int64):
            raise TypeError("a snapshot's in-place field is read by rows: a 1-D int64 tensor of slots")
        rows = self.base[slots]  # [B, ...] a copy, gathered before the flags are read (see above)
        flagged = self.saved.flags[slots]  # [B]
        if bool(flagged.any()):
            copy = self.saved.copy
            assert copy is not None  # a flag is set only after the copy exists
            rows[flagged] = copy[slots[flagged]]
        return rows
