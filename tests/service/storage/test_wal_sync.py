"""WalSyncer: an fsync in a process out of file descriptors (a flood of idle connections)."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import threading
from collections.abc import Iterator

import pytest

from tbptt_service.storage.wal_sync import WalSyncer


@contextlib.contextmanager
def out_of_descriptors() -> Iterator[list[int]]:
    """Every file descriptor the process may open is taken (its soft limit lowered to a few past those open), as
    21,000 idle connections to the server took them; the descriptors taken come back when the block ends, or
    earlier when the caller closes them (the list it gets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
    taken: list[int] = []
    try:
        while True:
            try:
                taken.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                assert exc.errno == errno.EMFILE
                break
        yield taken
    finally:
        for fd in taken:
            os.close(fd)
        taken.clear()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_an_fsync_out_of_descriptors_succeeds_and_fails_nothing_later(tmp_path):
    # until session 60 each fsync opened the file anew: EMFILE failed the fsync for good, and the model refused
    # every change until a restart
    path = tmp_path / "events.sqlite3-wal"
    path.write_bytes(b"frames")
    syncer = WalSyncer(path)
    try:
        assert syncer.request().result(timeout=60) is None
        with out_of_descriptors():
            assert syncer.request().result(timeout=60) is None
            syncer.sync_here()
        assert syncer.failure is None
        assert syncer.request().result(timeout=60) is None
    finally:
        syncer.close()


def test_an_open_short_of_descriptors_waits_for_them_instead_of_failing(tmp_path, monkeypatch):
    path = tmp_path / "events.sqlite3-wal"
    path.write_bytes(b"frames")
    real_open = os.open
    refused = threading.Event()

    def watched_open(file, flags, *args, **kwargs):
        try:
            return real_open(file, flags, *args, **kwargs)
        except OSError as exc:
            if exc.errno == errno.EMFILE and os.fspath(file) == os.fspath(path):
                refused.set()
            raise

    syncer = WalSyncer(path)
    try:
        with out_of_descriptors() as taken:
            monkeypatch.setattr(os, "open", watched_open)
            pending = syncer.request()
            assert refused.wait(timeout=60)  # the syncer's open was refused at least once
            assert not pending.done() and syncer.failure is None
            for fd in taken:
                os.close(fd)
            taken.clear()
            assert pending.result(timeout=60) is None
        assert syncer.failure is None
    finally:
        syncer.close()


def test_a_file_replaced_under_the_syncer_is_synced_through_the_new_one(tmp_path, monkeypatch):
    path = tmp_path / "events.sqlite3-wal"
    path.write_bytes(b"frames")
    synced: list[tuple[int, int]] = []  # (the synced descriptor's inode, the inode the path names then)
    real_fsync = os.fsync

    def watched_fsync(fd: int) -> None:
        synced.append((os.fstat(fd).st_ino, os.stat(path).st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watched_fsync)
    syncer = WalSyncer(path)
    try:
        syncer.sync_here()
        path.unlink()
        path.write_bytes(b"other frames")
        syncer.sync_here()
        path.unlink()
        syncer.sync_here()  # no file: nothing to sync
    finally:
        syncer.close()
    assert len(synced) == 2 and all(fd_inode == path_inode for fd_inode, path_inode in synced)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO])
def test_an_open_failing_otherwise_fails_its_fsync_as_before(tmp_path, monkeypatch, code):
    path = tmp_path / "events.sqlite3-wal"
    path.write_bytes(b"frames")

    def refusing_open(file, flags, *args, **kwargs):
        raise OSError(code, os.strerror(code), os.fspath(file))

    syncer = WalSyncer(path)
    try:
        monkeypatch.setattr(os, "open", refusing_open)
        with pytest.raises(OSError) as caught:
            syncer.request().result(timeout=60)
        assert caught.value.errno == code and syncer.failure is caught.value
    finally:
        syncer.close()
