"""One real run: `opskit loadtest run smoke --gate` against the embedded asset service (Locust in a
subprocess, real HTTP on loopback), judged in the same step; then the same results judged again."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

SPEC = Path(__file__).resolve().parents[2] / "opskit.yaml"


@pytest.mark.slow
def test_loadtest_run_smoke_with_gate(invoke, tmp_path) -> None:
    out = tmp_path / "run"
    junit = tmp_path / "gate.xml"
    impossible = "GET /api/assets: p50 < 0.001ms"
    result = invoke("loadtest", "run", "smoke", "--spec", str(SPEC), "--out", str(out), "--gate",
                    "--criteria", "requests > 0", "--criteria", impossible, "--junit", str(junit),
                    env={"GITHUB_STEP_SUMMARY": ""})
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["valid"], results["run"]["invalid_reason"]
    assert result.exit_code == 1, result.output  # the impossible criterion failed, the run itself was fine
    assert "gate FAIL (smoke): 1 passed, 1 failed" in result.stdout

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["requests > 0"].find("failure") is None
    failure = cases[impossible].find("failure")
    assert failure is not None and "limit < 0.001ms" in failure.get("message", "")

    # the same run judged again, against itself as the baseline: nothing regressed
    again = invoke("gate", str(out), "--spec", str(SPEC), "--criteria", "requests > 0", "--criteria",
                   "error_rate < 50%", "--baseline", str(out), "-o", "json", env={"GITHUB_STEP_SUMMARY": ""})
    doc = json.loads(again.stdout)
    assert again.exit_code == 0, doc["reasons"]
    assert not [c for c in doc["comparisons"] if c["status"] == "fail"]
    whole = {c["metric"]: c for c in doc["comparisons"] if c["endpoint"] == "(all)"}
    assert "rps" not in whole and whole["p95"]["change_pct"] == 0  # smoke is an open-model run


@pytest.mark.slow
def test_abort_on_fail_stops_a_real_run_and_the_gate_says_no(invoke, tmp_path) -> None:
    import yaml

    spec = yaml.safe_load(SPEC.read_text())
    spec["gate"] = {"abort_on_fail": ["p50 < 0.001ms"], "abort_grace": "2s", "criteria": ["requests > 0"]}
    spec_file = tmp_path / "opskit.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    out = tmp_path / "run"
    result = invoke("loadtest", "run", "smoke", "--spec", str(spec_file), "--out", str(out), "--gate",
                    "-o", "json", env={"GITHUB_STEP_SUMMARY": ""})
    results = json.loads((out / "results.json").read_text())
    assert "abort_on_fail criterion failed" in (results["run"]["aborted"] or ""), results["run"]
    assert results["run"]["duration_s"] < 8  # stopped before the scenario's 8 s
    doc = json.loads(result.stdout)
    assert result.exit_code == 1 and doc["status"] == "fail"
    assert doc["aborted"].startswith("abort_on_fail criterion failed after ")
    # the aborting criterion is judged at the end too, and fails there as well
    assert {c["criterion"]: c["status"] for c in doc["criteria"]}["p50 < 0.001ms"] == "fail"
