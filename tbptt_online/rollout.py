"""Running the network forward without learning: a fresh state over a series' last
values (stateless mode), and the multi-step rollout of forecasts from a state.

Both run a batch of series at once; neither records a graph (callers run them under
``torch.no_grad`` or ``torch.inference_mode``) nor writes anything.
"""

from __future__ import annotations

import torch

from tbptt_online.network import RecurrentNetwork, State, run_window
from tbptt_online.series_store import window


def fresh_state(
    network: RecurrentNetwork, tensors: dict[str, torch.Tensor], ring_size: int, k2: int, slots: torch.Tensor
) -> State:
    """The state of a fresh run (from h_0) over each series' last min(t, k2) values,
    read from the history ring of ``tensors`` (a store's, or a snapshot's): the carried
    state of stateless mode. Shorter windows are front-padded and their rows wait."""
    steps = tensors["steps"][slots]  # [B] t of each series
    lengths = steps.clamp(max=k2)  # [B] w = min(t, k2)
    length = int(lengths.max()) if len(slots) else 0
    x, _, _, _ = window(tensors, ring_size, slots, steps, length, with_base=False)  # [w, B, i]
    return run_window(network, network.initial_state(len(slots)), x, length - lengths)


def roll_out(network: RecurrentNetwork, state: State, last: torch.Tensor, horizon: int, residual: bool) -> torch.Tensor:
    """Forecast ``horizon`` steps ahead from ``state``, feeding back the model's own mean.

    last [B, d]: the last input x_t (the base of the residual head's first mean).
    Returns the raw predictions ``[horizon, B, p]`` in the network's dtype: step k's
    row is ``predict`` of the state after k - 1 fed-back means (with the residual
    head, each mean is the change added to the value fed before it).
    """
    d = last.shape[1]
    means, rest = [], []  # [B, d] and [B, p - d] per step: one cat at the end, not one per step
    for k in range(horizon):
        # (``predict`` and ``advance`` as a tick calls them: the head compiled for any rows, so
        # the first step equals the forecast the tick served, bit for bit)
        pred = network.predict(state)  # [B, p]
        mean = pred[:, :d]
        if residual:
            mean = mean + last  # [B, d] the change from the last input, as losses.shift_mean
            last = mean
        means.append(mean)
        rest.append(pred[:, d:])
        if k < horizon - 1:  # the state after the last step is never read
            state = network.advance(mean, state)  # feed back its own mean
    return torch.cat([torch.stack(means), torch.stack(rest)], dim=2)  # [H, B, p]
