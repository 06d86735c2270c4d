"""`opskit gate` in-process: every exit code, and the files it leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOISY = {"GET /api/assets": {"rps": 40, "p95": 50.0}}
NOISY_SLOWER = {"GET /api/assets": {"rps": 40, "p95": 55.0}}


def gate(invoke, spec_file: Path, *args: str, env: dict[str, str] | None = None):
    return invoke("gate", "--spec", str(spec_file), *args, env=env or {"GITHUB_STEP_SUMMARY": ""})


# --- 0: pass ---------------------------------------------------------------------------------------------

def test_pass_prints_the_table_and_exits_0(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()))
    assert result.exit_code == 0, result.output
    for words in ("criterion", "measured", "limit", "verdict", "GET /api/assets: p95 < 200ms",
                  "error_rate < 1%", "dropped == 0", "gate PASS (smoke): 7 passed, 0 failed"):
        assert words in result.stdout
    assert result.stderr == ""


def test_run_folder_is_accepted(invoke, spec_file, write_results) -> None:
    path = write_results()
    assert gate(invoke, spec_file, str(path.parent)).exit_code == 0


def test_slo_endpoints_outside_the_scenario_are_skipped_visibly(invoke, spec_file, write_results) -> None:
    path = write_results(endpoints={"GET /api/assets": {"rps": 30, "p95": 40.0}})
    result = gate(invoke, spec_file, str(path))
    assert result.exit_code == 0
    assert "SKIPPED" in result.stdout and "not exercised by scenario smoke" in result.stdout


def test_inconclusive_baseline_passes_visibly_and_fails_with_strict(invoke, spec_file, write_results) -> None:
    base = write_results("base.json", seconds=12, noise=0.5, seed=3, endpoints=NOISY)
    cur = write_results("cur.json", seconds=12, noise=0.5, seed=4, endpoints=NOISY_SLOWER)
    result = gate(invoke, spec_file, str(cur), "--baseline", str(base), "--criteria", "rps > 1")
    assert result.exit_code == 0, result.output
    assert "INCONCLUSIVE" in result.stdout and "inconclusive" in result.stdout.splitlines()[-1]
    strict = gate(invoke, spec_file, str(cur), "--baseline", str(base), "--criteria", "rps > 1", "--strict")
    assert strict.exit_code == 3
    assert "inconclusive (--strict)" in strict.stdout


# --- 1: the answer is no ----------------------------------------------------------------------------------

def test_failed_criterion_exits_1_with_measured_and_limit(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()), "--criteria", "p95 < 1ms", "--criteria", "rps > 1")
    assert result.exit_code == 1
    assert "gate FAIL (smoke): 1 passed, 1 failed" in result.stdout
    assert "- p95 < 1ms: measured" in result.stdout and "limit < 1ms" in result.stdout


def test_criteria_option_replaces_the_spec(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()), "--criteria", "rps > 1", "-o", "json")
    assert [c["criterion"] for c in json.loads(result.stdout)["criteria"]] == ["rps > 1"]


def test_spec_scenario_criteria_fail(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results(dropped=lambda t: 1 if t == 3 else 0)))
    assert result.exit_code == 1 and "dropped == 0" in result.stdout


def test_regression_against_the_baseline_exits_1(invoke, spec_file, write_results) -> None:
    base = write_results("base.json", seconds=60, seed=1, endpoints={"GET /api/assets": {"rps": 30, "p95": 50.0}})
    cur = write_results("cur.json", seconds=60, seed=2, endpoints={"GET /api/assets": {"rps": 30, "p95": 80.0}})
    result = gate(invoke, spec_file, str(cur), "--baseline", str(base), "--tolerance", "20%")
    assert result.exit_code == 1, result.output
    assert "GET /api/assets: p95 vs baseline" in result.stdout and "allowed <= +20.0%" in result.stdout
    # the same pair with a generous tolerance passes
    assert gate(invoke, spec_file, str(cur), "--baseline", str(base), "--tolerance", "100%").exit_code == 0


def test_aborted_run_exits_1(invoke, spec_file, write_results, make_results) -> None:
    data = make_results(aborted="abort_on_fail criterion failed after 12s: p95 < 10ms (measured 40ms)")
    result = gate(invoke, spec_file, str(write_results(data=data)))
    assert result.exit_code == 1
    assert "the run was aborted early: abort_on_fail criterion failed" in result.stdout


def test_a_failure_outranks_data_that_cannot_be_judged(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()), "--criteria", "p95 < 1ms",
                  "--criteria", "GET /api/nothing: p95 < 1s")
    assert result.exit_code == 1
    assert "ERROR" in result.stdout and "never hit" in result.stdout


# --- 2: usage and configuration ------------------------------------------------------------------------------

def test_malformed_criterion_exits_2_with_the_column(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()), "--criteria", "p95 < 200 parsecs")
    assert result.exit_code == 2
    assert "--criteria 'p95 < 200 parsecs': column 11: unknown unit 'parsecs'" in result.stderr
    assert "  p95 < 200 parsecs\n            ^" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_tolerance_exits_2(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()), "--baseline", str(write_results("b.json")),
                  "--tolerance", "lots")
    assert result.exit_code == 2 and "--tolerance" in result.stderr


@pytest.mark.parametrize(("other", "words"), [({"scenario": "soak"}, "same scenario"),
                                              ({"model": "closed"}, "closed workload")])
def test_baseline_of_another_experiment_exits_2(invoke, spec_file, write_results, make_results, other,
                                                words) -> None:
    base = make_results()
    base["run"].update(other)
    result = gate(invoke, spec_file, str(write_results()), "--baseline", str(write_results("b.json", data=base)))
    assert result.exit_code == 2 and words in result.stderr


def test_nothing_to_judge_exits_2(invoke, tmp_path, write_results) -> None:
    spec = tmp_path / "bare.yaml"
    spec.write_text("service: {name: asset-service}\n")
    result = gate(invoke, spec, str(write_results()))
    assert result.exit_code == 2 and "nothing to judge" in result.stderr


def test_malformed_criterion_in_the_spec_exits_2_at_its_line(invoke, tmp_path, write_results) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text("service: {name: asset-service}\ngate:\n  scenarios:\n    smoke:\n      - 'p95 < 200ms'\n"
                    "      - 'p95 <> 200ms'\n")
    result = gate(invoke, spec, str(write_results()))
    assert result.exit_code == 2
    assert "bad.yaml:6: gate.scenarios.smoke[1]: criterion 'p95 <> 200ms': column 6" in result.stderr


# --- 3: the results cannot answer -------------------------------------------------------------------------------

def _corrupt(path: Path) -> None:
    path.write_text(path.read_text()[:-40])


@pytest.mark.parametrize(
    ("prepare", "words"),
    [
        (lambda p: p.unlink(), "no such results file"),
        (lambda p: p.write_text(""), "the file is empty"),
        (_corrupt, "truncated"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00"), "cannot read the results file"),
        (lambda p: p.write_text('{"schema_version": 1, "run": []}'), "run: expected an object"),
    ],
)
def test_unreadable_results_exit_3_and_still_leave_junit(invoke, spec_file, write_results, tmp_path, prepare,
                                                          words) -> None:
    path = write_results()
    prepare(path)
    junit = tmp_path / "junit.xml"
    result = gate(invoke, spec_file, str(path), "--junit", str(junit))
    assert result.exit_code == 3, result.output
    assert "opskit: error: the gate cannot answer:" in result.stderr and words in result.stderr
    assert 'errors="1"' in junit.read_text() and words in junit.read_text()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"valid": False, "invalid_reason": "generator CPU above 90%"}, "marked invalid: generator CPU above 90%"),
        ({"interrupted": True}, "interrupted"),
    ],
)
def test_invalid_runs_exit_3(invoke, spec_file, write_results, make_results, change, words) -> None:
    data = make_results()
    data["run"].update(change)
    result = gate(invoke, spec_file, str(write_results(data=data)), "-o", "json")
    assert result.exit_code == 3 and words in result.stderr
    assert json.loads(result.stdout)["status"] == "error"


def test_zero_requests_exit_3(invoke, spec_file, write_results) -> None:
    path = write_results(endpoints={"GET /api/assets": {"rps": 0, "p95": 10.0}})
    result = gate(invoke, spec_file, str(path))
    assert result.exit_code == 3 and "zero requests" in result.stderr


def test_criterion_on_an_endpoint_never_hit_exits_3(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()), "--criteria", "GET /api/nothing: p95 < 1s",
                  "--criteria", "rps > 1")
    assert result.exit_code == 3
    assert "GET /api/nothing was never hit" in result.stdout


def test_every_criterion_skipped_exits_3(invoke, tmp_path, write_results) -> None:
    spec = tmp_path / "other.yaml"
    spec.write_text('service: {name: s}\nslos:\n  - {name: x, endpoint: "GET /other", latency: {p95: 1s}}\n')
    result = gate(invoke, spec, str(write_results()))
    assert result.exit_code == 3 and "nothing could be judged" in result.stdout


def test_unreadable_baseline_exits_3(invoke, spec_file, write_results, tmp_path) -> None:
    bad = tmp_path / "base.json"
    bad.write_text("{")
    junit = tmp_path / "junit.xml"
    result = gate(invoke, spec_file, str(write_results()), "--baseline", str(bad), "--junit", str(junit))
    assert result.exit_code == 3 and "baseline:" in result.stderr
    # the criteria were judged before the baseline was read: the report keeps them beside the error
    text = junit.read_text()
    assert 'name="GET /api/assets: p95 &lt; 200ms"' in text and 'errors="1"' in text


# --- outputs and side effects ----------------------------------------------------------------------------------

def test_json_output(invoke, spec_file, write_results) -> None:
    base = write_results("base.json", seconds=30)
    result = gate(invoke, spec_file, str(write_results(seconds=30, seed=2)), "--baseline", str(base), "-o", "json")
    doc = json.loads(result.stdout)
    assert doc["status"] == "pass" and doc["exit_code"] == 0 and doc["scenario"] == "smoke"
    first = doc["criteria"][0]
    assert set(first) >= {"criterion", "source", "status", "measured", "measured_text", "limit"}
    assert first["source"] == "slo:list-assets"
    # measured is in the unit the row names (docs/guide/json.md): ms for a latency, ratio for error_rate
    units = {c["criterion"].split(": ")[-1].split()[0]: c["unit"] for c in doc["criteria"]}
    assert units["p95"] == "ms" and units["error_rate"] == "ratio" and units["dropped"] == "count"
    # an open-model run: the generator set the rate, so rps is not compared, and the notes say so
    assert {c["metric"] for c in doc["comparisons"]} == {"p95", "p99", "error_rate"}
    assert any(n.startswith("rps is not compared") for n in doc["notes"])
    assert all(c["ci_low_pct"] <= c["change_pct"] <= c["ci_high_pct"] for c in doc["comparisons"])
    # one scale: the allowed change and the changes are percent, like tolerance_pct (10 -> 10.0, not 0.1)
    assert doc["tolerance_pct"] == 10.0
    p95 = next(c for c in doc["comparisons"] if c["metric"] == "p95")
    assert p95["allowed_pct"] == 10.0 and p95["unit"] == "ms" and p95["change_basis"] == "relative"
    err = next(c for c in doc["comparisons"] if c["metric"] == "error_rate")
    assert err["unit"] == "ratio" and err["change_basis"] == "absolute"
    assert not {"change", "allowed", "ci_low", "ci_high"} & set(p95)


def test_markdown_goes_to_file_and_step_summary(invoke, spec_file, write_results, tmp_path) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("earlier step\n")
    md = tmp_path / "out" / "gate.md"
    result = gate(invoke, spec_file, str(write_results()), "--markdown", str(md),
                  env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.exit_code == 0
    assert md.read_text().startswith("### ✅ opskit gate: PASS (smoke)")
    assert summary.read_text() == "earlier step\n" + md.read_text() + "\n"


def test_save_baseline_only_when_the_gate_passes(invoke, spec_file, write_results, tmp_path) -> None:
    results = write_results()
    saved = tmp_path / "baselines" / "smoke.json"
    result = gate(invoke, spec_file, str(results), "--save-baseline", str(saved))
    assert result.exit_code == 0 and saved.read_bytes() == results.read_bytes()
    assert "baseline saved" in result.stderr
    saved.unlink()
    failed = gate(invoke, spec_file, str(results), "--criteria", "p95 < 1ms", "--save-baseline", str(saved))
    assert failed.exit_code == 1 and not saved.exists()
    assert "baseline not saved" in failed.stderr
    # and a saved baseline is a baseline
    assert gate(invoke, spec_file, str(results), "--save-baseline", str(saved)).exit_code == 0
    again = gate(invoke, spec_file, str(write_results("next.json", seed=5)), "--baseline", str(saved))
    assert again.exit_code == 0 and "vs baseline" in again.stdout
