"""The Universal Scalability Law (Gunther), fitted by bounded non-linear least squares.

    X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))

sigma (contention) and kappa (coherency) are bounded to [0, 1] and lambda (throughput of one) to > 0, as
facts.md prescribes. An unbounded fit can put kappa below 0 (superlinear data, e.g. R usl's raytracer):
the bound clamps it, and the fit says so. Pure: numbers in, numbers out (numpy/scipy imported lazily).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MIN_POINTS = 6  # fewer and the three coefficients are barely determined: warn
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    low: float | None
    high: float | None
    std_error: float | None = None


@dataclass(frozen=True)
class USLFit:
    sigma: float
    kappa: float
    lambda_: float
    intervals: dict[str, Interval]
    peak_concurrency: float | None  # None when kappa == 0: throughput only approaches its ceiling
    peak_throughput: float
    r_squared: float
    points: int
    residuals: list[float]  # measured - fitted, per point (R's convention)
    kappa_clamped: bool
    warnings: list[str] = field(default_factory=list)
    unusable: str | None = None  # why the coefficients cannot be relied on (then no peak is claimed)

    def throughput(self, n: float) -> float:
        return usl(n, self.sigma, self.kappa, self.lambda_)

    def as_dict(self) -> dict[str, object]:
        return {"sigma": self.sigma, "kappa": self.kappa, "lambda": self.lambda_,
                "intervals": {k: {"low": v.low, "high": v.high, "std_error": v.std_error}
                              for k, v in self.intervals.items()},
                "confidence": CONFIDENCE, "peak_concurrency": self.peak_concurrency,
                "peak_throughput": self.peak_throughput, "r_squared": self.r_squared, "points": self.points,
                "residuals": self.residuals, "kappa_clamped": self.kappa_clamped, "warnings": self.warnings,
                "usable": self.unusable is None, "unusable_reason": self.unusable}


def usl(n: float, sigma: float, kappa: float, lam: float) -> float:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def peak(sigma: float, kappa: float, lam: float, n_max: float) -> tuple[float | None, float]:
    """N* = sqrt((1 - sigma) / kappa). Without coherency cost there is no peak: report the ceiling
    lambda / sigma (or, with neither cost, the throughput at the largest N measured)."""
    if kappa > 0:
        n_star = math.sqrt((1 - sigma) / kappa)
        return n_star, usl(n_star, sigma, kappa, lam)
    if sigma > 0:
        return None, lam / sigma
    return None, usl(n_max, sigma, kappa, lam)


def fit(concurrency: list[float], throughput: list[float]) -> USLFit:
    import numpy as np
    from scipy.optimize import least_squares
    from scipy.stats import t as student_t

    n = np.asarray(concurrency, dtype=float)
    x = np.asarray(throughput, dtype=float)
    if len(n) < 3:
        raise ValueError(f"a USL fit needs at least 3 load levels, got {len(n)}")
    if np.any(n <= 0) or np.any(x < 0) or not np.all(np.isfinite(n)) or not np.all(np.isfinite(x)):
        raise ValueError("concurrency must be > 0 and throughput >= 0 at every point")
    if len(set(n.tolist())) < 3:
        raise ValueError("a USL fit needs at least 3 distinct concurrency levels")
    if float(x.max()) <= 0:
        raise ValueError("every load level has zero throughput")

    def residuals(p: np.ndarray) -> np.ndarray:
        sigma, kappa, lam = p
        return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1)) - x

    start = np.array([0.01, 1e-4, float(np.max(x / n))])
    tight = {"xtol": 1e-15, "ftol": 1e-15, "gtol": 1e-15, "max_nfev": 10_000}
    res = least_squares(residuals, start, bounds=([0, 0, 1e-12], [1, 1, np.inf]), x_scale="jac", **tight)
    if not res.success:
        raise ValueError(f"the least-squares fit did not converge ({res.message})")
    sigma, kappa, lam = (float(v) for v in res.x)

    warnings: list[str] = []
    clamped = False
    if kappa <= 1e-12:
        # was kappa held at its bound? an unbounded fit tells: then the data are superlinear or too short
        free = least_squares(residuals, start, x_scale="jac", **tight)
        if free.x[1] < 0:
            clamped = True
            kappa = 0.0
            warnings.append(f"the unconstrained fit gives kappa = {free.x[1]:.3g} < 0 (throughput grows faster "
                            "than linear, e.g. caches warming): kappa clamped to 0, no peak predicted")
    if len(n) < MIN_POINTS:
        warnings.append(f"only {len(n)} load levels: the USL needs at least {MIN_POINTS} for trustworthy "
                        "coefficients (run a step test with more steps)")

    r = residuals(res.x)
    ss_res = float(np.sum(r**2))
    ss_tot = float(np.sum((x - x.mean()) ** 2))
    r2 = 1 - ss_res / ss_tot if ss_tot > 0 else 0.0

    intervals = _intervals(res.jac, ss_res, len(n), res.x, student_t)
    if clamped:
        intervals["kappa"] = Interval(None, None)  # a coefficient held on its bound has no meaningful interval
    if float(n.max()) < 2:
        warnings.append(f"at most {float(n.max()):.2g} requests were in flight: the service was far from "
                        "saturation, so the fit cannot show contention; load harder (more steps, higher rates) "
                        "or use a closed-model step run (--users)")
    n_peak, x_peak = peak(sigma, kappa, lam, float(n.max()))
    if n_peak is not None and n_peak > 4 * float(n.max()):
        warnings.append(f"the predicted peak (N = {n_peak:,.0f}) lies far beyond the largest load measured "
                        f"(N = {float(n.max()):g}): treat it as an extrapolation")
    if n_peak is None and x_peak > 2 * float(x.max()):
        warnings.append(f"no peak within reach: the throughput ceiling ({x_peak:,.0f} req/s) is over twice the "
                        f"highest measured ({float(x.max()):,.0f} req/s); load further to find the knee")
    return USLFit(sigma, kappa, lam, intervals, n_peak, x_peak, r2, len(n), [-float(v) for v in r], clamped,
                  warnings, _unusable(intervals, lam, clamped))


def _unusable(intervals: dict[str, Interval], lam: float, kappa_clamped: bool) -> str | None:
    """A fit whose coefficients are not determined by the data: no interval at all (too few points, a
    singular problem), or a throughput-of-one interval wider than the value itself (lambda +-1.4e6 for a
    lambda of 400, as a spike run gives). R² can still be 0.99 for such a curve: it says nothing."""
    missing = [k for k in ("sigma", "lambda") + (() if kappa_clamped else ("kappa",))
               if intervals[k].low is None]
    if missing:
        return (f"no confidence interval for {', '.join(missing)} (too few distinct load levels for three "
                "coefficients)")
    lam_iv = intervals["lambda"]
    assert lam_iv.low is not None and lam_iv.high is not None
    half = (lam_iv.high - lam_iv.low) / 2
    if half > lam:
        return (f"lambda is {lam:,.4g} +- {half:,.3g} at {CONFIDENCE:.0%}: the data do not determine the "
                "throughput of one, so neither the peak nor the ceiling means anything")
    return None


def _intervals(jac: object, ss_res: float, n_points: int, params: object, student_t: object) -> dict[str, Interval]:
    """Asymptotic confidence intervals from the Jacobian (what R's nls/confint.default report)."""
    import numpy as np

    names = ("sigma", "kappa", "lambda")
    dof = n_points - 3
    if dof <= 0:
        return {k: Interval(None, None) for k in names}
    j = np.asarray(jac)
    try:
        cov = np.linalg.inv(j.T @ j) * (ss_res / dof)
    except np.linalg.LinAlgError:
        return {k: Interval(None, None) for k in names}
    q = float(student_t.ppf(0.5 + CONFIDENCE / 2, dof))  # type: ignore[attr-defined]
    out = {}
    for i, k in enumerate(names):
        var = cov[i, i]
        if not np.isfinite(var) or var < 0:
            out[k] = Interval(None, None)
            continue
        se = math.sqrt(var)
        value = float(np.asarray(params)[i])
        low = value - q * se
        if k != "lambda":
            low = max(0.0, low)  # the model's bounds hold for the interval too
        out[k] = Interval(low, value + q * se, se)
    return out
