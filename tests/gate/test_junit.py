"""The gate's JUnit XML against the common (Jenkins/Ant) JUnit schema in tests/gate/junit.xsd.

Needs the dev dependency `xmlschema` (pure Python; lxml is not required)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

xmlschema = pytest.importorskip("xmlschema", reason="dev dependency xmlschema (pip install xmlschema) validates JUnit")

XSD = Path(__file__).with_name("junit.xsd")


@pytest.fixture(scope="module")
def schema():
    return xmlschema.XMLSchema(str(XSD))


def run_gate(invoke, spec_file: Path, tmp_path: Path, *args: str) -> tuple[int, ET.Element, str]:
    junit = tmp_path / "reports" / "gate.xml"
    result = invoke("gate", "--spec", str(spec_file), *args, "--junit", str(junit), env={"GITHUB_STEP_SUMMARY": ""})
    text = junit.read_text(encoding="utf-8")
    return result.exit_code, ET.fromstring(text), text


def cases(root: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in root.iter("testcase")}


def test_passing_gate_is_valid_junit_with_one_case_per_criterion(invoke, spec_file, write_results, tmp_path,
                                                                 schema) -> None:
    code, root, text = run_gate(invoke, spec_file, tmp_path, str(write_results()))
    assert code == 0
    schema.validate(text)
    suite = root.find("testsuite")
    assert suite is not None
    # attributes the stricter Ant schema requires too
    for attr in ("name", "tests", "failures", "errors", "time", "timestamp", "hostname", "id", "package"):
        assert suite.get(attr) is not None, attr
    assert suite.find("properties") is not None and suite.find("system-out") is not None
    assert suite.find("system-err") is not None
    assert suite.get("timestamp") == "2026-11-22T22:00:00"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("7", "0", "0")
    assert len(cases(root)) == 7
    assert all(len(c) == 0 for c in root.iter("testcase"))  # a passing case has no child


def test_failures_carry_measured_and_limit(invoke, spec_file, write_results, tmp_path, schema) -> None:
    base = write_results("base.json", seconds=60, seed=1, endpoints={"GET /api/assets": {"rps": 30, "p95": 50.0}})
    cur = write_results("cur.json", seconds=60, seed=2, endpoints={"GET /api/assets": {"rps": 30, "p95": 90.0}})
    code, root, text = run_gate(invoke, spec_file, tmp_path, str(cur), "--baseline", str(base),
                                "--criteria", "GET /api/assets: p95 < 60ms", "--criteria", "rps >= 1")
    assert code == 1
    schema.validate(text)
    by_name = cases(root)
    failure = by_name["GET /api/assets: p95 < 60ms"].find("failure")
    assert failure is not None and failure.get("type") == "criterion"
    assert failure.get("message", "").startswith("measured 9") and failure.get("message", "").endswith(
        "limit < 60ms")
    regression = by_name["GET /api/assets: p95 vs baseline"].find("failure")
    assert regression is not None and regression.get("type") == "regression"
    assert "allowed <= +10.0%" in regression.get("message", "")
    assert by_name["GET /api/assets: p95 vs baseline"].get("classname") == "opskit.gate.baseline"
    suite = root.find("testsuite")
    assert suite is not None
    assert int(suite.get("failures", "0")) == len(root.findall(".//failure")) >= 3
    assert int(suite.get("tests", "0")) == len(by_name) == 2 + 3 + 3  # criteria, endpoint, whole run (no rps: open)


def test_skips_and_errors(invoke, spec_file, write_results, tmp_path, schema) -> None:
    path = write_results(endpoints={"GET /api/assets": {"rps": 30, "p95": 40.0}})
    code, root, text = run_gate(invoke, spec_file, tmp_path, str(path), "--criteria",
                                "GET /api/nothing: p95 < 1s", "--criteria", "rps > 1")
    assert code == 3
    schema.validate(text)
    error = cases(root)["GET /api/nothing: p95 < 1s"].find("error")
    assert error is not None and "never hit" in error.get("message", "")

    code, root, text = run_gate(invoke, spec_file, tmp_path, str(path))
    assert code == 0
    schema.validate(text)
    skipped = cases(root)["DELETE /api/assets/delete: p95 < 100ms"].find("skipped")
    assert skipped is not None and "not exercised" in skipped.get("message", "")
    assert root.find("testsuite").get("skipped") == str(len(root.findall(".//skipped")))  # type: ignore[union-attr]


def test_unreadable_results_still_give_a_valid_errored_report(invoke, spec_file, tmp_path, schema) -> None:
    code, root, text = run_gate(invoke, spec_file, tmp_path, str(tmp_path / "missing.json"))
    assert code == 3
    schema.validate(text)
    (case,) = root.iter("testcase")
    assert case.find("error") is not None and "no such results file" in case.find("error").get("message", "")  # type: ignore[union-attr]


def test_the_schema_rejects_what_ci_would_reject(schema) -> None:
    """The schema has teeth: a testcase without a name, or a count that is not a number, is invalid."""
    assert not schema.is_valid('<testsuites><testsuite name="x" tests="1"><testcase/></testsuite></testsuites>')
    assert not schema.is_valid('<testsuites><testsuite name="x" tests="many"/></testsuites>')
    assert not schema.is_valid('<testsuites><testsuite name="x" tests="1"><testcase name="a">'
                               '<verdict/></testcase></testsuite></testsuites>')
    assert schema.is_valid('<testsuites><testsuite name="x" tests="1"><testcase name="a"/></testsuite></testsuites>')
