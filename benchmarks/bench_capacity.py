"""Capacity benchmark: USL fit accuracy against the R `usl` package's published fit (the anchor), fit time
against an unbounded scipy curve_fit measured in the same run, and the time to build the capacity report.

    .venv/bin/python benchmarks/bench_capacity.py
"""

from __future__ import annotations

import datetime as dt
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit

from opskit.capacity.build import make_report
from opskit.capacity.usl import fit
from opskit.spec import load_spec

N = [1, 18, 36, 72, 108, 144, 216]
X = [64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2]
PUBLISHED = {"sigma": 0.0277285, "kappa": 0.0001044, "lambda": 89.9952}  # R usl, specsdm91 (facts.md)


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def main() -> None:
    f = fit(N, X)
    ours = {"sigma": f.sigma, "kappa": f.kappa, "lambda": f.lambda_}
    machine = platform.processor() or platform.machine()
    print(f"# capacity benchmark, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {machine}, "
          f"python {platform.python_version()}")
    print("USL fit of specsdm91 vs the R usl published fit (ratio ours/published):")
    for k, v in ours.items():
        print(f"  {k:7s} ours {v:.7g}  published {PUBLISHED[k]:.7g}  ratio {v / PUBLISHED[k]:.5f}")

    n, x = np.array(N, float), np.array(X, float)

    def model(nn, s, k, lam):
        return lam * nn / (1 + s * (nn - 1) + k * nn * (nn - 1))

    anchor = timed(lambda: curve_fit(model, n, x, p0=[0.01, 1e-4, max(x / n)], maxfev=10000), 30)
    ours_t = timed(lambda: fit(N, X), 30)
    print(f"fit time: ours {ours_t * 1e3:.2f} ms (bounded, tight tolerances, CIs), unbounded curve_fit "
          f"{anchor * 1e3:.2f} ms: ratio {ours_t / anchor:.1f}x")

    spec = load_spec(Path(__file__).resolve().parents[1] / "opskit.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        t_report = timed(lambda: make_report(spec, spec_file=None, results=[], months=24, slo_name=None,
                                             p95_ms=None, instances=1, now=dt.datetime.now(dt.UTC),
                                             runs_dir=Path(tmp)), 3)
    print(f"capacity report (example spec, no run, 4 charts): {t_report:.2f} s median of 3")


if __name__ == "__main__":
    main()
