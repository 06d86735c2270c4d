"""Synthetic results.json files (docs/results-schema.md) with controllable per-second timelines,
and a small spec, so the gate is tested on data whose right answer is known."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

SPEC = """\
service: {name: asset-service}
slos:
  - {name: list-assets, endpoint: "GET /api/assets", latency: {p95: 200ms}, availability: 99.9%}
  - {name: upload, endpoint: "POST /api/assets/upload", latency: {p95: 5s}}
  - {name: delete, endpoint: "DELETE /api/assets/delete", latency: {p95: 100ms}, availability: 99.9%}
gate:
  tolerance: 10%
  scenarios:
    smoke: ["error_rate < 1%", "dropped == 0"]
"""

Profile = Callable[[int], float]


def build_results(
    *,
    scenario: str = "smoke",
    model: str = "open",
    seconds: int = 30,
    endpoints: dict[str, dict[str, Any]] | None = None,
    noise: float = 0.1,
    seed: int = 1,
    valid: bool = True,
    dropped: Callable[[int], int] = lambda t: 0,
    **run: Any,
) -> dict[str, Any]:
    """A run of `seconds` seconds. Each endpoint: rps, p95 (ms, a number or a function of t),
    error_rate (fraction or function of t). Per-second values get multiplicative noise."""
    rnd = random.Random(seed)
    endpoints = endpoints if endpoints is not None else {
        "GET /api/assets": {"rps": 30, "p95": 40.0, "error_rate": 0.0},
        "POST /api/assets/upload": {"rps": 2, "p95": 900.0, "error_rate": 0.0},
        "DELETE /api/assets/delete": {"rps": 5, "p95": 20.0, "error_rate": 0.0},
    }

    def at(value: Any, t: int) -> float:
        return float(value(t) if callable(value) else value)

    eps: dict[str, Any] = {}
    total_rows = [{"t": t, "requests": 0, "errors": 0, "rps": 0.0, "w95": 0.0, "w50": 0.0, "w99": 0.0}
                  for t in range(seconds)]
    for name, cfg in endpoints.items():
        rows = []
        for t in range(seconds):
            requests = int(at(cfg["rps"], t))
            p95 = at(cfg["p95"], t) * rnd.lognormvariate(0, noise)
            errors = round(requests * at(cfg.get("error_rate", 0.0), t))
            row = {"t": t, "requests": requests, "errors": errors, "rps": float(requests),
                   "p50": round(p95 / 2, 3) if requests else None, "p95": round(p95, 3) if requests else None,
                   "p99": round(p95 * 1.5, 3) if requests else None}
            rows.append(row)
            tot = total_rows[t]
            tot["requests"] += requests
            tot["errors"] += errors
            tot["rps"] += float(requests)
            if requests:
                for k in ("50", "95", "99"):
                    tot["w" + k] += row["p" + k] * requests
        eps[name] = _scope(rows, seconds)
        eps[name]["timeline"] = rows
    timeline = []
    for tot in total_rows:
        n = tot["requests"]
        timeline.append({"t": tot["t"], "requests": n, "errors": tot["errors"], "rps": tot["rps"],
                         "p50": round(tot["w50"] / n, 3) if n else None,
                         "p95": round(tot["w95"] / n, 3) if n else None,
                         "p99": round(tot["w99"] / n, 3) if n else None,
                         "in_flight": 1, "dropped": dropped(tot["t"]), "step": 0})
    aggregate = _scope(timeline, seconds)
    total_dropped = sum(r["dropped"] for r in timeline)
    run_block = {
        "scenario": scenario, "model": model, "target": "http://127.0.0.1:40123", "target_name": "embedded",
        "started_at": "2026-11-22T22:00:00Z", "ended_at": "2026-11-22T22:00:30Z", "duration_s": float(seconds),
        "spec_hash": "sha256:abc", "git_sha": "abc123", "versions": {"opskit": "0.1.0"},
        "valid": valid, "invalid_reason": None if valid else "generator CPU above 90%",
        "interrupted": False, "aborted": None, "processes": 1,
        "intended_rate": float(sum(int(at(c["rps"], 0)) for c in endpoints.values())) if model == "open" else None,
        "users": None if model == "open" else 10,
    }
    run_block.update(run)
    return {
        "schema_version": 1, "run": run_block, "aggregate": aggregate, "endpoints": eps, "timeline": timeline,
        "steps": [{"index": 0, "name": "step-1", "rate": run_block["intended_rate"], "users": None,
                   "concurrency": 1.0, "start_s": 0, "duration_s": float(seconds), **aggregate}],
        "generator": {"cpu_max": 40.0, "cpu_mean": 30.0, "intended_rate": run_block["intended_rate"],
                      "achieved_rate": aggregate["rps"], "dropped": total_dropped, "processes": 1},
        "histograms": {"aggregate": "", "endpoints": {}},
    }


def _scope(rows: list[dict[str, Any]], seconds: int) -> dict[str, Any]:
    """Aggregates as a load test would report them (percentiles approximated from the timeline)."""
    requests = sum(r["requests"] for r in rows)
    errors = sum(r["errors"] for r in rows)
    hit = [r for r in rows if r["requests"]]

    def weighted(key: str) -> float | None:
        return round(sum(r[key] * r["requests"] for r in hit) / requests, 3) if requests else None

    p95s = [r["p95"] for r in hit]
    return {
        "requests": requests, "failures": errors, "failures_by_kind": {"http_500": errors} if errors else {},
        "rps": round(requests / seconds, 3), "error_rate": errors / requests if requests else 0.0,
        "latency_ms": {"p50": weighted("p50"), "p90": weighted("p95") and weighted("p95") * 0.9,
                       "p95": weighted("p95"), "p99": weighted("p99"),
                       "p999": weighted("p99") and weighted("p99") * 1.2,
                       "max": max(p95s) * 2 if p95s else None, "mean": weighted("p50")},
    }


@pytest.fixture
def make_results() -> Callable[..., dict[str, Any]]:
    return build_results


@pytest.fixture
def write_results(tmp_path: Path) -> Callable[..., Path]:
    """Write a synthetic run to tmp_path/NAME and return its path."""

    def write(name: str = "results.json", data: dict[str, Any] | None = None, **kwargs: Any) -> Path:
        path = tmp_path / name
        path.write_text(json.dumps(data if data is not None else build_results(**kwargs)), encoding="utf-8")
        return path

    return write


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "opskit.yaml"
    path.write_text(SPEC, encoding="utf-8")
    return path
