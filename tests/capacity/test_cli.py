from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from opskit.cli import cli

from .conftest import SPECSDM91_N, SPECSDM91_X, synthetic_levels

SPEC = str(Path(__file__).resolve().parents[2] / "opskit.yaml")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_fit_csv_json_reproduces_specsdm91(tmp_path):
    csv = tmp_path / "specsdm91.csv"
    csv.write_text("concurrency,throughput\n" + "".join(f"{n},{x}\n" for n, x in zip(SPECSDM91_N, SPECSDM91_X,
                                                                                       strict=True)))
    r = run("capacity", "fit", "--spec", SPEC, "--data", str(csv), "--output", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert {"sigma", "kappa", "lambda", "peak_concurrency", "peak_throughput", "r_squared"} <= set(doc)
    assert doc["sigma"] == pytest.approx(0.0277285, rel=1e-3)
    assert doc["kappa"] == pytest.approx(0.0001044, rel=1e-3)
    assert doc["lambda"] == pytest.approx(89.9952, rel=1e-3)
    assert doc["slo_capacity"]["limited_by"] == "no latency data"


def test_fit_results_file_table_and_slo_capacity(write_run):
    path = write_run(synthetic_levels(0.03, 0.0004, 40.0, [1, 2, 4, 8, 16, 24, 32, 48, 64]))
    r = run("capacity", "fit", "--spec", SPEC, str(path), "--p95", "100ms", "-o", "json")
    assert r.exit_code == 0
    doc = json.loads(r.stdout)
    assert doc["kappa"] == pytest.approx(0.0004, rel=1e-4)
    cap = doc["slo_capacity"]
    # p95 = 2000 N / X: 95.5 ms at N=24 (502 req/s), 116 ms at N=32 (550): 100 ms at ~514 req/s
    assert cap["limited_by"] == "slo" and cap["measured_rps"] == pytest.approx(502.41, abs=0.01)
    assert 502.4 < cap["estimated_rps"] < 550.1
    t = run("capacity", "fit", "--spec", SPEC, str(path.parent))
    assert t.exit_code == 0 and "Universal Scalability Law fit" in t.stdout and "list-assets" in t.stdout


def test_fit_warnings_and_errors(write_run, tmp_path):
    few = write_run(synthetic_levels(0.05, 0.0002, 100.0, [1, 8, 16, 32]), name="few")
    r = run("capacity", "fit", "--spec", SPEC, str(few), "-o", "json")
    assert r.exit_code == 0 and "only 4 load levels" in r.stderr
    two = write_run(synthetic_levels(0.05, 0.0002, 100.0, [1, 8]), name="two")
    r = run("capacity", "fit", "--spec", SPEC, str(two))
    assert r.exit_code == 3 and "cannot fit the USL: a USL fit needs at least 3 load levels" in r.stderr
    r = run("capacity", "fit", "--spec", SPEC)
    assert r.exit_code == 2 and "one of them" in r.stderr
    r = run("capacity", "fit", "--spec", SPEC, str(tmp_path / "nope.json"))
    assert r.exit_code == 3 and "no such results file" in r.stderr
    r = run("capacity", "fit", "--spec", SPEC, str(few), "--slo", "nope")
    assert r.exit_code == 2 and "no SLO named 'nope'" in r.stderr
    r = run("capacity", "fit", "--spec", SPEC, str(few), "--p95", "fast")
    assert r.exit_code == 2 and "--p95" in r.stderr


def test_forecast_json_and_md(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here: capacity comes from the spec (none) or --capacity-rps
    r = run("capacity", "forecast", "--spec", SPEC, "--months", "24", "--capacity-rps", "50", "-o", "json")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["months"] == list(range(25)) and len(doc["metrics"]["peak_rps"]) == 25
    assert doc["metrics"]["peak_rps"][0] == pytest.approx(100_000 / 86_400 * 1.7, abs=5e-4)  # figures: 3 decimals
    crossings = {c["key"]: c for c in doc["crossings"]}
    assert crossings["database.storage_utilization"]["month"] == 9
    assert crossings["database.storage_utilization"]["plan"] == "phase-2"
    # 500 connections at month 12 equals the threshold: like scaling and the alert (`> 500`), that is not
    # a crossing yet; month 13 is above it
    assert crossings["redis.connections"]["month"] == 13
    # 50 req/s at 70% -> 35 per instance; month 24 peak 196.8 -> 6 + 1 spare = 7
    assert doc["sizing"]["instances"][24] == 7
    md = run("capacity", "forecast", "--spec", SPEC, "-o", "md", "--months", "12")
    assert md.exit_code == 0 and "### Threshold crossings" in md.stdout
    no_capacity = tmp_path / "no-capacity.yaml"
    no_capacity.write_text(Path(SPEC).read_text(encoding="utf-8").replace("capacity_rps: 250,", ""), encoding="utf-8")
    md = run("capacity", "forecast", "--spec", str(no_capacity), "-o", "md", "--months", "12")
    assert md.exit_code == 0
    assert "no per-instance capacity for api" in md.stderr


def test_forecast_errors(tmp_path):
    r = run("capacity", "forecast", "--spec", SPEC, "--months", "0")
    assert r.exit_code == 2
    spec = tmp_path / "opskit.yaml"
    spec.write_text("service: {name: x}\n", encoding="utf-8")
    r = run("capacity", "forecast", "--spec", str(spec))
    assert r.exit_code == 2 and "no growth: section" in r.stderr


def test_help_imports_no_heavy_library():
    import subprocess
    import sys

    code = ("import sys\nfrom click.testing import CliRunner\nfrom opskit.cli import cli\n"
            "for args in (['--help'], ['capacity', '--help'], ['cost', '--help'], ['capacity', 'report', '--help']):\n"
            "    assert CliRunner().invoke(cli, args).exit_code == 0\n"
            "print(sorted(m for m in ('matplotlib', 'numpy', 'scipy', 'pydantic') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_fit_that_is_not_usable_exits_1_and_says_not_fit(tmp_path):
    csv = tmp_path / "spike.csv"
    csv.write_text("concurrency,throughput\n0.04,20\n0.05,22\n0.9,400.6\n0.06,22\n0.05,21\n", encoding="utf-8")
    r = run("capacity", "fit", "--data", str(csv))
    assert r.exit_code == 1
    assert "not fit: lambda is" in r.stderr and "peak throughput" not in r.stderr
    assert "not determined" in r.stdout and "400.6" not in r.stdout.split("points")[0].split("throughput")[-1]
    j = run("capacity", "fit", "--data", str(csv), "-o", "json")
    assert j.exit_code == 1 and json.loads(j.stdout)["usable"] is False
    # with a spec whose SLO has a p95 and a CSV without p95 ("no latency data"): still a clean answer
    t = run("capacity", "fit", "--spec", SPEC, "--data", str(csv))
    assert t.exit_code == 1 and "no p95 per step in the data" in t.stdout and "internal error" not in t.stderr
