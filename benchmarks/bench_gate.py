"""How well the gate's baseline comparison tells a real regression from noise, and how fast it judges.

Anchor: the naive baseline check people write by hand (and what a k6/Taurus/Gatling threshold set to
"baseline + 10%" amounts to): fail when this run's p95 is more than the tolerance above the baseline's.
Also shown: the same bootstrap resampling single seconds (i.i.d.) instead of blocks.

Synthetic per-second p95 timelines with autocorrelated (AR(1)) lognormal noise, as real runs have:
a slow second tends to be followed by another. For each case, PAIRS pairs of runs are compared:
- no change, and +5% (within the tolerance): every fail is a false alarm,
- a +25% p95 regression: the detection rate (a pass is a missed regression).

    .venv/bin/python benchmarks/bench_gate.py [--pairs 200] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time

import numpy as np

from opskit.gate.baseline import compare_metric
from opskit.runmodel import Scope, Second, parse_results

TOLERANCE = 0.10


def timeline(rng: np.random.Generator, seconds: int, p95: float, sigma: float, phi: float) -> Scope:
    noise = np.empty(seconds)
    e = rng.normal(0, sigma)
    for t in range(seconds):
        e = phi * e + math.sqrt(1 - phi * phi) * rng.normal(0, sigma)
        noise[t] = e
    rows = tuple(Second(t=t, requests=50, errors=0, rps=50.0, p95=float(p95 * math.exp(noise[t])),
                        p99=float(1.5 * p95 * math.exp(noise[t]))) for t in range(seconds))
    mean95 = float(np.mean([r.p95 for r in rows]))
    return Scope("GET /api/assets", 50 * seconds, 0, 50.0, {"p95": mean95}, rows)


def naive(cur: Scope, old: Scope) -> str:
    return "fail" if (cur.latency_ms["p95"] or 0) > (old.latency_ms["p95"] or 0) * (1 + TOLERANCE) else "pass"


def run_case(pairs: int, seconds: int, change: float, sigma: float, phi: float, seed: int) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, int]] = {k: {"pass": 0, "fail": 0, "inconclusive": 0}
                                      for k in ("naive", "iid bootstrap", "block bootstrap (opskit)")}
    for _ in range(pairs):
        old = timeline(rng, seconds, 100.0, sigma, phi)
        cur = timeline(rng, seconds, 100.0 * (1 + change), sigma, phi)
        out["naive"][naive(cur, old)] += 1
        out["iid bootstrap"][compare_metric("e", "p95", cur, old, TOLERANCE, block=1).status] += 1
        out["block bootstrap (opskit)"][compare_metric("e", "p95", cur, old, TOLERANCE).status] += 1
    return out


def judge_speed(seconds: int = 3600, endpoints: int = 10) -> tuple[float, float]:
    """Seconds to parse a one-hour, ten-endpoint results file (the anchor: json.loads alone) and
    to judge it with a baseline comparison of every endpoint."""
    from opskit.gate.baseline import compare_runs

    rows = [{"t": t, "requests": 50, "errors": 0, "rps": 50.0, "p50": 5.0, "p95": 9.0 + (t % 7), "p99": 20.0}
            for t in range(seconds)]
    block = {"requests": 50 * seconds, "failures": 0, "rps": 50.0, "error_rate": 0.0,
             "latency_ms": {"p50": 5.0, "p90": 8.0, "p95": 12.0, "p99": 20.0, "p999": 30.0, "max": 40.0,
                            "mean": 6.0}}
    doc = {"schema_version": 1,
           "run": {"scenario": "soak", "model": "open", "valid": True, "duration_s": float(seconds)},
           "aggregate": block, "timeline": rows,
           "endpoints": {f"GET /e{i}": {**block, "timeline": rows} for i in range(endpoints)}}
    text = json.dumps(doc)
    t0 = time.perf_counter()
    json.loads(text)
    anchor = time.perf_counter() - t0
    t0 = time.perf_counter()
    run = parse_results(text)
    compare_runs(run, run, 10)
    return anchor, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    args = parser.parse_args()
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"{args.pairs} pairs of {args.seconds}s runs, per-second p95 noise sigma 0.15, AR(1) phi 0.7, "
          f"tolerance {TOLERANCE:.0%}")
    t0 = time.perf_counter()
    cases = (("no change", 0.0), ("+5% (within the 10% tolerance: a fail is a false alarm)", 0.05),
             ("+25% regression", 0.25))
    for label, change in cases:
        result = run_case(args.pairs, args.seconds, change, sigma=0.15, phi=0.7, seed=7)
        print(f"\n{label}:")
        for method, counts in result.items():
            share = {k: v / args.pairs for k, v in counts.items()}
            print(f"  {method:26s} fail {share['fail']:6.1%}  pass {share['pass']:6.1%}  "
                  f"inconclusive {share['inconclusive']:6.1%}")
    print(f"\n(comparison time {time.perf_counter() - t0:.1f}s)")
    anchor, judged = judge_speed()
    print(f"\njudging a 1 h, 10-endpoint results file with a baseline: {judged * 1000:.0f} ms "
          f"= {judged / anchor:.1f}x json.loads of the same file ({anchor * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
