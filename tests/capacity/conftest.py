"""Synthetic step runs in the results.json shape (docs/results-schema.md), generated from known USL
coefficients, so the fit and the report can be checked against the truth."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

SPECSDM91_N = [1, 18, 36, 72, 108, 144, 216]
SPECSDM91_X = [64.9, 995.9, 1652.4, 1853.2, 1828.9, 1775.0, 1702.2]


def usl_x(n: float, sigma: float, kappa: float, lam: float) -> float:
    return lam * n / (1 + sigma * (n - 1) + kappa * n * (n - 1))


def results_doc(levels: list[tuple[float, float, float]], error_rate: float = 0.0) -> dict:
    """levels: (concurrency, rps, p95_ms) per step."""
    steps = []
    for i, (n, x, p95) in enumerate(levels):
        steps.append({
            "index": i, "name": f"step-{i + 1}", "rate": None, "users": n, "concurrency": n,
            "start_s": i * 10, "duration_s": 10.0, "requests": int(x * 10), "failures": 0, "rps": x,
            "error_rate": error_rate,
            "latency_ms": {"p50": p95 / 2, "p90": p95 * 0.9, "p95": p95, "p99": p95 * 1.5, "p999": p95 * 2,
                           "max": p95 * 3, "mean": p95 / 2},
        })
    return {
        "schema_version": 1,
        "run": {"scenario": "step", "model": "closed", "target": "http://127.0.0.1:1", "target_name": "embedded",
                "started_at": "2026-11-22T22:00:00Z", "ended_at": "2026-11-22T22:01:10Z", "duration_s": 70.0,
                "git_sha": "abc1234", "valid": True, "invalid_reason": None},
        "aggregate": {"requests": sum(s["requests"] for s in steps), "failures": 0, "rps": 1.0, "error_rate": 0.0,
                      "latency_ms": {"p95": max(p for *_, p in levels)}},
        "endpoints": {}, "timeline": [], "steps": steps,
    }


def synthetic_levels(sigma: float, kappa: float, lam: float, ns: list[float],
                     base_ms: float = 20.0) -> list[tuple[float, float, float]]:
    """Little's law gives the mean latency N / X; p95 taken as twice the mean."""
    out = []
    for n in ns:
        x = usl_x(n, sigma, kappa, lam)
        out.append((n, x, max(base_ms, 2000.0 * n / x)))
    return out


@pytest.fixture
def write_run(tmp_path: Path) -> Callable[..., Path]:
    def write(levels: list[tuple[float, float, float]], name: str = "run1", root: Path | None = None) -> Path:
        folder = (root or tmp_path / "runs") / name
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "results.json"
        path.write_text(json.dumps(results_doc(levels)), encoding="utf-8")
        return path

    return write


@pytest.fixture
def spec_copy(tmp_path: Path) -> Path:
    """The example spec, copied so a test may edit it and run in its folder."""
    src = Path(__file__).resolve().parents[2] / "opskit.yaml"
    dst = tmp_path / "opskit.yaml"
    dst.write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    return dst
