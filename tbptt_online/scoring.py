"""Per-series running statistics in one float64 tensor: the normaliser and the scores.

A series' statistics are one ``[F, d]`` block (rows named by ``STAT_FIELDS``), so a
tick reads and writes them with one gather and one scatter. The scores are
prequential (forecast, then learn) sums in the series' own units: the error of the
forecast that was served for a value, of the naive last-value forecast, and whether
the value fell inside the served interval. A tick folds its values in with two compiled
passes over the rows (``observed_stats``, then ``add_scores``), where a dozen small
tensor operations each cost more than the arithmetic.
"""

from __future__ import annotations

import math

import torch

from tbptt_online.compiled import compiled, readable

STAT_FIELDS = (
    "norm_count",  # the normaliser (Welford): observed values
    "norm_mean",
    "norm_m2",
    "last_value",  # the last observed value (NaN before any): the naive forecast
    "score_n",  # forecasts scored (observed features only)
    "abs_err",
    "sq_err",
    "naive_n",  # naive forecasts scored (a previous value existed)
    "naive_abs_err",
    "naive_sq_err",
    "covered",  # values inside [lower, upper]
    "resid_sq",  # squared normalised residual: the interval of a point (mse) forecast
    "interval_n",  # forecasts scored that had an interval (coverage's denominator)
    "restarts",  # times the series' model state was restarted: its forecast blown up (forecaster._restart_broken),
    # or its first value a glitch (forecaster._restart_glitched)
    "restarted_steps",  # the steps it had seen before them, and the missing ones before its first value
    # (forecaster._start_at_first_value): its step as reported is steps + this
    # of the values scored with a naive forecast too (a value before them), each earlier one discounted by RECENT at
    # each: their weight, the served forecast's absolute errors and the naive's (the series' recent MAEs, about
    # its last 100 values: a meter replaced once had its whole-life MAE 2.89 times the naive's for good, a new user's)
    "recent_n",
    "recent_abs_err",
    "recent_naive_abs_err",
    # the flat runs (``flat_runs.hold_flat_runs``): the observed values in a row equal to the one before (the run now; a
    # missing value leaves it as it is); the longest run taken as it came so far; of the values taken as they came
    # that had an observed value before them, those equal to it and all of them; the values held back as missing
    "flat_run",
    "flat_longest",
    "flat_repeats",
    "flat_pairs",
    "flat_held",
)
STAT = {name: i for i, name in enumerate(STAT_FIELDS)}
SCORES = STAT["score_n"]  # the score rows are STAT_FIELDS[SCORES:SCORES + 9] (the restarts' follow)
RECENT_SCORES = STAT["recent_n"]  # then the recent ones: STAT_FIELDS[RECENT_SCORES:RECENT_SCORES + 3]
RECENT = 0.99  # their discount: each value weighs this much less than the next
# Each error added to the recent ones is at most this many times the wider side of the interval served with the
# forecast (or of the naive's recent MAE, where that is wider): one value of 1e9 among values about 10 read
# recent_mae 66,371 500 values later and 436 1,000 later, the recent ratio 0.50 for 1,500 values whatever the model
# did (a hostile test, session 57). A change of the series widens the intervals, and so the bound, within values.
RECENT_CAP = 10.0
FLAT = STAT["flat_run"]  # the flat runs' rows (``flat_runs.hold_flat_runs``): STAT_FIELDS[FLAT:FLAT + 5]


def blank_stats(n: int, d: int) -> torch.Tensor:
    """``[n, F, d]``: zeros, and NaN for ``last_value`` (no value seen yet)."""
    stats = torch.zeros(n, len(STAT_FIELDS), d, dtype=torch.float64)
    stats[:, STAT["last_value"]] = math.nan
    return stats


def observed_stats(stats: torch.Tensor, value: torch.Tensor, observed: torch.Tensor, normalize: bool) -> torch.Tensor:
    """The series' ``stats`` [B, F, d] after ``value`` [B, d] (float64; ``observed`` where not
    missing): the normaliser (Welford, ``normalizer.welford_update``'s formulas; unchanged
    when not ``normalize``) and the last value; the score rows as they were (``add_scores``
    folds the step into them once its residual is known). A new tensor."""
    out = torch.empty_like(stats)
    _observe(*readable(stats, value, observed), normalize, out.numpy())
    return out


def add_scores(
    new: torch.Tensor,
    stats: torch.Tensor,
    value: torch.Tensor,
    observed: torch.Tensor,
    mean: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    norm_residual: torch.Tensor,
) -> None:
    """Fold one step into the score rows of ``new`` [B, F, d] (in place; ``observed_stats``
    of ``stats``, the block before the step): a value observed where a forecast was served
    (``mean`` [B, d] not NaN) is scored against it, its interval [``lower``, ``upper``] and
    the naive last value of ``stats``; ``norm_residual`` [B, d] the normalised residual.
    Inputs float64."""
    arrays = readable(stats, value, observed, mean, lower, upper, norm_residual.to(torch.float64))
    _scores(*arrays, new.numpy())


LAST = STAT["last_value"]


@compiled
def _observe(stats, value, observed, normalize, out) -> None:
    n_rows, n_fields, d = stats.shape
    for b in range(n_rows):
        for k in range(d):
            for i in range(n_fields):
                out[b, i, k] = stats[b, i, k]
            seen = observed[b, k]
            if normalize:  # Welford, folded where observed (a missing value leaves it alone)
                count, mean, m2 = stats[b, 0, k], stats[b, 1, k], stats[b, 2, k]
                new_count = count + (1.0 if seen else 0.0)
                safe = value[b, k] if seen else mean
                delta = safe - mean
                new_mean = mean + (delta / max(new_count, 1.0) if seen else 0.0)
                out[b, 0, k], out[b, 1, k] = new_count, new_mean
                out[b, 2, k] = m2 + (delta * (safe - new_mean) if seen else 0.0)
            out[b, LAST, k] = value[b, k] if seen else stats[b, LAST, k]


# A score's sum at most this: the squared error of a forecast that blew up (1e155 or more) was inf, and a state
# holding it was refused on import, the model's own export too (a hostile test's imported level of 1e30, session
# 50). No stream's sums come near it; a series that gets there is one its statistics no longer describe anyway.
MAX_SUM = 1e300


@compiled
def _scores(stats, value, observed, mean, lower, upper, residual, out) -> None:
    n_rows, _, d = stats.shape
    for b in range(n_rows):
        for k in range(d):
            scored = observed[b, k] and not math.isnan(mean[b, k])  # the first value of a hybrid series had none
            last = stats[b, LAST, k]
            has_last = scored and not math.isnan(last)
            err = abs(value[b, k] - mean[b, k]) if scored else 0.0
            naive_err = abs(value[b, k] - last) if has_last else 0.0
            # a forecast served without an interval (a series' scale not known yet) is not judged by one
            bounded = scored and not (math.isnan(lower[b, k]) or math.isnan(upper[b, k]))
            inside = bounded and value[b, k] >= lower[b, k] and value[b, k] <= upper[b, k]
            increments = (  # in the order of STAT_FIELDS[SCORES:SCORES + 9]
                1.0 if scored else 0.0,
                err,
                err * err,
                1.0 if has_last else 0.0,
                naive_err,
                naive_err * naive_err,
                1.0 if inside else 0.0,
                residual[b, k] * residual[b, k] if scored else 0.0,
                1.0 if bounded else 0.0,
            )
            for i in range(9):  # (a sum past MAX_SUM stays there: finite, see MAX_SUM)
                out[b, SCORES + i, k] = min(stats[b, SCORES + i, k] + increments[i], MAX_SUM)
            if has_last:  # the recent errors: of the values scored against both forecasts, at most RECENT_CAP wide
                cap = _recent_cap(stats, b, k, mean[b, k], lower[b, k], upper[b, k], bounded)
                for i, add in enumerate((1.0, min(err, cap), min(naive_err, cap))):
                    out[b, RECENT_SCORES + i, k] = min(RECENT * stats[b, RECENT_SCORES + i, k] + add, MAX_SUM)


@compiled
def _recent_cap(stats, b, k, mean, lower, upper, bounded) -> float:
    """The most an error adds to the recent ones (``RECENT_CAP``): of the wider side of the interval served and the
    naive's recent MAE, where either is known and above 0; else no bound (inf)."""
    width = max(upper - mean, mean - lower) if bounded else 0.0
    n = stats[b, RECENT_SCORES, k]
    if n > 0.0:
        width = max(width, stats[b, RECENT_SCORES + 2, k] / n)
    return RECENT_CAP * width if width > 0.0 else math.inf


@compiled
def _row_blown_up(path, stats, observed, b, factor, with_spread, far) -> bool:
    for k in range(path.shape[2]):
        last = stats[b, LAST, k]
        judged = with_spread and not math.isnan(last)  # the distance test (with the values' sd)
        unit = 0.0
        if judged:
            sd = math.sqrt(max(stats[b, 2, k], 0.0) / max(stats[b, 0, k], 1.0))  # norm_m2, norm_count
            unit = factor * (1.0 + abs(last) + sd)
        for h in range(path.shape[1]):  # horizon h + 1
            m = path[b, h, k]
            if not math.isfinite(m):
                if observed[b, k]:
                    return True
                continue
            if judged and h < far and abs(m - last) > unit * (h + 1) * (h + 1):
                return True
    return False


@compiled
def any_blown_up(path, stats, observed, factor, with_spread, far) -> bool:
    """Whether a row's served ``path`` [B, H, d] (the mean at horizons 1..H) is not finite where
    ``observed`` [B, d], or (``with_spread``: the normaliser's rows are kept) at a horizon h up to
    ``far`` further than ``factor`` times h^2 (1 + |last value| + the values' sd) from the last
    value, by ``stats`` [B, F, d] with this value (``forecaster._restart_broken``; ``blown_up``
    says which). Past ``far`` only a mean that is not finite counts: a damped multiplicative
    trend's path grows faster than any power of h there (a doubling series' is 2^49 its last
    value by h = 200, and a review's doubling series restarted every 16 values at a calibrated
    horizon of 200). One call a tick: in a tick's few rows every numpy and torch call after the
    tick's work cost 3 to 7 us (4 of them made the check 28 us a tick)."""
    for b in range(path.shape[0]):  # noqa: SIM110 (numba compiles a loop, not a generator)
        if _row_blown_up(path, stats, observed, b, factor, with_spread, far):
            return True
    return False


@compiled
def blown_up(path, stats, observed, factor, with_spread, far, out) -> None:
    """``out`` [B] bool: which rows ``any_blown_up`` finds."""
    for b in range(path.shape[0]):
        out[b] = _row_blown_up(path, stats, observed, b, factor, with_spread, far)
