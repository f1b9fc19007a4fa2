"""CheckpointStore: atomic, checksummed snapshots of the service's state on disk.

A checkpoint file is a fixed header followed by the ``torch.save`` bytes of a state
dict made of tensors and plain values (dict, list, tuple, str, int, float, bool, None)::

    header = magic b"TBPTTCKP" | format version u32 | seq u64 | payload length u64 | sha256(payload)

``seq`` is the event-log seq the state includes (every record up to it is applied).
A file is written to a temporary file in the same directory, fsynced, renamed to
``checkpoint-{seq:016d}.ckpt`` and the directory fsynced, so a crash leaves either the
old set of files or the new one, never a half-written checkpoint under the real name.
Loading checks the header, the length and the checksum, then ``torch.load(...,
weights_only=True)``: nothing but tensors and plain containers is ever unpickled.

>>> import tempfile, torch
>>> with tempfile.TemporaryDirectory() as d:
...     store = CheckpointStore(d, keep=2)
...     for seq in (5, 9, 12):
...         _ = store.write(seq, {"weights": torch.full((2,), float(seq))})
...     found, rejected = store.load_latest()
...     store.seqs(), store.oldest_kept_seq(), found.seq, found.state["weights"].tolist(), rejected
([9, 12], 9, 12, [12.0, 12.0], [])
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import re
import struct
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch

from tbptt_service.errors import StorageFullError

MAGIC = b"TBPTTCKP"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sIQQ32s")  # magic, format version, seq, payload length, sha256 of payload
_NAME = re.compile(r"checkpoint-(\d{16})\.ckpt")
_TEMP_PREFIX, _TEMP_SUFFIX = ".checkpoint-", ".tmp"
_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_LEAVES = (str, int, float, bool, type(None), torch.Tensor)

log = logging.getLogger(__name__)


class CorruptCheckpointError(ValueError):
    """Bytes that are not a valid checkpoint; the message says why."""


class Checkpoint(NamedTuple):
    seq: int
    path: Path | None  # None for bytes decoded outside the store
    state: dict[str, Any]


class RejectedCheckpoint(NamedTuple):
    path: Path
    reason: str


def _check_plain(value: Any, where: str) -> None:
    """Refuse at write time what ``torch.load(weights_only=True)`` would refuse at load time."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise ValueError(f"{where} has key {key!r}: checkpoint keys must be str or int")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif not isinstance(value, _LEAVES):
        raise ValueError(
            f"{where} is a {type(value).__name__}: a checkpoint holds only tensors, dict, list, tuple, "
            "str, int, float, bool and None"
        )


def encode_checkpoint(seq: int, state: dict[str, Any]) -> bytes:
    """The bytes of a checkpoint file (header + torch.save payload); ValueError for a bad state. Made as
    ``write_checkpoint`` writes a file, the header written in place: until session 47 it was prepended to
    the payload, a copy of the whole that held the GIL (2.3 s for an 894 MB export of 15,000 series, during
    which the event loop answered nothing: other models' POSTs waited 2.7 s, a hostile test)."""
    _check_header_args(seq, state)
    buffer = io.BytesIO()
    write_checkpoint(buffer, seq, state)
    return buffer.getvalue()  # (no copy: the buffer's own bytes)


def _full_disk(error: BaseException) -> OSError | None:
    """The full disk's ``OSError`` behind ``error``, if one is: raised as it is, or (torch's zip writer
    turns a failed write into a ``RuntimeError``, a hostile test) the cause or context of another."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _FULL_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


class _Descriptor:
    """An open file descriptor as the file ``write_checkpoint`` writes: every byte through
    ``os.write`` (which may write part of it), unbuffered."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view) :]
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return os.lseek(self.fd, offset, whence)

    def flush(self) -> None:
        pass


class _HashingFile:
    """A file that ``torch.save`` writes through, counting and hashing the payload as it goes."""

    def __init__(self, file: Any) -> None:
        self.file, self.size, self.sha = file, 0, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.file.write(data)

    def flush(self) -> None:
        self.file.flush()


def write_checkpoint(file: Any, seq: int, state: dict[str, Any]) -> None:
    """``encode_checkpoint``'s bytes written to ``file`` (binary, seekable, at offset 0) as
    ``torch.save`` makes them: no copy of the payload in memory. (Encoded first, a 4 GB state
    was held three times more, by the buffer, its value and the header's concatenation: 14.9 GB
    at the peak of each checkpoint of two such models, a hostile test.) ``seq`` and ``state`` are
    checked by the caller first (``_check_header_args``: ``CheckpointStore.write``, before it makes
    the file)."""
    file.write(b"\0" * HEADER.size)  # the header, once the payload's length and hash are known
    hashing = _HashingFile(file)
    torch.save(state, hashing)
    file.seek(0)
    file.write(HEADER.pack(MAGIC, FORMAT_VERSION, seq, hashing.size, hashing.sha.digest()))
    file.seek(0, os.SEEK_END)


def _check_header_args(seq: int, state: dict[str, Any]) -> None:
    if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**63:
        raise ValueError(f"seq={seq!r} is invalid: must be an integer in [0, 2**63)")
    if not isinstance(state, dict):
        raise ValueError(f"state is a {type(state).__name__}: must be a dict")
    _check_plain(state, "state")


def decode_checkpoint(data: bytes, expected_seq: int | None = None) -> Checkpoint:
    """Verify and load checkpoint bytes; ``CorruptCheckpointError`` says what is wrong."""
    if len(data) < HEADER.size:
        raise CorruptCheckpointError(f"truncated: {len(data)} bytes, shorter than the {HEADER.size}-byte header")
    magic, version, seq, length, digest = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptCheckpointError(f"not a checkpoint: magic {magic!r}, expected {MAGIC!r}")
    if version != FORMAT_VERSION:
        raise CorruptCheckpointError(f"format version {version}, expected {FORMAT_VERSION}")
    payload = memoryview(data)[HEADER.size :]
    if len(payload) != length:
        what = "truncated" if len(payload) < length else "trailing bytes"
        raise CorruptCheckpointError(f"{what}: the payload has {len(payload)} bytes, the header says {length}")
    if hashlib.sha256(payload).digest() != digest:
        raise CorruptCheckpointError("checksum mismatch: the payload's sha256 differs from the header's")
    if expected_seq is not None and seq != expected_seq:
        raise CorruptCheckpointError(f"the header says seq {seq}, the file name says {expected_seq}")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:  # a checksummed payload that still does not load: refuse it, say why
        raise CorruptCheckpointError(f"the payload does not load with weights_only=True: {exc}") from exc
    if not isinstance(state, dict):
        raise CorruptCheckpointError(f"the payload is a {type(state).__name__}, expected a dict")
    return Checkpoint(seq, None, state)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class CheckpointStore:
    """The ``keep`` newest checkpoints in ``directory`` (created if missing).

    One writer per directory: temporaries left by a crashed writer are removed at open.
    """

    def __init__(self, directory: str | os.PathLike[str], keep: int = 3) -> None:
        if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
            raise ValueError(f"keep={keep!r} is invalid: must be an integer >= 1")
        self.directory = Path(directory)
        self.keep = keep
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f"{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            log.warning("removing %s, a checkpoint write that did not finish", stale)
            stale.unlink(missing_ok=True)

    def path_for(self, seq: int) -> Path:
        return self.directory / f"checkpoint-{seq:016d}.ckpt"

    def seqs(self) -> list[int]:
        """The seqs of the checkpoint files present, oldest first (valid or not)."""
        return sorted(int(m.group(1)) for p in self.directory.iterdir() if (m := _NAME.fullmatch(p.name)))

    def oldest_kept_seq(self) -> int | None:
        """The log may be pruned through this seq (None: no checkpoint yet, prune nothing)."""
        seqs = self.seqs()
        return seqs[0] if seqs else None

    def write(self, seq: int, state: dict[str, Any]) -> Path:
        """Write the checkpoint of the state after log record ``seq`` atomically, then keep
        only the ``keep`` newest. A full disk raises ``StorageFullError``, removes the
        temporary file and leaves the previous checkpoints as they were."""
        seqs = self.seqs()
        if seqs and seq < seqs[-1]:
            raise ValueError(f"seq={seq} is invalid: must be >= {seqs[-1]}, the newest checkpoint's seq")
        _check_header_args(seq, state)  # a bad state raises before a file is made
        final = self.path_for(seq)
        fd, temp = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self.directory)
        try:
            try:
                write_checkpoint(_Descriptor(fd), seq, state)
                os.fsync(fd)  # the bytes are on disk before the name points at them
            finally:
                os.close(fd)
            os.replace(temp, final)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            full = _full_disk(exc)
            if full is not None:
                raise StorageFullError(errno.ENOSPC, f"checkpoint {final} not written: {full}") from exc
            raise
        _fsync_directory(self.directory)  # the rename itself is durable
        for old in self.seqs()[: -self.keep]:
            self.path_for(old).unlink(missing_ok=True)
        return final

    def read(self, seq: int) -> Checkpoint:
        """Load and verify one checkpoint; ``CorruptCheckpointError`` or ``OSError`` otherwise."""
        path = self.path_for(seq)
        return decode_checkpoint(path.read_bytes(), expected_seq=seq)._replace(path=path)

    def load_latest(self) -> tuple[Checkpoint | None, list[RejectedCheckpoint]]:
        """The newest checkpoint that verifies, and the newer ones rejected (newest first).

        Each rejected file is logged as a warning naming it and why; the files are left
        in place for inspection (the next writes prune them). ``None`` when none verifies.
        """
        rejected: list[RejectedCheckpoint] = []
        for seq in reversed(self.seqs()):
            path = self.path_for(seq)
            try:
                return self.read(seq), rejected
            except (CorruptCheckpointError, OSError) as exc:
                log.warning("checkpoint %s is unusable (%s); falling back to the previous one", path, exc)
                rejected.append(RejectedCheckpoint(path, str(exc)))
        return None, rejected
