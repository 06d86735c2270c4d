"""`scale check --source results --act`: which service a results file's decision is handed to.

A load test against a running local service (`--host http://127.0.0.1:PORT`, target_name "loopback") names
the service that local-horizontal-scale should scale; the embedded service of a run without --host was
stopped with the run, so nothing is passed for it. No server here: the hand-over's parameters are the point.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[2] / "examples" / "closed-loop" / "opskit.yaml"


def _results(folder: Path, *, target: str, target_name: str, p95: float) -> Path:
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps({
        "schema_version": 1,
        "run": {"scenario": "load", "model": "open", "target": target, "target_name": target_name,
                "started_at": "2026-11-22T22:00:00Z", "ended_at": "2026-11-22T22:00:10Z", "duration_s": 10.0,
                "valid": True},
        "aggregate": {"requests": 100, "failures": 0, "rps": 10.0, "error_rate": 0.0,
                      "latency_ms": {"p50": p95 / 2, "p95": p95, "p99": p95, "max": p95, "mean": p95 / 2}},
    }))
    return folder


def _check(invoke, run: Path, state: Path):
    result = invoke("scale", "check", "--spec", str(SPEC), "--source", "results", "--from", str(run), "--act",
                    "--state-dir", str(state), "--output", "json")
    return result, json.loads(result.stdout)


def test_a_loopback_run_hands_its_service_to_the_local_playbook(invoke, tmp_path):
    # port 9 (discard) on loopback: nothing listens, so the plan's dry run says no, after the hand-over
    run = _results(tmp_path / "run", target="http://127.0.0.1:9", target_name="loopback", p95=900)
    result, doc = _check(invoke, run, tmp_path / "state")
    assert result.exit_code == 1, result.stdout + result.stderr
    [handoff] = doc["handoffs"]
    assert handoff["params"]["workers"] == 2 and handoff["params"]["target"] == "http://127.0.0.1:9"
    assert handoff["status"] == "refused"  # the dry run could not read /health: nothing was applied
    assert not (tmp_path / "state" / "runs").exists()


@pytest.mark.parametrize(("target", "target_name"), [("http://127.0.0.1:9", "embedded"),
                                                     ("https://staging.example.com", "staging")])
def test_no_service_is_passed_for_an_embedded_or_remote_run(invoke, tmp_path, target, target_name):
    run = _results(tmp_path / "run", target=target, target_name=target_name, p95=900)
    result, doc = _check(invoke, run, tmp_path / "state")
    [handoff] = doc["handoffs"]
    assert "target" not in handoff["params"] and "workers" not in handoff["params"]
    assert handoff["status"] == "failed" and result.exit_code == 2  # the local playbook needs workers
