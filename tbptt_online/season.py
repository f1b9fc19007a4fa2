"""Season lengths of many series at once, from the autocorrelation of their prefix.

Per row: fill gaps by linear interpolation; difference once (a trend becomes a constant, a
random-walk level white noise); winsorise; take the periodogram of the tapered differences
with ``torch.fft.rfft`` zero-padded past 2n (its inverse is the linear autocorrelation) and
*whiten* it: divide by its own smooth background (a Gaussian-smoothed log periodogram,
refitted with lines clipped so that a season does not lift its own background). Whitening
is what lets a smooth long season show: differencing alone shrinks a season of length P by
2 sin(pi / P) against the noise (0.13 at P = 48: invisible at SNR 1), while a season's
harmonics are narrow lines above the local background whatever the noise's colour. The
inverse FFT of the whitened periodogram is an autocorrelation ``r`` where only lines leave
peaks; for white noise its sd at lag k is known exactly from the taper (about 1 / sqrt(n - k)).

Rules, each with the case that made it:

* a peak: a local maximum of ``r`` that tops +-k/4 lags (not a wiggle on the broad hill of a
  long sine) and rises above the lowest of r at k/4, k/2, 3k/4 by a threshold (not a crest);
* significant: ``r[k] > max(R_FLOOR, z * sd(k))``, z the one-sided Bonferroni quantile for
  ``FALSE_RATE`` = 1 % over the L lags tested (``z_peak``: 3.1 for the 11 lags of a 36-value
  prefix, 4.0 for 335): the evidence asked grows with the number of candidates, so a short
  prefix is not held to the bar of a long one (a monthly season 12 shows at 36 values, not
  48); white noise, random walks and AR(1) report a season in 0 to 2 % of rows at every
  length from 24 to 576 values (up to 5 % for an integrated AR(1) of 0.9, a smooth wander);
* the first season: the strongest significant peak P* vouches for the peaks P of which it
  is a near-multiple with ``r[P] >= FAMILY_RATIO * r[P*]``; the smallest wins (a season 12
  has peaks of equal height at 12, 24, 36: 12, not 24), placed by least squares on its comb
  of peaks at multiples (52.18 weekly: 52);
* a further season: the strongest significant peak that is no near-divisor of one found and
  stands above that season's comb in the autocorrelation of the *level* (the periodogram
  divided by the differencing gain, not whitened, so a weekend's lower level counts):
  ``level[P2] > max(level[P2 - P1], level[P2 + P1]) + margin``; so a daily 48 with a weekly
  pattern gives [48, 336], a pure season 12 never gives 24, 36 or 48.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import torch

R_FLOOR = 0.2  # the smallest autocorrelation taken for a season, however long the series
FALSE_RATE = 0.01  # significance of a peak: a white-noise row shows one this often, over all the lags tested
PROMINENCE = 1.0  # a peak rises this many thresholds above the lowest of r at k/4, k/2, 3k/4
FAMILY_RATIO = 0.5  # a divisor of the strongest peak must reach this fraction of its height
Z_EXCESS = 2.5  # a further season must clear the comb of one found by this many sds of a difference...
EXCESS_FLOOR = 0.1  # ...and by at least this much
MULTIPLE_TOL = 0.1  # near-multiple: within 1 + 10 % of the longer (the broad top of a noisy sine wanders)
MIN_LENGTH = 8  # shorter rows get no season
SHUFFLES = 99  # a row whose changes are mostly equal is tested against this many shuffles of it (``_above_shuffles``)
SHUFFLE_SEED = 0
SHUFFLE_BATCH = 256  # rows of shuffles in one transform at most (about 40 KB a row of 384; smaller run faster a row)
SHUFFLE_ROUNDS = tuple((min(2**i - 1, SHUFFLES), min(2 ** (i + 1) - 1, SHUFFLES)) for i in range(7))  # [first, last)
MIN_CYCLES = 2.5  # never a season with fewer cycles than this in the data
BLOCK_BINS = 4.0  # the background is computed on blocks of this many independent frequency bins (1 / m)
LINE_ROUNDING = 1e-13  # a row whose mean |demeaned change| is below this share of its largest |value| is a line
# (or constant): a thousand times the rounding of float64 values that large
SMOOTH_BLOCKS = 3  # and smoothed over +-3 blocks, three times: a Gaussian of sd ~ 14 bins
LINE_LOG = 1.0  # the background is refitted to the log periodogram clipped at background + 1.0
TAPER = 0.25  # the tapered fraction of the differenced row (cosine ends)
WINSOR = 3.0  # differences beyond this many robust sds (1.4826 MAD) are cut (spikes, level shifts)
SPREAD_BREAK = 4.0  # a change of a series' spread by this factor or more is a break (``stitched``)
GIANT = 50.0  # a row with a change this many times its mean absolute change is centred robustly (``_robust_centred``)


def z_peak(lags: int, false_rate: float = FALSE_RATE) -> float:
    """The significance of a peak, in white-noise standard deviations of ``r`` at its lag,
    when ``lags`` lags are tested: Bonferroni at ``false_rate`` (one-sided), so that the
    evidence asked grows with the number of candidates, not with the series' length alone.

    >>> round(z_peak(11), 2), round(z_peak(335), 2)
    (3.12, 4.01)
    """
    return z_one_sided(false_rate, lags)


def z_one_sided(false_rate: float, tests: int = 1) -> float:
    """The one-sided normal quantile of ``false_rate`` shared by ``tests`` tests (Bonferroni).

    >>> round(z_one_sided(0.01), 2), round(z_one_sided(0.01, 13), 2)
    (2.33, 3.17)
    """
    return NormalDist().inv_cdf(1.0 - false_rate / max(tests, 1))


def significantly_better(
    candidate: torch.Tensor,
    incumbent: torch.Tensor,
    ratio: float,
    z: float,
) -> torch.Tensor:
    """``[R]`` bool: per row of paired absolute errors ``candidate`` and ``incumbent`` ``[R, k]``
    (the same targets forecast two ways), whether the candidate's mean error is below ``ratio``
    of the incumbent's *and* the paired improvement ``incumbent - candidate`` has a mean above
    ``z`` standard errors (one-sided). The ratio asks for a gain worth a change; the paired
    test, that the gain is not the noise of a short sample. Fewer than two pairs: False.

    >>> inc = torch.tensor([[2.0, 2.1, 1.9, 2.0, 2.2, 1.8]])
    >>> [significantly_better(share * inc, inc, 0.7, 2.33).item() for share in (0.5, 0.8)]
    [True, False]
    """
    k = candidate.shape[1]
    if k < 2:
        return torch.zeros(candidate.shape[0], dtype=torch.bool)
    better = candidate.mean(dim=1) < ratio * incumbent.mean(dim=1)  # [R]
    rows = better.nonzero().squeeze(1)  # the paired test only where the ratio holds (often few rows)
    if len(rows):
        gain = incumbent[rows] - candidate[rows]  # [G, k] paired: the noise shared by both forecasts cancels
        better[rows] = gain.mean(dim=1) > z * gain.std(dim=1) / math.sqrt(k)
    return better


def fill_gaps(values: torch.Tensor) -> torch.Tensor:
    """Linear interpolation over NaN per row ``[B, n]``, the ends held at the nearest value
    (``values`` itself where every value is finite)."""
    b, n = values.shape
    finite = torch.isfinite(values)
    if bool(finite.all()):  # most detections: nothing to fill (a quarter of a detection tick at 10,000 rows)
        return values
    idx = torch.arange(n, device=values.device).expand(b, n)
    prev = torch.where(finite, idx, -1).cummax(dim=1).values  # [B, n] last finite index at or before t
    nxt = torch.where(finite, idx, n).flip(1).cummin(dim=1).values.flip(1)  # [B, n] first at or after t
    prev, nxt = torch.where(prev >= 0, prev, nxt), torch.where(nxt < n, nxt, prev)  # an end takes the other side
    safe = torch.where(finite, values, 0.0)
    lo, hi = safe.gather(1, prev.clamp(0, n - 1)), safe.gather(1, nxt.clamp(0, n - 1))
    span = (nxt - prev).clamp(min=1).to(values.dtype)
    return torch.where(finite, values, lo + (hi - lo) * (idx - prev).clamp(min=0).to(values.dtype) / span)


def stitched(values: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``[R, n]``: the rows of ``values`` [R, n] (NaN = missing) whose spread changed at index
    ``at`` [R] (where 1 <= at < n; 0: no change) by ``SPREAD_BREAK`` times or more, with their part
    from ``at`` on moved to the level and the spread of the part before it: scaled by the ratio of
    the two parts' median absolute change (their mean where a median is 0) and started at the
    last finite value before it, so that the change at ``at`` is 0; the other rows as they are.
    And ``[R]`` bool: the rows stitched. A series whose spread grew or shrank with its level (a
    change of units, a sensor's new range) shows its season on both sides alike: the
    autocorrelation of the values as they are read the part with the larger spread alone (a daily
    series multiplied by 10 at value 600: a season of 168 at value 768; by 1e6: none). A smaller
    change of spread is left as it is: a flow that drops and comes back (waterflow) was given
    seasons of 18 and 23 where it has 24.

    >>> out, done = stitched(torch.tensor([[1.0, 2.0, 1.0, 2.0, 30.0, 50.0, 30.0]]), torch.tensor([4]))
    >>> out.tolist(), done.tolist()
    ([[1.0, 2.0, 1.0, 2.0, 2.0, 3.0, 2.0]], [True])
    """
    out, done = values, torch.zeros(len(at), dtype=torch.bool)
    for row, i in ((row, int(i)) for row, i in enumerate(at.tolist()) if 1 <= i < values.shape[1]):
        before, after = values[row, :i], values[row, i:]
        start_before, start_after = before[torch.isfinite(before)], after[torch.isfinite(after)]
        size_before, size_after = _change_size(before), _change_size(after)  # (NaN: fewer than two values)
        if not (size_before > 0 and size_after > 0) or 1 / SPREAD_BREAK < size_before / size_after < SPREAD_BREAK:
            continue
        if out is values:
            out = values.clone()
        out[row, i:] = start_before[-1] + (after - start_after[0]) * (size_before / size_after)
        done[row] = True
    return out, done


def _change_size(x: torch.Tensor) -> float:
    """The median absolute change between consecutive finite values of ``x`` [k] (NaN: missing), or
    their mean where the median is 0; NaN with fewer than two."""
    changes = x[torch.isfinite(x)].diff().abs()
    if not len(changes):
        return math.nan
    median = float(changes.median())
    return median if median > 0 else float(changes.mean())


def autocorrelations(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Of the rows ``values`` [B, n]: the whitened autocorrelation ``r`` and that of the level
    (``[B, m]`` float32 each, m = n - 1, lag 0 = 1); ``[B]`` bool, the row can carry a season
    (two finite values, not constant, not a straight line); ``[m]`` the standard deviation
    of ``r`` at each lag for white noise.

    >>> t = torch.arange(120, dtype=torch.float64)
    >>> r, level, ok, null_sd = autocorrelations(torch.sin(2 * torch.pi * t / 10)[None])
    >>> ok.item(), r[0, 10].item() > 0.8, int(r[0, 2:15].argmax()) + 2, round(null_sd[10].item(), 2)
    (True, True, 10, 0.1)
    """
    found = Autocorrelations(values)
    return found.r, found.level(torch.arange(len(found.r))), found.ok, found.null_sd


class Autocorrelations:
    """``autocorrelations`` in two parts: the whitened ``r`` [B, m] of every row at once, and the
    level's (``level``) for the rows asked only. At a detection of 10,000 rows of noise few rows
    cross the threshold, and only theirs is read (``detect_seasons``): the level's inverse FFT and
    its normalisation were half of the transforms' work. Each row's transform and each element's
    arithmetic are its own (the FFT of a row does not depend on the rows beside it), so a row's
    ``level`` is the same bits whichever rows are asked with it."""

    def __init__(self, values: torch.Tensor) -> None:
        x = values.to(torch.float64)
        finite = torch.isfinite(x)
        gappy = ~finite.all(dim=1)
        gaps = bool(gappy.any())
        if gaps:  # only rows with a gap pay for the interpolation
            x = x.clone()
            x[gappy] = fill_gaps(x[gappy])
        d = x.diff(dim=1)  # [B, m]: a trend becomes its mean, a random walk its steps
        d = d - d.mean(dim=1, keepdim=True)
        magnitude = d.abs()  # [B, m] (once: the mean, the largest and the MAD read it)
        mean_abs = magnitude.mean(dim=1, keepdim=True)  # [B, 1]
        giant = (magnitude.amax(dim=1) > GIANT * mean_abs[:, 0]).nonzero().squeeze(1)  # [G] a change that outweighs
        if len(giant):  # the rest (rarely): its share of the mean moved every other change off centre
            d[giant], mean_abs[giant] = _robust_centred(d[giant])
            magnitude[giant] = d[giant].abs()
        # not constant, not a line: changes above the rounding of values this large (a line's demeaned changes
        # are about half an ulp of its largest value, 1.1e-16 of it). 1e-9 of it, as until session 39, called
        # a season of changes about 1,300 on an offset of 1e13 constant (a hostile test)
        two = finite.sum(dim=1) >= 2 if gaps else torch.full_like(gappy, x.shape[1] >= 2)  # [B] two finite values
        ok = two & (mean_abs[:, 0] > LINE_ROUNDING * x.abs().amax(dim=1))
        mad = 1.4826 * lower_median(magnitude)[:, None]  # a robust scale: spikes do not inflate it
        spread = torch.where(mad > 1e-3 * mean_abs, mad, mean_abs).clamp(min=1e-300)  # mostly flat rows: the mean
        d = (d / spread).to(torch.float32).clamp(-WINSOR, WINSOR)  # unit scale; a spike or a level shift is cut
        # centred again: a cut of changes that fall mostly on one side moved their mean (a count that is mostly 0
        # rises by a few and falls back at once: cut at 3 it was about 0.7 off 0), and a mean left under the taper leaks
        # into the low frequencies, a broad rise the whitening does not follow: peaks at any long lag (an iid
        # count of mean 0.3 showed a season in 4.5 % of 384-value rows, where 1 % is asked)
        d = d - d.mean(dim=1, keepdim=True)
        m = d.shape[1]
        size = 1 << (2 * m - 1).bit_length()  # >= 2m: the inverse is the linear autocorrelation
        taper = _tukey(m, d)  # [m] cosine ends: less leakage from a strong line into its own background
        spec = torch.fft.rfft(d * taper, n=size)  # [B, F] complex, F = size / 2 + 1
        power = spec.real.square() + spec.imag.square()  # the periodogram
        power[:, 0] = power[:, 1]  # the mean was removed: borrow a neighbour so the log stays finite
        log_p = (power + 1e-6 * power.mean(dim=1, keepdim=True) + 1e-30).log()
        block = 1 << round(math.log2(BLOCK_BINS * size / m))  # padded bins per block, a power of two dividing F - 1
        background = _background(log_p, block)
        for _ in range(2):  # lines must not lift their own background: clip them to it and smooth again
            background = _background(torch.minimum(log_p, background + LINE_LOG), block)
        white = (log_p - background).exp()
        white[:, 0] = 0.0  # no mean
        acf_w = torch.fft.irfft(torch.fft.rfft(taper, n=size).abs().square(), n=size)[:m]  # [m] the taper's own
        acf_w2 = torch.fft.irfft(torch.fft.rfft(taper.square(), n=size).abs().square(), n=size)[:m]
        self.ok, self.null_sd = ok, acf_w2.clamp(min=0).sqrt() / acf_w  # [B], [m]
        self._power, self._size, self._unfall = power, size, acf_w[0] / acf_w  # [B, F], int, [m]
        self.r = self._normalised(white, ok)  # [B, m]

    def level(self, rows: torch.Tensor) -> torch.Tensor:
        """[R, m]: the autocorrelation of the level of the rows ``rows`` [R] (the periodogram divided
        by the differencing gain, not whitened: a weekend's lower level counts)."""
        power, size, m = self._power[rows], self._size, len(self._unfall)
        if not len(power):  # (no row crossed the threshold: MKL takes no empty transform)
            return power.new_zeros(0, m)
        freq = torch.arange(power.shape[1], dtype=power.dtype, device=power.device) / size
        gain = (2 * torch.sin(torch.pi * freq)).square().clamp(min=(2 * math.sin(math.pi / m)) ** 2)  # differencing's
        return self._normalised(power / gain, self.ok[rows])  # [R, m]

    def _normalised(self, spectrum: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
        """[R, m]: the autocorrelation of the real spectrum ``spectrum`` [R, F], lag 0 = 1, the taper's
        fall with the lag undone; 0 where a row cannot carry a season (``ok`` [R] False)."""
        # (given as complex: the same bits as a real spectrum, which torch converts more slowly on one
        # thread: 12 ms against 5 at 10,000 rows of 129 bins)
        acf = torch.fft.irfft(spectrum.to(torch.complex64), n=self._size)[:, : len(self._unfall)]
        acf = acf * self._unfall / acf[:, :1].clamp(min=1e-30)  # undo the taper's fall with the lag
        return acf if bool(ok.all()) else torch.where(ok[:, None], acf, 0.0)  # (most detections: every row is ok)


def _robust_centred(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``d`` [G, m] (changes) centred on the mean of them winsorised at +-``WINSOR`` robust sds
    (1.4826 MAD; the mean absolute deviation where the MAD is 0) about their median, and that
    winsorised mean absolute change [G, 1]. A level shift by 1e6 in a series whose changes are
    about 1 is one change of 1e6 among a thousand: their mean, 1e3, left every other change
    about -1e3, the season's a ripple of 1e-3 on them, and no season was found on either side
    of the shift (a daily series by 1e6: none from value 768)."""
    centred, clipped = winsor_centred(d)  # [G, m] each
    return centred, clipped.abs().mean(dim=1, keepdim=True)


def winsor_centred(d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``d`` [G, m] centred on the mean of its winsorised values, and those values: ``d`` less its median
    per row, clipped at +-``WINSOR`` robust sds (1.4826 MAD; the mean absolute deviation where the MAD is
    0). ``_robust_centred``'s parts, apart for a caller that needs the centred changes only
    (``young_season.young_seasons``)."""
    off = d - lower_median(d)[:, None]  # [G, m]
    spread = off.abs()  # [G, m] (once: the MAD and its fallback read it)
    mad = 1.4826 * lower_median(spread)[:, None]
    mad = torch.where(mad > 0, mad, spread.mean(dim=1, keepdim=True))
    clipped = torch.maximum(torch.minimum(off, WINSOR * mad), -WINSOR * mad)  # [G, m]
    return off - clipped.mean(dim=1, keepdim=True), clipped


def lower_median(x: torch.Tensor) -> torch.Tensor:
    """``[B]``: per row of ``x`` [B, k] its lower median, the (k - 1) // 2-th smallest value: what
    ``torch.median`` returns, by ``numpy.partition`` (a selection, no sort: a quarter of the time
    at 10,000 rows of 83).

    >>> lower_median(torch.tensor([[3.0, 1.0, 2.0, 9.0], [5.0, 4.0, 6.0, 7.0]])).tolist()
    [2.0, 5.0]
    """
    k = (x.shape[1] - 1) // 2
    return torch.from_numpy(np.partition(x.numpy(), k, axis=1)[:, k].copy())


def _tukey(m: int, like: torch.Tensor) -> torch.Tensor:
    """``[m]`` a window flat in the middle with cosine ends, ``TAPER`` of its length in all."""
    t = (torch.arange(m, dtype=like.dtype, device=like.device) + 0.5) / m
    edge = (torch.minimum(t, 1 - t) / (TAPER / 2)).clamp(max=1.0)
    return 0.5 - 0.5 * torch.cos(torch.pi * edge)


def _background(log_p: torch.Tensor, block: int) -> torch.Tensor:
    """``[B, F]``: ``log_p`` averaged over blocks of ``block`` bins, smoothed by three passes
    of a box of +-``SMOOTH_BLOCKS`` blocks (a Gaussian-like kernel: one box would ring and
    leave false peaks in the autocorrelation), and interpolated back to every bin."""
    b, f = log_p.shape
    coarse = log_p[:, : f - 1].reshape(b, -1, block).mean(dim=2)  # [B, (F - 1) / block]; Nyquist left out
    half = min(SMOOTH_BLOCKS, coarse.shape[1] - 2)  # reflection needs room
    if half < 1:  # a very short row: one flat background
        return log_p.mean(dim=1, keepdim=True).expand(b, f)
    for _ in range(3):
        padded = torch.nn.functional.pad(coarse[:, None], (half + 1, half), mode="reflect")[:, 0]
        csum = padded.cumsum(dim=1)
        coarse = (csum[:, 2 * half + 1 :] - csum[:, : -2 * half - 1]) / (2 * half + 1)
    fine = torch.nn.functional.interpolate(coarse[:, None], scale_factor=block, mode="linear", align_corners=False)
    # [B, F]: Nyquist as its neighbour (a copy by ``cat``: ``pad(mode="replicate")`` cost as much as the interpolation)
    return torch.cat([fine[:, 0], fine[:, 0, -1:]], dim=1)


def _window_max(r: torch.Tensor, half: int) -> torch.Tensor:
    """``[R, m]``: the largest of ``r`` within +-``half`` lags."""
    return torch.nn.functional.max_pool1d(r[:, None], 2 * half + 1, stride=1, padding=half)[:, 0]


def _smallest_of_family(members: torch.Tensor, sig: torch.Tensor, r: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """``[R, 1]``: the strongest of the peaks ``sig`` [R, m], P*, divided by j, where P* / j is
    the smallest of the peaks ``members`` with P* a near-multiple of it and ``r >= FAMILY_RATIO * r[P*]``."""
    best = torch.where(sig, r, -math.inf).argmax(dim=1, keepdim=True)  # [R, 1]
    best_pos, best_r = pos.gather(1, best), r.gather(1, best)
    family = members & _near_multiple(best_pos, pos, 1) & (r >= FAMILY_RATIO * best_r)  # P* vouches for them
    first = pos.gather(1, torch.where(family, pos, math.inf).argmin(dim=1, keepdim=True))
    return best_pos / (best_pos / first).round().clamp(min=1)  # the longer peak places the season better


def _near_multiple(long: torch.Tensor, short: torch.Tensor, min_ratio: int, slack: float = 0.0) -> torch.Tensor:
    """``long`` within ``max(1 + MULTIPLE_TOL * long, slack * short)`` of j * ``short``, j >= ``min_ratio``."""
    j = (long / short.clamp(min=1e-9)).round()
    tol = torch.maximum(1.0 + MULTIPLE_TOL * long, slack * short)
    return (j >= min_ratio) & ((long - j * short).abs() <= tol)


def onto_comb(lengths: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
    """``lengths`` moved to the nearest multiple j * ``base`` (j >= 2) where within ``max(1 +
    MULTIPLE_TOL * length, base / 4)`` of it, else as they are: a second season is a whole number
    of the first (a week of 7 days: 168 = 7 * 24 exactly, where the broad peak of a weekend's lower
    level tops anywhere from 161 to 176).

    >>> onto_comb(torch.tensor([176.0, 161.0, 100.0, 30.0]), torch.tensor([24.0, 24.0, 24.0, 24.0])).tolist()
    [168.0, 168.0, 96.0, 30.0]
    """
    on_comb = _near_multiple(lengths, base, 2, slack=0.25)
    return torch.where(on_comb, (lengths / base.clamp(min=1)).round() * base, lengths)


def detect_seasons(
    values: torch.Tensor,
    max_seasons: int = 2,
    min_length: int = 2,
    max_length: int | None = None,
    false_rate: float = FALSE_RATE,
) -> torch.Tensor:
    """Season lengths of each row, strongest first, 0 = none.

    Parameters
    ----------
    values
        ``[B, n]`` float, one row per series: its last n values in time order, NaN = missing.
    max_seasons
        How many seasons to report per row (the width of the result).
    min_length
        The shortest season length considered (at least 2).
    max_length
        The longest; default ``n // 3`` (three cycles in the data), and never more than
        ``n / 2.5``.
    false_rate
        How often a row of white noise may show a season (over all the lags tested).

    Returns
    -------
    torch.Tensor
        ``[B, max_seasons]`` int64. White noise, a random walk, a trend, a constant, a row
        shorter than 8 or with fewer than two finite values give zeros.

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> t = torch.arange(240, dtype=torch.float64)
    >>> monthly = torch.sin(2 * torch.pi * t / 12) + 0.01 * t + 0.5 * torch.randn(240, generator=g, dtype=torch.float64)
    >>> noise = torch.randn(240, generator=g, dtype=torch.float64)
    >>> detect_seasons(torch.stack([monthly, noise])).tolist()
    [[12, 0], [0, 0]]
    """
    if values.dim() != 2:
        raise ValueError(f"values must be [B, n], got shape {tuple(values.shape)}")
    if max_seasons < 1:
        raise ValueError(f"max_seasons must be >= 1, got {max_seasons}")
    if min_length < 2:
        raise ValueError(f"min_length must be >= 2, got {min_length}")
    b, n = values.shape
    if max_length is not None and max_length < min_length:
        raise ValueError(f"max_length must be >= min_length = {min_length}, got {max_length}")
    out = torch.zeros(b, max_seasons, dtype=torch.int64, device=values.device)
    top = min(n // 3 if max_length is None else max_length, math.floor(n / MIN_CYCLES), n - 3)
    if b == 0 or n < MIN_LENGTH or top < min_length:
        return out
    found = Autocorrelations(values)
    r, null_sd = found.r, found.null_sd  # [B, m], [m]
    m = min(r.shape[1], 2 * top + 2)  # the lags the rules look at
    threshold = torch.clamp(z_peak(top - min_length + 1, false_rate) * null_sd[:m], min=R_FLOOR)  # [m]
    live = (found.ok & (r[:, min_length : top + 1] > threshold[min_length : top + 1]).any(dim=1)).nonzero().squeeze(1)
    filled = fill_gaps(values[live])  # [L, n]
    sparse = sparse_changes(filled)  # [L]
    if bool(sparse.any()):  # their null is not the normal one: an exact test by shuffles (few rows)
        held = _above_shuffles(filled[sparse], r[live[sparse]], threshold, min_length, top, false_rate)
        live = torch.cat([live[~sparse], live[sparse][held]]).sort().values
    level = found.level(live)[:, :m]  # [L, m]: the level's only where a row crosses the threshold (of noise, few)
    out[live] = _seasons(r[live, :m], level, null_sd[:m], threshold, min_length, top, max_seasons)
    return out


def sparse_changes(values: torch.Tensor) -> torch.Tensor:
    """``[R]`` bool: more than half of the changes of the row of ``values`` [R, n] (finite) are equal
    (their median absolute deviation is 0): a count that is mostly 0, a counter that mostly stands still."""
    d = values.diff(dim=1)  # [R, n - 1]
    return lower_median((d - lower_median(d)[:, None]).abs()) == 0


def _above_shuffles(
    values: torch.Tensor, r: torch.Tensor, threshold: torch.Tensor, min_length: int, top: int, false_rate: float
) -> torch.Tensor:
    """``[R]`` bool: the rows of ``values`` [R, n] (finite; ``r`` [R, m] their whitened autocorrelation, as
    ``detect_seasons`` read it) whose highest autocorrelation over its threshold,
    at the lags tested, passes an exact test against ``SHUFFLES`` shuffles of the row's values (the null of
    an iid count) and as many of its changes (a counter's): p = (1 + shuffles at or above it) / (SHUFFLES + 1)
    at most ``false_rate`` under both. Where most changes are equal a few events make the whole
    autocorrelation, and its tail is far from the normal one that ``z_peak`` assumes: an iid count of
    mean 0.05 showed a season in 23 % of 384-value rows, a counter of such counts in 24 %. The
    shuffles are the same for every row of a length (``SHUFFLE_SEED``): a row's answer does not depend
    on the rows beside it. A row falls out at the first shuffle at or above it (noise within a few),
    so only a season pays for all of them; the shuffles are taken in rounds of 1, 2, 4, ... at once
    (``SHUFFLE_ROUNDS``), one transform a round for every row still passing: a row with a season pays for
    7 transforms, not 99 (the same counts: a row's autocorrelation is its own whatever the batch)."""
    n = values.shape[1]
    tested = threshold[min_length : top + 1]
    allowed = math.floor(false_rate * (SHUFFLES + 1)) - 1  # shuffles at or above a row that still pass it
    seen = (r[:, min_length : top + 1] / tested).amax(dim=1)  # [R] (a row's r is its own whatever the batch)
    changes = values.diff(dim=1)  # [R, n - 1]
    generator = torch.Generator().manual_seed(SHUFFLE_SEED)
    orders = [
        (torch.randperm(n, generator=generator), torch.randperm(n - 1, generator=generator)) for _ in range(SHUFFLES)
    ]
    by_value = torch.stack([v for v, _ in orders])  # [S, n]: shuffle s of the values
    by_change = torch.stack([c for _, c in orders])  # [S, n - 1]: of the changes
    above = torch.zeros(2, len(values), dtype=torch.int64)  # [2, R]: of the values' shuffles, of the changes'
    left = torch.arange(len(values))  # the rows still passing
    for first, last in SHUFFLE_ROUNDS:
        k = last - first
        for part in left.split(max(1, SHUFFLE_BATCH // (2 * k))):  # [P] rows: a transform of at most SHUFFLE_BATCH rows
            shuffled = values[part][:, by_value[first:last]]  # [P, k, n]
            start = values[part, None, :1]  # [P, 1, 1]
            walk = start + changes[part][:, by_change[first:last]].cumsum(dim=2)  # [P, k, n - 1] the changes shuffled
            walk = torch.cat([start.expand(-1, k, -1), walk], dim=2)  # [P, k, n]
            shuffles = torch.cat([shuffled, walk]).view(2 * len(part) * k, n)  # [2 P k, n]
            highest = Autocorrelations(shuffles).r[:, min_length : top + 1] / tested  # [2 P k, lags]
            both = highest.amax(dim=1).view(2, len(part), k)  # [2, P, k]: each shuffle's largest r / threshold
            above[:, part] += (both >= seen[part, None]).sum(dim=2)
        left = left[(above[:, left] <= allowed).all(dim=0)]
        if not len(left):
            break
    return (above <= allowed).all(dim=0)


def _seasons(
    r: torch.Tensor,
    level: torch.Tensor,
    null_sd: torch.Tensor,
    threshold: torch.Tensor,
    min_length: int,
    top: int,
    max_seasons: int,
) -> torch.Tensor:
    """The rules of the module docstring on rows ``r``, ``level`` [R, m] that cross the
    threshold somewhere: ``[R, max_seasons]`` int64."""
    m = top + 2  # peaks need lags up to top + 1; only the comb test reads ``level`` further, up to 2 top + 1
    r, threshold, reach_level = r[:, :m].contiguous(), threshold[:m], level.shape[1] - 1
    b = r.shape[0]
    lags = torch.arange(m, dtype=r.dtype, device=r.device)
    left, right = r.roll(1, dims=1), r.roll(-1, dims=1)
    curve = left - 2 * r + right
    shift = torch.where(curve < 0, 0.5 * (left - right) / curve.clamp(max=-1e-12), 0.0).clamp(-0.5, 0.5)
    pos = lags + shift  # [R, m] the refined position of a peak at each lag (a parabola through three)
    quarter = (lags * torch.tensor([[0.25], [0.5], [0.75]], dtype=r.dtype, device=r.device)).round().long()
    trough = r[:, quarter.view(-1)].view(b, 3, m).amin(dim=1)  # [R, m] lowest of r at k/4, k/2, 3k/4
    hill = r - trough > PROMINENCE * threshold  # a season's peak rises from a trough, not from a crest
    reach = (lags / 4 + 1).log2().floor().long()  # [m] a peak at k tops +-(2^reach - 1) ~ k / 4 lags
    tops = [r]  # tops[i]: the largest of r within +-(2^i - 1) lags, each from the last by two shifts
    for i in range(int(reach.max())):
        low = torch.nn.functional.pad(tops[-1], (1 << i, 0), value=-math.inf)[:, :m]
        high = torch.nn.functional.pad(tops[-1], (0, 1 << i), value=-math.inf)[:, 1 << i :]
        tops.append(torch.maximum(tops[-1], torch.maximum(low, high)))
    on_top = r >= torch.stack(tops).gather(0, reach.expand(b, m)[None]).squeeze(0)  # not a wiggle on a hill
    in_range = (lags >= min_length) & (lags <= top)
    peak = in_range & (r > left) & (r >= right) & on_top & hill  # [R, m]
    sig = peak & (r > threshold)  # significant peaks
    first = _smallest_of_family(peak, sig, r, pos)  # [R, 1]
    j = torch.where(peak & _near_multiple(pos, first, 1), (pos / first).round(), 0.0)  # [R, m] its comb of peaks
    first = (j * pos).sum(dim=1, keepdim=True) / j.square().sum(dim=1, keepdim=True).clamp(min=1.0)  # least squares
    chosen = [torch.where(sig.any(dim=1, keepdim=True), first, 0.0)]  # [R, 1] each
    near3 = _window_max(level, 1)  # [R, m] the comb test reads the level's autocorrelation: weekly levels show there
    for _ in range(1, max_seasons):
        allowed = peak.clone()
        for c in chosen:
            has = c > 0
            allowed &= ~(has & _near_multiple(c, pos, 1))  # a divisor of a season (or itself) adds nothing
            allowed &= ~(has & ((pos - c).abs() <= c / 4))  # another top of the same broad hill
            below = near3.gather(1, (pos - c).abs().round().long().clamp(0, reach_level))  # [R, m] the comb of c
            beyond = (pos + c).round().long().clamp(0, reach_level)
            margin = torch.clamp(Z_EXCESS * math.sqrt(2) * null_sd[beyond], min=EXCESS_FLOOR)
            above = torch.maximum(below, near3.gather(1, beyond)) + margin
            allowed &= ~has | (near3.gather(1, pos.round().long().clamp(0, reach_level)) > above)  # stands above it
        got = (allowed & sig).any(dim=1, keepdim=True) & (chosen[-1] > 0)
        lengths = _smallest_of_family(allowed, allowed & sig, r, pos)
        lengths = onto_comb(lengths, chosen[0].round())  # 336 = 7 * 48 exactly
        chosen.append(torch.where(got, lengths, 0.0))
    return torch.cat(chosen, dim=1).nan_to_num(0.0).clamp(0, top).round().to(torch.int64)
