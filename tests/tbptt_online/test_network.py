"""The network's one-step forward: a few rows without autograd run the compiled step and head
(gru_window), more rows or a recorded graph run torch's cell and linear ops; the two agree to
rounding."""

from __future__ import annotations

import threading

import pytest
import torch

from tbptt_online import ForecasterConfig, gru_window
from tbptt_online.network import PART_ROWS, PARTS, RecurrentNetwork


def network(dtype: torch.dtype) -> RecurrentNetwork:
    torch.manual_seed(0)
    net = RecurrentNetwork(ForecasterConfig(hidden_size=8, hybrid=False, loss="gaussian")).to(dtype)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.5)
    return net


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_few_rows_step_compiled_and_many_through_torch_to_rounding(dtype, monkeypatch):
    net = network(dtype)
    rows = gru_window.FEW_ROWS + 1
    x, h = torch.randn(rows, 1, dtype=dtype), torch.randn(rows, 1, 8, dtype=dtype)
    calls = []
    monkeypatch.setattr(gru_window, "forward_kernel", lambda *a, f=gru_window.forward_kernel: calls.append(1) or f(*a))
    with torch.no_grad():
        many = net.advance(x, h), net.predict(h)  # torch's ops: more than FEW_ROWS rows
        assert not calls
        few = [net.advance(x[i : i + 1], h[i : i + 1]) for i in range(rows)]
        assert len(calls) == rows
        heads = torch.cat([net.predict(h[i : i + 1]) for i in range(rows)])
    with torch.enable_grad():  # a recorded graph: torch's ops, whatever the rows
        assert torch.equal(net.advance(x[:1], h[:1]), net.stack(net.step(x[:1], net.unstack(h[:1]))))
    assert len(calls) == rows
    tolerance = 1e-6 if dtype == torch.float32 else 1e-14
    assert torch.cat(few).shape == many[0].shape == (rows, 1, 8)
    assert torch.allclose(torch.cat(few), many[0], rtol=0, atol=tolerance)
    assert torch.allclose(heads, many[1], rtol=0, atol=tolerance)


def test_an_lstm_or_a_second_layer_steps_through_torch_and_any_head_runs_compiled(monkeypatch):
    monkeypatch.setattr(gru_window, "forward_kernel", None)  # (called: a TypeError)
    for config in (ForecasterConfig(cell="lstm", hidden_size=4), ForecasterConfig(num_layers=2, hidden_size=4)):
        net = RecurrentNetwork(config)
        with torch.no_grad():
            state = net.advance(torch.ones(1, config.input_size), net.initial_state(1))
            h = net.top(net.unstack(state))
            assert torch.equal(net.predict(state), gru_window.head(h, net.head.weight, net.head.bias))


def test_a_state_or_input_of_another_dtype_than_the_weights_is_refused_whatever_the_rows() -> None:
    # fix (session 34, a review): a network moved to float64 after construction ran ticks of up to 8
    # rows in mixed precision (the kernel widens everything) and refused ticks of 9 (torch's cell)
    net = network(torch.float32).double()
    for rows in (1, gru_window.FEW_ROWS + 1):
        with torch.no_grad(), pytest.raises(RuntimeError):
            net.advance(torch.zeros(rows, 1), torch.zeros(rows, 1, 8))


@pytest.mark.parametrize(
    ("cell", "layers", "rows", "dtype"),
    [("gru", 1, 10_000, torch.float32), ("gru", 1, 10_000, torch.float64), ("gru", 2, 3_000, torch.float32),
     ("rnn", 1, 2_049, torch.float64)],
)  # fmt: skip
def test_a_step_of_many_rows_runs_in_parts_with_the_same_bits_on_one_thread_and_two(
    cell, layers, rows, dtype, monkeypatch, torch_threads
):
    # without a graph the rows go in parts of PART_ROWS or more (at most PARTS), in turn on one thread and on
    # one_thread's pool (torch on one thread each) on two: the same calls, the same bits; with a graph (a
    # replay) one call, as before; fewer than 2 PART_ROWS rows: one call
    net = RecurrentNetwork(ForecasterConfig(cell=cell, num_layers=layers, hybrid=False)).to(dtype)
    g = torch.Generator().manual_seed(rows)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=dtype) * 0.3)
    x = torch.randn(rows, net.cells[0].weight_ih.shape[1], generator=g, dtype=dtype)
    state = torch.randn(rows, layers, net.hidden_size, generator=g, dtype=dtype)
    calls = []

    def step(x, layers, original=net.step):
        calls.append((x.shape[0], threading.current_thread().name, torch.get_num_threads()))
        return original(x, layers)

    monkeypatch.setattr(net, "step", step)
    parts = min(PARTS, rows // PART_ROWS)
    sizes = [rows * (i + 1) // parts - rows * i // parts for i in range(parts)]
    torch_threads(1)
    with torch.no_grad():
        one = net.advance(x, state)
    assert calls == [(size, threading.current_thread().name, 1) for size in sizes]
    calls.clear()
    torch_threads(2)
    with torch.no_grad():
        two = net.advance(x, state)
    assert sorted(n for n, _, _ in calls) == sorted(sizes)
    assert all(name.startswith("tbptt-chunks") and threads == 1 for _, name, threads in calls)
    assert torch.equal(one, two) and not two.requires_grad
    calls.clear()
    with torch.enable_grad():
        graph = net.advance(x, state)
    assert calls == [(rows, threading.current_thread().name, 2)] and graph.requires_grad
    calls.clear()
    with torch.no_grad():
        net.advance(x[: 2 * PART_ROWS - 1], state[: 2 * PART_ROWS - 1])
    assert len(calls) == 1
