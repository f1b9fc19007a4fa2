"""Online combination of forecasters: per series, per horizon, two exponentially weighted
averages (EWA) of the members by their discounted absolute losses, one with a short memory
and one with a long one, and a third EWA over those two.

For member ``e`` at horizon ``h`` of one series and feature, after each scored target, in
each of the two *combiners* ``i``,

    L_ie <- rho_i * L_ie + min(x_e, cap),      N_i <- rho_i * N_i + 1,

and the combiner's weights are ``w_ie ∝ exp(-ETA * sqrt(N_i / (EVIDENCE sqrt(h))) * L_ie / min_e' L_ie')``
over the members allowed to take weight (``L_ie / N_i`` is the discounted mean, and the
ratio makes ``ETA`` free of the series' scale: once ``N_i = EVIDENCE`` a member whose loss is
10 % above the best one's gets ``exp(-ETA / 10)`` of its one-step weight). The factor
``sqrt(N_i / (EVIDENCE sqrt(h)))`` weighs a difference of mean losses by how much evidence it
rests on (a mean's noise falls as ``1 / sqrt(N)``): a young series' combiners, whose means
rest on a few targets, stay spread; the slow combiner's, on up to 1,000, tell apart members
a percent apart (a random walk's naive forecast against members 1-3 % above it kept about a
third of the weight each when the temperature was fixed). At horizon h the forecasts of
consecutive origins share h - 1 of their h steps, so their errors are not independent: on a
random walk the mean of N of them is as noisy as N / h independent ones, on white noise as
N. The count is taken as ``N / sqrt(h)``, between the two (``N / h`` measured better on
average but lost 0.04 of waterflow's MAE / naive at h=1..12; README, accuracy, session 28).
Without it a young series' long horizons went to whichever member had extrapolated its first
steps best: a heart rate that rose for its first 20 values gave the long AR on the changes
0.94 of the weight at h = 12 on 12 scored targets, and its forecasts 12 steps ahead were
10 above the values while the series turned.

- The **fast** combiner (``rho = DISCOUNT``, about the last 100 targets) scores errors in
  units of the local scale, ``x_e = |y - F_e| / scale``, ``cap = CAP``: it follows whichever
  member led recently, a calm stretch counting as much as a volatile one.
- The **slow** combiner (``rho = SLOW_DISCOUNT``, about the last 1,000) scores them in the
  series' units, ``x_e = |y - F_e|``, ``cap = CAP * scale``: what the MAE of a stream
  measures. It cannot fall far behind the member whose MAE is lowest over the long run,
  which the fast one can (a level plus noise, where the recent leader changes by chance; a
  spiky series, where a member good in calm stretches and bad in bursts leads in local
  scales while losing in MAE).
- The **pooled** combiner (``POOLED``) has no losses of its own: at horizon h it weighs the
  members by the mean of the fast combiner's weights at h and at h = 1, where a series has
  the most evidence (each value scores one forecast at every horizon, but at horizon h only
  ``N / sqrt(h)`` count, and before a long horizon has anything scored its weights are
  equal). A young series' long horizons otherwise spread their weight over the 23 members,
  most of them levels (3 levels and a trend in units and in logs), so a trending series'
  12-step forecast lagged while the members that led at one step (the ARs, the trend) led at
  12 too. Its forecast at h is the mean of the fast combiner's and of the members' forecasts
  at h weighed by the fast combiner's one-step weights: one sum per member and horizon,
  and the served forecast is the combiners' forecasts mixed by mu, not a sum of its own
  (``hybrid_kernels.base``: as many sums as before it). At one step it is the fast combiner (the mean
  of its one-step weights with themselves), so there it takes no weight in the mixture and the fast
  and slow ones share it as they would alone (``mixed_weights``): counted twice, it moved every
  one-step forecast toward the fast combiner (elec_equip 0.2095 -> 0.2112 of naive's MAE).
  Measured (README, "Combination"): the held-out short series' h=1..12 0.681 -> 0.676 of
  naive's MAE (BJsales 1.059 -> 1.036, nonfarm employment 0.751 -> 0.733); the one-step
  weights alone at every h (session 61) gained as much there but lost where the one-step
  leader errs far ahead (sktime's set's h=1..12 +0.24 %, waterflow +2.2 %, nonfarm
  employment +1.9 %); where it does, the mixture's scores at h keep the pooled share low.
- A **young horizon borrows from the shorter one** (``NEIGHBOUR``): the fast combiner's logits at h >= 2 are
  ``(n own + NEIGHBOUR those at h - 1) / (n + NEIGHBOUR)`` with ``n = N / sqrt(h)``, those at h - 1 as this rule
  gave them, less their largest (``ewa``'s ``prior``). A horizon with nothing scored (a series' first h values)
  takes the last scored one's weights instead of equal ones; one with a few scored targets leans toward it; at
  N = 100 the neighbour is 6 % of the logits at h = 12. A young trending series' long horizons otherwise spread over
  the levels that lag it while every shorter one had found the trend members (smooth declines of 60 values: served
  0.404 -> 0.396 of naive's MAE at h=1..12; pmdarima's austres 0.204 -> 0.188; README, "Combination"). The slow
  combiner keeps its own (borrowing there too lost on the ten outside streams).
- The **mixture**: the combiners' own forecasts ``G_i = sum_e w_ie F_e`` are scored as the
  slow one scores members (``rho = META_DISCOUNT``) and weighted ``mu_i ∝ exp(-META_ETA *
  sqrt(N / (EVIDENCE sqrt(h))) * A_i / min A)`` (A_i: combiner i's discounted mean loss, N:
  the mixture's discounted count); the served
  weights are ``w_e = mu_fast w_fast,e + mu_slow w_slow,e + mu_pooled w_pooled,e``
  (online aggregation over several discounts, as in Fixed Share over combiners or BOA
  with several learning rates).

Before anything is scored at a horizon a combiner's (and the mixture's) weights are
equal. Beyond the last scored horizon the weights of that horizon hold.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from tbptt_online.compiled import compiled, exp_weight, inlined, readable, unsigned

DISCOUNT = 0.99  # rho of the fast combiner: about the last 100 targets count
SLOW_DISCOUNT = 0.999  # rho of the slow combiner: about the last 1,000
ETA = 25.0  # both combiners'
META_DISCOUNT = 0.999  # rho of the combiners' own losses
META_ETA = 25.0
CAP = 50.0  # one target adds at most this (in units of the scale) to a member's loss: a spike, or a
# scale still unknown in a series' first values, cannot dominate the discounted sums
COMBINERS = 3  # fast, slow, pooled
POOLED = 2  # the combiner whose weights at h are the mean of the fast one's at h and at h = 1
EVIDENCE = 100.0  # the discounted count at which ETA is the weights' factor at h = 1 (the fast combiner's
# steady state); a combiner's factor at horizon h is ETA * sqrt(N / (EVIDENCE sqrt(h)))
NEIGHBOUR = 2.0  # the fast combiner's logits at h >= 2: (n own + NEIGHBOUR those at h - 1) / (n + NEIGHBOUR),
# n = N / sqrt(h): the shorter horizon's ranking counts as two scored targets (6 % of the logits at h = 12 at N = 100)


@compiled
def discounted(loss: float, error: float, cap: float, rho: float) -> float:
    """A member's loss after one scored target: ``rho * L + min(|error|, cap)`` (a
    non-finite error counts as the cap)."""
    capped = error
    if not capped < cap:  # NaN, inf
        capped = cap
    return rho * loss + capped


@compiled
def scored_error(error: float, unit: float, local: bool) -> tuple[float, float]:
    """A combiner's error and its cap from an absolute error in the series' units and the
    local scale ``unit``: in local scales (``local``: the fast combiner) or in the series'
    units (the slow one and the mixture: what MAE measures)."""
    if local:
        return error / unit, CAP
    return error, CAP * unit


@compiled
def _fold(loss, count, error, scored, scale, rho, local) -> None:
    n_rows, horizons, members, d = loss.shape
    for b in range(n_rows):
        for h in range(horizons):
            for k in range(d):
                if scored[b, h, k]:
                    for e in range(members):
                        x, cap = scored_error(error[b, h, e, k], scale[b, k], local)
                        loss[b, h, e, k] = discounted(loss[b, h, e, k], x, cap, rho)
                    count[b, h, k] = rho * count[b, h, k] + 1.0


def fold(
    loss: torch.Tensor,
    count: torch.Tensor,
    error: torch.Tensor,
    scored: torch.Tensor,
    scale: torch.Tensor,
    rho: float = DISCOUNT,
    local: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Discount by ``rho`` and add one target's absolute errors (``discounted``), in units of
    the local scale (``local``, the fast combiner) or in the series' units capped at ``CAP``
    local scales (the slow one).

    loss [B, H, E, d], count [B, H, d]; error [B, H, E, d] absolute errors of the members'
    forecasts of that target made h steps before (a non-finite one counts as the cap); scored
    [B, H, d]: which horizons had a forecast to score (and an observed target); scale [B, d] > 0.

    >>> loss, count = fold(torch.zeros(1, 1, 2, 1), torch.zeros(1, 1, 1), torch.tensor([[[[1.0], [3.0]]]]),
    ...                    torch.tensor([[[True]]]), torch.tensor([[2.0]]))
    >>> loss.flatten().tolist(), count.flatten().tolist()
    ([0.5, 1.5], [1.0])
    """
    f64 = torch.float64
    new_loss, new_count = loss.to(f64, copy=True).contiguous(), count.to(f64, copy=True).contiguous()
    arrays = _array(error), _array(scored), _array(scale)
    _fold(new_loss.numpy(), new_count.numpy(), *arrays, float(rho), bool(local))
    return new_loss.to(loss.dtype), new_count.to(count.dtype)


def _array(tensor: torch.Tensor) -> np.ndarray:
    """A contiguous numpy array of ``tensor`` (float tensors as float64), for reading."""
    return readable(tensor.to(torch.float64) if tensor.is_floating_point() else tensor)[0]


@inlined
def ewa(loss, count, b, k, allowed, eta, logits, weights, row, width, prior=0.0) -> None:
    """At every horizon h of series ``b`` and feature ``k``: the convex weights of the M
    members of ``loss`` [B, Hc, M, d] at ``weights[row, h * W + e]`` (a scratch row of Hc
    blocks of ``width`` W >= M; entries e >= M are left as they were), from their losses, their discounted count
    ``count[b, h, k]`` (``count`` [B, Hc, d]) and which members may take weight ``allowed``
    [M] (at least one): ``softmax(-eta sqrt(N / (EVIDENCE sqrt(h))) L_e / min L)`` over the allowed
    ones (the count N is shared by the members, so A_e / min A = L_e / min L), equal before
    anything is scored (N = 0); min A >= 1e-12 (a flat series' zero losses). The logits less
    the largest are left at the same places of ``logits`` (-inf where not allowed). One call
    per series and feature, elements indexed, never sliced: each array handed to a call (or a
    view made) costs two atomic reference counts, as much as the exps when it was per
    horizon. The exps of all horizons run in one loop (``exp_weight``, vectorised: a row's
    M = 24 alone is too short for the compiler's vector loop); the sums keep four partial
    sums (four additions in flight instead of one chain of M).

    ``prior`` > 0 (the fast combiner's, ``NEIGHBOUR``): at h >= 2 the logits are ``a * own + (1 - a) *
    those at h - 1`` (as they came out of this rule, so a horizon with nothing scored takes the last scored
    one's), ``a = n / (n + prior)`` with ``n = N / sqrt(h)`` the count the evidence factor uses, less their
    largest again: a young horizon borrows its neighbour's ranking in proportion to how little it has scored
    itself (the module docstring)."""
    horizons, members = loss.shape[1], loss.shape[2]
    for h in range(horizons):
        n = count[b, h, k]
        best = np.inf
        for e in range(members):
            if allowed[e] and loss[b, h, e, k] < best:
                best = loss[b, h, e, k]
        # a difference of means is weighed by its count, as N / sqrt(h) independent ones at horizon h
        evidence = math.sqrt(n / (EVIDENCE * math.sqrt(h + 1.0)))
        factor = -eta * evidence / max(best, 1e-12 * max(n, 1e-12)) if n > 0 else 0.0
        top = best * factor  # the largest logit (factor <= 0, and rounding keeps the order)
        at = h * width
        if prior > 0.0 and h > 0:  # this horizon's logits with the one before's (as they came out), in one pass
            own = n / math.sqrt(h + 1.0)  # the count the evidence factor weighs this horizon's losses by
            a = own / (own + prior)
            rest = 1.0 - a
            largest = -np.inf
            for e in range(members):
                x = a * (loss[b, h, e, k] * factor - top) + rest * logits[row, unsigned(at - width + e)]
                x = x if allowed[e] else -np.inf  # (a select, no branch: the loop stays a vector loop)
                logits[row, unsigned(at + e)] = x
                largest = max(largest, x)
            for e in range(members):
                logits[row, unsigned(at + e)] -= largest  # (-inf stays -inf: largest is an allowed member's)
        else:
            for e in range(members):
                logits[row, unsigned(at + e)] = loss[b, h, e, k] * factor - top if allowed[e] else -np.inf
    if members == width:
        for j in range(horizons * width):  # one loop over the horizons' blocks: vectorised
            weights[row, j] = exp_weight(logits[row, j])
    else:  # blocks wider than their members: the rest of each block is not theirs
        for h in range(horizons):
            for e in range(members):
                weights[row, h * width + e] = exp_weight(logits[row, h * width + e])
    normalise(weights, row, horizons, width, members)


@inlined
def normalise(x, row, blocks, width, n) -> None:
    """Each of the ``blocks`` blocks of ``x[row]`` (block j: ``x[row, j * width]`` .. ``x[row, j * width + n - 1]``)
    divided by its sum, taken in four partial sums (i mod 4), added as (s0 + s1) + (s2 + s3). All blocks in one
    call: an array handed to a call is reference-counted, two atomic operations (a call per horizon, 36 a
    series, took about 3 ms of a tick of 10,000 series, session 56)."""
    for j in range(blocks):
        at = j * width
        s0 = s1 = s2 = s3 = 0.0
        i = 0
        while i + 4 <= n:
            s0 += x[row, unsigned(at + i)]
            s1 += x[row, unsigned(at + i + 1)]
            s2 += x[row, unsigned(at + i + 2)]
            s3 += x[row, unsigned(at + i + 3)]
            i += 4
        if i < n:
            s0 += x[row, unsigned(at + i)]
        if i + 1 < n:
            s1 += x[row, unsigned(at + i + 1)]
        if i + 2 < n:
            s2 += x[row, unsigned(at + i + 2)]
        inverse = 1.0 / ((s0 + s1) + (s2 + s3))
        for e in range(n):
            x[row, unsigned(at + e)] *= inverse


_ALL = np.ones(COMBINERS, dtype=np.bool_)
MIXTURE = COMBINERS  # the row of ``mixed_weights``' scratch that holds the mixture's


@inlined
def scratch(horizons: int, members: int) -> np.ndarray:
    """A scratch for ``mixed_weights``' logits or weights: [COMBINERS + 1, Hc * E] (fast,
    slow, pooled (left unwritten: its weights are read from the fast one's, ``pooled``), the mixture's; horizon
    h's block at h * E; E >= COMBINERS)."""
    return np.empty((COMBINERS + 1, horizons * members))


@inlined
def mixed_weights(
    fast_loss,
    fast_count,
    slow_loss,
    slow_count,
    meta_loss,
    meta_count,
    allowed,
    b,
    k,
    logits,
    combiners,
    weights,
) -> None:
    """The served weights ``weights`` [Hc, E] of one series ``b`` and feature ``k`` at every
    horizon (the module docstring): each combiner's weights into ``combiners[i, h * E + e]`` (i = 0
    fast, 1 slow) from its losses [B, Hc, E, d] and count [B, Hc, d] (the pooled combiner's, i =
    ``POOLED``, are the mean of the fast one's at h and at h = 1, ``pooled``: its row is not written), their
    mixture mu into ``combiners[MIXTURE, h * COMBINERS + i]`` (i < COMBINERS: ``mixed``) from the combiners'
    losses ``meta_loss`` [B, Hc, COMBINERS, d] and count ``meta_count`` [B, Hc, d]; the logits (less the
    largest) into the same places of ``logits`` (``combiners`` and ``logits`` are ``scratch(Hc, E)``);
    ``allowed`` [E] which members may take weight."""
    members = weights.shape[1]
    ewa(fast_loss, fast_count, b, k, allowed, ETA, logits, combiners, 0, members, NEIGHBOUR)
    ewa(slow_loss, slow_count, b, k, allowed, ETA, logits, combiners, 1, members)
    ewa(meta_loss, meta_count, b, k, _ALL, META_ETA, logits, combiners, MIXTURE, COMBINERS)  # blocks of 3: one loop
    # at h = 1 the pooled combiner is the fast one (the mean of its weights at h = 1 and at h = 1): one candidate,
    # not two, so it takes no weight there and the fast and slow ones share it as in a mixture of the two
    both = combiners[MIXTURE, 0] + combiners[MIXTURE, 1]
    combiners[MIXTURE, 0] /= both
    combiners[MIXTURE, 1] /= both
    combiners[MIXTURE, POOLED] = 0.0
    for h in range(weights.shape[0]):
        served_row(combiners, weights, h, members)


@inlined
def served_row(combiners, weights, h, members) -> None:
    """Row h of the served weights ``weights`` [Hc, E] from ``mixed_weights``' scratch ``combiners``: the fast and
    slow combiners' weights at h mixed by mu, and the pooled one's, half the fast one's at h and half its first
    block's (its row is not written), by its mu (``mixed_weights``, and ``after_change.dropped`` after it moved
    the combiners' weights)."""
    at = h * members
    half = 0.5 * mixed(combiners, h, POOLED)
    mu_fast, mu_slow = mixed(combiners, h, 0) + half, mixed(combiners, h, 1)
    for e in range(members):
        weights[h, e] = (
            mu_fast * combiners[0, unsigned(at + e)] + mu_slow * combiners[1, unsigned(at + e)]
        ) + half * combiners[0, unsigned(e)]


@inlined
def mixed(combiners, h, i) -> float:
    """The mixture's weight mu of combiner i at horizon h (0-based) in ``mixed_weights``' scratch: its row
    ``MIXTURE`` holds blocks of ``COMBINERS``, one per horizon (the exps of all horizons in one vectorised loop)."""
    return combiners[MIXTURE, unsigned(h * COMBINERS + i)]


@inlined
def pooled(combiners, i, at, e) -> float:
    """Combiner i's weight of member e in horizon block ``at`` (= h * E) of ``mixed_weights``' scratch: the
    pooled one's (i = ``POOLED``) the mean of the fast one's at h and at h = 1 (block 0)."""
    if i == POOLED:
        return 0.5 * (combiners[0, unsigned(at + e)] + combiners[0, unsigned(e)])
    return combiners[i, unsigned(at + e)]


@compiled
def softmax(x: np.ndarray) -> None:
    """``x`` [n] replaced by its softmax (at least one finite entry)."""
    top = -np.inf
    for e in range(x.shape[0]):
        top = max(top, x[e])
    total = 0.0
    for e in range(x.shape[0]):
        x[e] = math.exp(x[e] - top)
        total += x[e]
    for e in range(x.shape[0]):
        x[e] /= total


@compiled
def _weights(loss: np.ndarray, count: np.ndarray, allowed: np.ndarray, eta: float, out: np.ndarray) -> None:
    n_rows, horizons, members, d = loss.shape
    logits, weights = np.empty((1, horizons * members)), np.empty((1, horizons * members))
    for b in range(n_rows):
        for k in range(d):
            ewa(loss, count, b, k, allowed[b, :, k], eta, logits, weights, 0, members)
            out[b, :, :, k] = weights[0].reshape(horizons, members)


def weights(loss: torch.Tensor, count: torch.Tensor, allowed: torch.Tensor, eta: float = ETA) -> torch.Tensor:
    """``[B, H, E, d]`` the convex weights of one EWA (``ewa``) from loss [B, H, E, d] and count
    [B, H, d]; ``allowed`` [B, E, d] says which members may take weight (at least one per row).

    >>> loss, allowed = torch.tensor([[[[1.0], [1.1]]]]), torch.ones(1, 2, 1, dtype=torch.bool)
    >>> w = weights(loss, torch.full((1, 1, 1), EVIDENCE), allowed)  # 10 % above the best
    >>> round(w[0, 0, 1, 0].item() / w[0, 0, 0, 0].item(), 6) == round(math.exp(-ETA * 0.1), 6)
    True
    >>> w = weights(loss, torch.full((1, 1, 1), EVIDENCE / 4), allowed)  # on a quarter of the evidence
    >>> round(w[0, 0, 1, 0].item() / w[0, 0, 0, 0].item(), 6) == round(math.exp(-ETA * 0.1 / 2), 6)
    True
    """
    out = torch.empty(loss.shape, dtype=torch.float64)
    _weights(_array(loss), _array(count), _array(allowed), float(eta), out.numpy())
    return out


@compiled
def _served(fast_loss, fast_count, slow_loss, slow_count, meta_loss, meta_count, allowed, out, combiners, mu) -> None:
    n_rows, horizons, members, d = fast_loss.shape
    logits, each = scratch(horizons, members), scratch(horizons, members)
    weights = np.empty((horizons, members))
    for b in range(n_rows):
        for k in range(d):
            mixed_weights(
                fast_loss, fast_count, slow_loss, slow_count, meta_loss, meta_count, allowed[b, :, k],
                b, k, logits, each, weights,
            )  # fmt: skip
            out[b, :, :, k] = weights
            for h in range(horizons):
                for i in range(COMBINERS):
                    mu[b, h, i, k] = mixed(each, h, i)
                    for e in range(members):
                        combiners[b, h, i, e, k] = pooled(each, i, h * members, e)


def served_weights(rows: dict[str, torch.Tensor], allowed: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The served weights ``[B, Hc, E, d]``, each combiner's ``[B, Hc, COMBINERS, E, d]`` (fast, slow,
    pooled) and their mixture ``[B, Hc, COMBINERS, d]`` from the rows' combination fields (``FIELDS``);
    ``allowed`` [B, E, d] which members may take weight."""
    loss = rows["c_loss"]
    b, horizons, members, d = loss.shape
    if members < COMBINERS:  # (a horizon's block of the scratch holds the mixture's COMBINERS weights)
        raise ValueError(f"c_loss has {members} members, at least {COMBINERS} (the combiners) are needed")
    out = torch.empty(loss.shape, dtype=torch.float64)
    combiners = torch.empty(b, horizons, COMBINERS, members, d, dtype=torch.float64)
    mu = torch.empty(b, horizons, COMBINERS, d, dtype=torch.float64)
    arrays = [_array(rows[name]) for name in FIELDS]
    _served(*arrays, _array(allowed), out.numpy(), combiners.numpy(), mu.numpy())
    return out, combiners, mu


FIELDS = ("c_loss", "c_count", "c_slow_loss", "c_slow_count", "c_meta_loss", "c_meta_count")  # in kernel order
