"""The bootstrap behind a baseline comparison: how much a run's whole-run figure (the p95, error rate or
throughput the gate table shows) would move if the same service were measured again.

A run keeps its whole-run figures and a per-second timeline (requests, errors, rps, p50/p95/p99), not
every request. A resample redraws whole seconds (circular blocks of them, since neighbouring seconds
share a GC pause or a compaction) and recomputes the whole-run figure from the drawn seconds:

- error rate: errors / requests; throughput: requests / seconds (ratios of sums);
- p95/p99: the percentile of the mixture of the drawn seconds' latency distributions, each second's
  distribution interpolated (log-linearly) through its own p50, p95 and p99. The whole-run percentile
  of a run is exactly such a mixture quantile; the interpolation is the only approximation.

`replicates` returns that estimate on the whole timeline and on every resample; the caller scales the
resamples onto the exact figure the run reports, so the interval is about the figure people read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from opskit.runmodel import Second

MIN_SECONDS = 5
COARSE_GRID = 128  # log-spaced latency points to find where the whole run's percentile lies
GRID = 64  # and the band every estimate is then read from (fewer on long runs: GRID_BUDGET)
GRID_BUDGET = 20_000  # seconds x grid points per resample
_CHUNK = 100  # resamples summed at once: bounds memory (resamples x blocks x columns)
MAX_BLOCKS = 400  # per resample: ample for the interval, and what bounds the cost of an hour-long run
_QUANTILE = {"p95": 0.95, "p99": 0.99}


class CannotResample(ValueError):
    """The timeline cannot give an interval; the message says why, for the comparison's detail."""


def block_length(series: np.ndarray) -> int:
    """Seconds per block. Carlstein's rule for an AR(1) series, b = (2r / (1 - r^2))^(2/3) n^(1/3), from
    the series' own lag-1 autocorrelation r: independent seconds (r within noise of 0) give single-second
    blocks, so a 20 s run is 20 draws, not 7 blocks of 3; strongly correlated seconds give longer blocks,
    capped so a resample still holds at least four of them. Long runs use blocks of at least n / MAX_BLOCKS
    seconds (longer blocks than needed cost nothing but a little precision, and an hour is 3,600 draws)."""
    n = len(series)
    least = -(-n // MAX_BLOCKS)
    if n < 4:
        return 1
    x = series - series.mean()
    denom = float((x * x).sum())
    if denom <= 0:
        return least
    r = float((x[1:] * x[:-1]).sum()) / denom
    if r <= 2 / math.sqrt(n):  # not distinguishable from uncorrelated noise at ~95%
        return least
    r = min(r, 0.95)
    b = (2 * r / (1 - r * r)) ** (2 / 3) * n ** (1 / 3)
    return int(max(least, min(max(1, round(b)), max(1, n // 4))))


def replicates(metric: str, timeline: Sequence[Second], rng: np.random.Generator, resamples: int,
               block: int | None = None) -> tuple[float, np.ndarray]:
    """(estimate on the whole timeline, estimate on each resample) of the whole-run `metric`."""
    if metric in _QUANTILE:
        return _quantile_replicates(metric, timeline, rng, resamples, block)
    rows: list[tuple[float, float]]
    if metric == "error_rate":
        rows = [(s.errors, s.requests) for s in timeline if s.requests > 0]
        series_of = "error ratio"
    else:  # rps: every second counts, idle ones too
        rows = [(s.rps if s.rps is not None else s.requests, 1.0) for s in timeline]
        series_of = "rps"
    _enough(len(rows), series_of)
    cols = np.asarray(rows, dtype=float)
    series = cols[:, 0] / cols[:, 1]
    b = block or block_length(series)
    sums = _resampled_sums(cols, b, rng, resamples)
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = sums[:, 0] / sums[:, 1]
    return float(cols[:, 0].sum() / cols[:, 1].sum()), boot


def _enough(n: int, what: str) -> None:
    if n < MIN_SECONDS:
        raise CannotResample(f"too few seconds with traffic to tell noise from change ({n} with a {what}; "
                             f"need {MIN_SECONDS})")


def _quantile_replicates(metric: str, timeline: Sequence[Second], rng: np.random.Generator, resamples: int,
                         block: int | None) -> tuple[float, np.ndarray]:
    rows = [s for s in timeline if s.requests > 0 and getattr(s, metric) is not None]
    _enough(len(rows), metric)
    counts = np.asarray([s.requests for s in rows], dtype=float)
    knots = _knots(rows, metric)
    q = _QUANTILE[metric]
    own = knots[:, 2 if metric == "p95" else 3]
    b = block or block_length(own)
    # the mixture's q-quantile lies between the smallest and largest of the seconds' own q-quantiles
    grid = _grid(own.min(), own.max(), COARSE_GRID)
    cdf = _cdf(knots, np.log(grid))
    mixture = (cdf * counts[:, None]).sum(axis=0) / counts.sum()
    rough = _mixture_quantile(np.append(mixture, 1.0)[None, :], grid, q)[0]
    # a resample's quantile stays where the whole run's CDF is within a few standard errors of q: read
    # every estimate from a grid over that band only (a resample costs seconds x grid points)
    at = min(int(np.searchsorted(grid, rough)), len(grid) - 1)
    spread = float(np.sqrt(np.average((cdf[:, at] - mixture[at]) ** 2, weights=counts)))
    band = max(0.02, 8 * spread / math.sqrt(max(1.0, len(rows) / b)))
    inside = np.flatnonzero((mixture >= q - band) & (mixture <= q + band))
    lo = grid[max(int(inside[0]) - 1, 0)] if len(inside) else grid[0]
    hi = grid[min(int(inside[-1]) + 1, len(grid) - 1)] if len(inside) else grid[-1]
    # the band narrows as seconds add up (a standard error shrinks as 1/sqrt(n)), so fewer points keep the
    # same resolution: the cost of a resample stays about constant on hour-long runs
    grid = _grid(lo, hi, max(8, min(GRID, GRID_BUDGET // len(rows))))
    cols = np.column_stack([_cdf(knots, np.log(grid)) * counts[:, None], counts])
    whole = _mixture_quantile(cols.sum(axis=0)[None, :], grid, q)[0]
    boot = _mixture_quantile(_resampled_sums(cols, b, rng, resamples), grid, q)
    return float(whole), boot


def _grid(lo: float, hi: float, points: int) -> np.ndarray:
    lo = max(lo, 1e-9)
    return np.geomspace(lo, max(hi, lo * (1 + 1e-9)), points)


def _knots(rows: list[Second], metric: str) -> np.ndarray:
    """Per second (lowest, p50, p95, p99, highest) in ms: a missing percentile takes its neighbour's value,
    and the ends extend the slope (in log latency) of the nearest segment to 0 and to 1."""
    out = np.empty((len(rows), 5))
    for i, s in enumerate(rows):
        p95 = s.p95 if s.p95 is not None else getattr(s, metric)
        p50 = s.p50 if s.p50 is not None else p95
        p99 = s.p99 if s.p99 is not None else p95
        vals = np.maximum.accumulate(np.maximum([p50, p95, p99], 1e-6))
        out[i, 1:4] = vals
    logs = np.log(out[:, 1:4])
    out[:, 0] = np.exp(logs[:, 0] - (logs[:, 1] - logs[:, 0]) * (0.50 / 0.45))
    out[:, 4] = np.exp(logs[:, 2] + (logs[:, 2] - logs[:, 1]) * (0.01 / 0.04))
    return out


_LEVELS = np.array([0.0, 0.50, 0.95, 0.99, 1.0])


def _cdf(knots: np.ndarray, log_grid: np.ndarray) -> np.ndarray:
    """Each second's CDF at the grid: piecewise linear in log latency through its knots."""
    lk = np.log(knots)
    out = np.zeros((len(knots), len(log_grid)))
    for k in range(4):
        lo = lk[:, k, None]
        width = np.maximum(lk[:, k + 1, None] - lo, 1e-12)  # a zero-width segment is a step
        out += (_LEVELS[k + 1] - _LEVELS[k]) * np.clip((log_grid - lo) / width, 0.0, 1.0)
    return out


def _mixture_quantile(sums: np.ndarray, grid: np.ndarray, q: float) -> np.ndarray:
    """Per row of sums (request-weighted CDF at each grid point, then the request count): the latency
    where the mixture's CDF reaches q, interpolated in log latency between grid points."""
    with np.errstate(invalid="ignore", divide="ignore"):
        p = sums[:, :-1] / sums[:, -1:]
    reached = p >= q - 1e-12
    idx = np.where(reached.any(axis=1), reached.argmax(axis=1), len(grid) - 1)
    rows = np.arange(len(p))
    prev = np.maximum(idx - 1, 0)
    p_lo, p_hi = p[rows, prev], p[rows, idx]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where((idx > 0) & (p_hi > p_lo), (q - p_lo) / (p_hi - p_lo), 1.0)
    lg = np.log(grid)
    out = np.exp(lg[prev] + np.clip(frac, 0.0, 1.0) * (lg[idx] - lg[prev]))
    out[~np.isfinite(p).all(axis=1)] = np.nan
    return out


def _resampled_sums(cols: np.ndarray, block: int, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Column sums of `resamples` circular-block resamples of the rows: each block's sums are computed once,
    a resample adds the sums of the blocks it drew."""
    n = len(cols)
    block = max(1, min(block, n))
    ext = np.concatenate([cols, cols[:block - 1]]) if block > 1 else cols
    csum = np.concatenate([np.zeros((1, cols.shape[1])), np.cumsum(ext, axis=0)])
    block_sums = csum[block:block + n] - csum[:n]
    blocks = -(-n // block)
    starts = rng.integers(0, n, size=(resamples, blocks))
    out = np.empty((resamples, cols.shape[1]))
    for lo in range(0, resamples, _CHUNK):
        out[lo:lo + _CHUNK] = block_sums[starts[lo:lo + _CHUNK]].sum(axis=1)
    return out
