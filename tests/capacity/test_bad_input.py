"""capacity with bad CSV rows, options and results: exit 2 naming the line, or 3 for a run that cannot answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import synthetic_levels

SPEC = str(Path(__file__).resolve().parents[2] / "opskit.yaml")


@pytest.mark.parametrize("rows, line, words", [
    ("1,100\n2,nan\n4,300\n", 3, "throughput must be a finite number, got 2,nan"),
    ("1,100\n2,1e400\n4,300\n", 3, "throughput must be a finite number, got 2,1e400"),
    ("1,100\n2,-5\n4,300\n", 3, "throughput and p95_ms cannot be negative, got 2,-5"),
    ("0,0\n2,190\n4,300\n", 2, "concurrency must be above 0, got 0,0"),
])
def test_a_bad_csv_row_is_named_by_line(invoke, tmp_path, rows, line, words):
    data = tmp_path / "levels.csv"
    data.write_text("concurrency,throughput\n" + rows)
    result = invoke("capacity", "fit", "--spec", SPEC, "--data", str(data), "-o", "json")
    assert result.exit_code == 2, result.output
    assert f"{data}:{line}: {words}" in result.stderr
    assert result.stdout == ""


def test_a_nan_p95_or_error_rate_out_of_range_is_refused(invoke, tmp_path):
    data = tmp_path / "levels.csv"
    data.write_text("concurrency,throughput,p95_ms,error_rate\n1,100,5,0\n2,190,nan,0\n")
    result = invoke("capacity", "fit", "--spec", SPEC, "--data", str(data))
    assert result.exit_code == 2 and f"{data}:3: p95_ms must be a finite number" in result.stderr
    data.write_text("concurrency,throughput,p95_ms,error_rate\n1,100,5,0\n2,190,6,5\n")
    result = invoke("capacity", "fit", "--spec", SPEC, "--data", str(data))
    assert result.exit_code == 2 and f"{data}:3: error_rate is a fraction between 0 and 1" in result.stderr


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_capacity_rps_must_be_finite(invoke, value):
    result = invoke("capacity", "forecast", "--spec", SPEC, "--capacity-rps", value)
    assert result.exit_code == 2
    assert f"{value!r} is not a finite number" in result.stderr and "internal error" not in result.stderr


def test_run_valid_that_is_not_a_boolean_cannot_size_capacity(invoke, write_run):
    path = write_run(synthetic_levels(0.05, 0.0002, 100.0, [1, 2, 4, 8, 16, 32]))
    doc = json.loads(path.read_text())
    doc.setdefault("run", {})["valid"] = "yes"
    path.write_text(json.dumps(doc))
    result = invoke("capacity", "fit", "--spec", SPEC, str(path))
    assert result.exit_code == 3, result.output
    assert "run.valid: expected true or false, got 'yes'" in result.stderr


def test_report_out_under_a_file_writes_nothing(invoke, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reports").write_text("keep")
    result = invoke("capacity", "report", "--spec", SPEC, "--out", str(tmp_path / "reports" / "review.html"))
    assert result.exit_code == 2, result.output
    assert "reports is a file, not a folder" in result.stderr
    assert (tmp_path / "reports").read_text() == "keep"


@pytest.mark.parametrize("args, code, words", [
    (["--slo", "p90 < 200ms"], 2, "--slo 'p90 < 200ms': the probe measures p50, p95, p99, error_rate, rps, not p90"),
    (["--slo", "latency < 200ms"], 2, "--slo 'latency < 200ms': column 1: unknown metric"),
    (["--start", "500", "--max-rate", "100"], 2, "--max-rate 100 is below --start 500"),
    (["--target", "nowhere"], 2, "--target 'nowhere' is not declared under targets: in the spec"),
    (["--host", "http://127.0.0.1:1"], 3, "cannot reach http://127.0.0.1:1"),
    (["--error-budget", "150%"], 2, "--error-budget: expected 0% to 100%"),
    (["--scenario", "smoke", "--path", "/x"], 2, "--path is for --scenario http-get; 'smoke' names its own requests"),
    (["--path", "api/assets"], 2, "--path must start with '/', got 'api/assets'"),
    (["--target", "staging", "--start", "3000", "--max-rate", "5000"], 2,
     "--start 3000 is above target 'staging''s max_rps (2000)"),
])
def test_probe_bad_input_is_one_line(invoke, tmp_path, args, code, words):
    result = invoke("capacity", "probe", "--spec", SPEC, "--out", str(tmp_path / "p"), *args)
    assert result.exit_code == code, result.output
    assert words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "p").exists()
