"""one_thread: chunks of work on pool threads that each run torch on one thread."""

from __future__ import annotations

import threading

import pytest
import torch

from tbptt_online import one_thread


def test_one_thread_runs_the_chunks_in_order_in_the_calling_thread(torch_threads):
    torch_threads(1)
    calls = []
    one_thread.run_chunks(5, lambda chunks: calls.append((threading.current_thread().name, list(chunks))))
    assert calls == [(threading.current_thread().name, [0, 1, 2, 3, 4])]


def test_two_threads_run_each_chunk_once_on_pool_threads_with_torch_on_one(torch_threads):
    torch_threads(2)
    ran = []

    def run(chunks):
        for i in chunks:
            product = torch.randn(64, 64) @ torch.randn(64, 64)  # (a parallel operation first: the setting stays)
            ran.append((i, threading.current_thread().name, torch.get_num_threads(), product.shape))

    one_thread.run_chunks(7, run)
    assert sorted(i for i, _, _, _ in ran) == list(range(7))
    assert all(name.startswith("tbptt-chunks") and threads == 1 for _, name, threads, _ in ran)
    assert torch.get_num_threads() == 2  # the caller's own setting
    fresh = []
    thread = threading.Thread(target=lambda: fresh.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert fresh == [2]  # a new thread's default given back


def test_an_error_of_a_chunk_is_raised_once_every_call_has_ended(torch_threads):
    torch_threads(2)
    done = []

    def run(chunks):
        for i in chunks:
            if i == 1:
                raise ValueError("chunk 1")
            done.append(i)

    with pytest.raises(ValueError, match="chunk 1"):
        one_thread.run_chunks(6, run)
    assert sorted(done) == [0, 2, 3, 4, 5]
