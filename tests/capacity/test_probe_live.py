"""The capacity probe against loopback servers of known capacity (the stall server's slots mode:
slots / service_s req/s, a FIFO queue past that), through the real load-test machinery."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.loadtest.stallserver import StallSchedule, StallServer
from opskit.resultsfile import load_run

SPEC = str(Path(__file__).resolve().parents[2] / "opskit.yaml")

pytestmark = pytest.mark.slow


def probe(invoke, url: str, out: Path, *args: str):
    return invoke("capacity", "probe", "--spec", SPEC, "--host", url, "--path", "/", "--step", "2s",
                  "--out", str(out), "--output", "json", *args)


def test_the_probe_finds_a_known_saturation_and_the_rate_within_the_slo(invoke, tmp_path: Path) -> None:
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.05), slots=10) as server:  # 200 req/s
        result = probe(invoke, server.url, tmp_path / "p", "--slo", "p95 < 300ms", "--start", "100",
                       "--max-rate", "1000")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout)
    assert set(answer) == {"max_rate_within_slo", "saturation_rate", "limited_by", "interval", "steps", "results"}
    assert answer["saturation_rate"] == pytest.approx(200, rel=0.10)
    assert 0.75 * 200 <= answer["max_rate_within_slo"] <= 200 * 1.05
    assert answer["limited_by"] in ("throughput", "slo:p95")
    lo, hi = answer["interval"]
    assert lo == answer["max_rate_within_slo"] and hi / lo - 1 <= 0.05 + 1e-9
    # every passing step held the SLO; the step at the answer was repeated (confirmed) and passed
    passing = [s for s in answer["steps"] if s["verdict"] == "pass"]
    assert passing and all(s["latency_ms"]["p95"] < 300 for s in passing)
    assert [s["rate"] for s in passing].count(lo) >= 2
    assert {s["verdict"] for s in answer["steps"]} & {"throughput", "slo:p95"}
    # the probe's results.json reads through the run model, with its steps for a USL fit
    run = load_run(Path(answer["results"]))
    assert run.probe is not None and run.probe.max_rate_within_slo == lo
    assert run.steps is not None and len(run.steps) == len(answer["steps"])
    assert "step 1 [ramp] 100.0 req/s offered" in result.stderr
    page = (tmp_path / "p" / "probe.html").read_text(encoding="utf-8")
    assert "Latency vs throughput (capacity probe)" in page and f"Knee: <b>{lo:,.1f} req/s</b>" in page


def test_a_starved_generator_is_a_lower_bound_not_a_knee(invoke, tmp_path: Path) -> None:
    """One generator process cannot send 20,000 req/s: its loop falls seconds behind the schedule, so the
    step is the generator's, and the answer says so instead of calling it the service's knee."""
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.001), slots=10_000) as server:
        result = probe(invoke, server.url, tmp_path / "g", "--start", "20000", "--max-rate", "20000")
    answer = json.loads(result.stdout)
    assert answer["limited_by"] == "generator"
    assert answer["steps"][0]["verdict"] == "generator"
    assert answer["interval"][1] is None
    assert "generator-bound" in result.stderr


def test_every_step_passing_up_to_max_rate_is_a_lower_bound_in_the_table(invoke, tmp_path: Path) -> None:
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.001), slots=50) as server:  # 50,000 req/s
        result = invoke("capacity", "probe", "--spec", SPEC, "--host", server.url, "--path", "/", "--step", "2s",
                        "--start", "50", "--max-rate", "50", "--out", str(tmp_path / "t"))
    assert result.exit_code == 0, result.stderr
    assert "Capacity probe steps" in result.stdout
    # without --slo, the spec's SLO latency limits (the example: p95 < 200ms)
    assert "capacity >= 50.0 req/s within p95 < 200ms (every step passed up to --max-rate)" in result.stdout
    assert "raise --max-rate to search further" in result.stderr
