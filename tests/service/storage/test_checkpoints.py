"""CheckpointStore: atomic writes, pruning, corrupt and truncated files, weights_only loads, a full disk."""

from __future__ import annotations

import errno
import hashlib
import io
import logging
import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import torch

from tbptt_online import Forecaster, ForecasterConfig
from tbptt_service.errors import StorageFullError
from tbptt_service.storage import checkpoints
from tbptt_service.storage.checkpoints import (
    HEADER,
    CheckpointStore,
    CorruptCheckpointError,
    decode_checkpoint,
    encode_checkpoint,
)

from ..bitwise import assert_bitwise_equal


def sample_state(tag: float) -> dict[str, Any]:
    return {
        "weights": torch.tensor([tag, -0.0, float("nan"), 1e-300], dtype=torch.float64),
        "counts": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "mask": torch.tensor([True, False]),
        "rng": torch.Generator().manual_seed(3).get_state(),
        "config": {"k1": 4, "lr": 1e-3, "clip_norm": None, "cell": "gru"},
        "recent": [[1, 0.5, 2.0, 3, False]],
        "betas": (0.9, 0.999),
        7: "int keys are allowed",
    }


def test_write_then_load_latest_round_trips_bit_identically(tmp_path):
    store = CheckpointStore(tmp_path)
    state = sample_state(1.5)
    path = store.write(42, state)
    assert path == tmp_path / "checkpoint-0000000000000042.ckpt"
    found, rejected = store.load_latest()
    assert rejected == []
    assert (found.seq, found.path) == (42, path)
    assert_bitwise_equal(found.state, state)


def test_only_the_keep_newest_remain_and_oldest_kept_seq_follows(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    assert store.oldest_kept_seq() is None
    assert store.load_latest() == (None, [])
    for seq in (3, 10, 10, 25):  # the same seq twice replaces the file
        store.write(seq, sample_state(float(seq)))
    assert store.seqs() == [10, 25]
    assert store.oldest_kept_seq() == 10
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-0000000000000010.ckpt",
        "checkpoint-0000000000000025.ckpt",
    ]


def test_a_seq_older_than_the_newest_checkpoint_is_refused(tmp_path):
    store = CheckpointStore(tmp_path)
    store.write(10, sample_state(1.0))
    with pytest.raises(ValueError, match="seq=9 is invalid: must be >= 10"):
        store.write(9, sample_state(2.0))
    assert store.seqs() == [10]


def _three_checkpoints(tmp_path) -> CheckpointStore:
    store = CheckpointStore(tmp_path, keep=3)
    for seq in (1, 2, 3):
        store.write(seq, sample_state(float(seq)))
    return store


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("flip a payload byte", "checksum mismatch"),
        ("truncate", "truncated: the payload has"),
        ("truncate inside the header", "shorter than the"),
        ("flip a magic byte", "not a checkpoint"),
        ("append bytes", "trailing bytes"),
    ],
)
def test_a_damaged_newest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog, damage, reason):
    store = _three_checkpoints(tmp_path)
    newest = store.path_for(3)
    data = bytearray(newest.read_bytes())
    if damage == "flip a payload byte":
        data[HEADER.size + len(data[HEADER.size :]) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 100]
    elif damage == "truncate inside the header":
        data = data[:20]
    elif damage == "flip a magic byte":
        data[0] ^= 0xFF
    else:
        data += b"\0"
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="tbptt_service.storage.checkpoints"):
        found, rejected = store.load_latest()
    assert found.seq == 2
    assert_bitwise_equal(found.state, sample_state(2.0))
    assert [r.path for r in rejected] == [newest]
    assert reason in rejected[0].reason
    assert any(newest.name in m and reason in m for m in caplog.messages)


def test_a_file_renamed_to_another_seq_is_rejected(tmp_path):
    store = _three_checkpoints(tmp_path)
    store.path_for(3).unlink()
    store.path_for(2).rename(store.path_for(7))
    found, rejected = store.load_latest()
    assert found.seq == 1
    assert "the header says seq 2, the file name says 7" in rejected[0].reason


def test_when_every_checkpoint_is_damaged_load_latest_finds_none_and_lists_them(tmp_path):
    store = _three_checkpoints(tmp_path)
    for seq in (1, 2, 3):
        store.path_for(seq).write_bytes(b"garbage")
    found, rejected = store.load_latest()
    assert found is None
    assert [r.path for r in rejected] == [store.path_for(3), store.path_for(2), store.path_for(1)]


class _Trap:
    """Unpickling this would call _spring: a weights_only load must refuse it instead."""

    sprung = False

    def __reduce__(self):
        return (_spring, ())


def _spring() -> None:
    _Trap.sprung = True


def test_a_checksummed_payload_with_an_arbitrary_object_is_refused_without_unpickling(tmp_path):
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(2), "trap": _Trap()}, buffer)
    payload = buffer.getvalue()
    data = HEADER.pack(checkpoints.MAGIC, checkpoints.FORMAT_VERSION, 5, len(payload), hashlib.sha256(payload).digest())
    store = CheckpointStore(tmp_path)
    store.path_for(5).write_bytes(data + payload)
    found, rejected = store.load_latest()
    assert found is None
    assert "weights_only" in rejected[0].reason
    assert _Trap.sprung is False


def test_a_state_with_an_object_outside_the_allowed_types_is_refused_at_write(tmp_path):
    store = CheckpointStore(tmp_path)
    with pytest.raises(ValueError, match=r"state\['models'\]\['m'\] is a _Trap"):
        store.write(1, {"models": {"m": _Trap()}})
    assert list(tmp_path.iterdir()) == []


def test_encode_and_decode_round_trip_and_decode_rejects_other_bytes():
    data = encode_checkpoint(9, sample_state(4.0))
    decoded = decode_checkpoint(data)
    assert decoded.seq == 9
    assert_bitwise_equal(decoded.state, sample_state(4.0))
    with pytest.raises(CorruptCheckpointError, match="not a checkpoint"):
        decode_checkpoint(b"x" * 200)
    with pytest.raises(ValueError, match="seq=-1 is invalid"):
        encode_checkpoint(-1, {})


def _full_after(limit: int):
    """An os.write that writes at most `limit` bytes in all, then fails like a full disk."""
    real_write = os.write
    budget = [limit]

    def write(fd, data):
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = real_write(fd, bytes(data[: budget[0]]))
        budget[0] -= n
        return n

    return write


# a full disk at every kind of place in the file: the header's placeholder (0), torch.save's records (a
# hostile test: torch's zip writer turned the ENOSPC of most of them into a RuntimeError, 49 of 61 cut
# points from 128 to 6,656 bytes), past the payload (the header written last)
@pytest.mark.parametrize("where", ["write:0", "write:128", "write:500", "write:1000", "write:3000", "fsync"])
def test_a_full_disk_raises_storage_full_removes_the_temporary_and_keeps_the_previous_checkpoints(
    tmp_path, monkeypatch, where
):
    store = _three_checkpoints(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    if where.startswith("write"):
        monkeypatch.setattr(os, "write", _full_after(int(where.split(":")[1])))  # a partial write, then ENOSPC
    else:

        def full_fsync(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "fsync", full_fsync)
    with pytest.raises(StorageFullError) as caught:
        store.write(4, sample_state(4.0))
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary, nothing pruned
    found, rejected = store.load_latest()
    assert (found.seq, rejected) == (3, [])


def test_a_temporary_left_by_a_crashed_writer_is_removed_at_open(tmp_path):
    store = _three_checkpoints(tmp_path)
    (tmp_path / ".checkpoint-abc123.tmp").write_bytes(b"half a checkpoint")
    CheckpointStore(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [store.path_for(s).name for s in (1, 2, 3)]


@pytest.mark.parametrize(
    "config",
    [
        ForecasterConfig(hidden_size=8, k1=2, k2=5, seed=1),
        ForecasterConfig(cell="lstm", hidden_size=6, k1=3, k2=4, mode="stateless", replay_batch=4, n_features=2),
    ],
    ids=["stateful-gru", "stateless-lstm"],
)
def test_a_forecaster_state_dict_restores_bit_identically_and_continues_identically(tmp_path, config):
    generator = torch.Generator().manual_seed(0)
    d = config.n_features

    def batch(n: int) -> list[tuple[str, list[float | None]]]:
        values = torch.randn(n, d, generator=generator, dtype=torch.float64).tolist()
        return [
            (f"s{i % 3}", [None if (i + j) % 7 == 0 else v for j, v in enumerate(row)]) for i, row in enumerate(values)
        ]

    original = Forecaster(config)
    for _ in range(6):
        original.observe_many(batch(5))
    store = CheckpointStore(tmp_path)
    store.write(30, {"models": {"m": original.state_dict()}})
    found, _ = store.load_latest()
    restored = Forecaster.from_state_dict(found.state["models"]["m"])
    assert_bitwise_equal(restored.state_dict(), original.state_dict())
    for _ in range(4):
        more = batch(5)
        assert restored.observe_many(more) == original.observe_many(more)
    assert_bitwise_equal(restored.state_dict(), original.state_dict())
    assert restored.forecast("s1", horizon=3, level=0.8) == original.forecast("s1", horizon=3, level=0.8)


def test_writing_a_checkpoint_holds_no_copy_of_its_payload_and_writes_the_encoded_bytes(tmp_path: Path) -> None:
    # fix (hostile test): the payload was encoded in memory first, held three times (the buffer, its
    # value, the header's concatenation): each checkpoint of two 2 GB models peaked 8.6 GB above the state
    state = {"weights": torch.zeros(12_500_000), "plain": [1, 2.5, "x", None]}  # 50 MB of tensor
    store = CheckpointStore(tmp_path)
    tracemalloc.start()
    try:
        path = store.write(7, state)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000, peak  # (Python's allocations: 100 MB before)
    assert path.read_bytes() == encode_checkpoint(7, state)
    assert torch.equal(store.read(7).state["weights"], state["weights"])
