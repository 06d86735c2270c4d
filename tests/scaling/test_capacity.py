"""The scale check's instance math from a measured per-instance capacity: demand / (capacity_rps x utilization
target), HPA-style, with the capacity's provenance in the table and the JSON and a stale probe flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.exitcodes import ExitCode
from opskit.scaling.capacity import capacity_row, demand_request
from opskit.scaling.evaluate import evaluate
from opskit.scaling.model import Capacity, CapacitySource
from opskit.spec.schema import Resource

from .conftest import NOW, series, th

PROBED = CapacitySource("probe", run_id="20261201T100000Z-probe", date="2026-12-01T10:00:00Z", commit="abc1234def",
                        target="embedded (1 worker)", path="runs/20261201T100000Z-probe/results.json")


def cap(rps: float | None = 250.0, util: float = 70.0, **kw) -> Capacity:
    return Capacity("api", rps, util, kw.pop("source", PROBED), **kw)


def demand(value: float):
    return series([value], metric="request_rate")


@pytest.mark.parametrize(("rps", "current", "kind", "proposed"), [
    (420.0, 2, "scale_up", 3),     # 420 / 175 = 2.4 -> 3
    (1400.0, 2, "scale_up", 8),    # 1400 / 175 = 8 exactly: not 9
    (100.0, 4, "scale_down", 1),   # 100 / 175 -> 1 (the bounds clamp it later)
    (350.0, 2, "hold", 2),         # exactly 2 instances' worth
    (370.0, 2, "hold", 2),         # ratio 1.057: within the HPA's 10% tolerance
])
def test_desired_instances_are_demand_over_the_capacity_at_the_utilization_target(rps, current, kind, proposed):
    d = capacity_row(cap(), demand(rps), now=NOW, current=current)
    assert (d.decision, d.proposed, d.mode, d.metric, d.value, d.target) == (
        kind, proposed, "capacity", "request_rate", rps, pytest.approx(175.0))


def test_no_demand_no_capacity_or_no_count_is_said_not_guessed():
    missing = capacity_row(cap(), series([], metric="request_rate"), now=NOW, current=2)
    assert missing.decision == "no_data" and missing.reason.startswith("no samples")
    broken = capacity_row(cap(None, error="runs/ holds no capacity probe"), demand(400), now=NOW, current=2)
    assert broken.decision == "no_data" and "runs/ holds no capacity probe" in broken.reason
    unknown = capacity_row(cap(), demand(400), now=NOW, current=None)
    assert unknown.decision == "hold" and unknown.proposed is None and "needs 3" in unknown.reason
    stale = capacity_row(cap(source=CapacitySource("probe", stale=True, stale_reason="old")), demand(400), now=NOW,
                         current=2)
    assert "STALE probe" in stale.reason


def test_the_capacity_row_votes_with_the_thresholds_and_the_largest_count_wins():
    rows = [th(scale_up=70, scale_down=20, playbook="api-horizontal-scale")]
    cpu = [series([50])]  # the CPU row holds
    res = {"api": Resource(min=2, max=10)}
    ev = evaluate(rows, cpu, now=NOW, resources=res, replicas={"api": 2}, capacities={"api": cap()},
                  demand={"api": demand(900)})  # 900 / 175 = 5.1 -> 6
    assert [d.mode for d in ev.decisions] == ["threshold", "capacity"]
    api = ev.resources["api"]
    assert (api.decision, api.recommended, api.playbook) == ("scale_up", 6, "api-horizontal-scale")
    assert api.reason.startswith("request_rate asks for 6") and ev.capacities["api"].capacity_rps == 250.0
    # without demand (a source that cannot tell req/s) the capacity adds nothing
    plain = evaluate(rows, cpu, now=NOW, resources=res, replicas={"api": 2}, capacities={"api": cap()})
    assert len(plain.decisions) == 1 and plain.resources["api"].decision == "hold" and plain.capacities == {}


def test_each_source_reads_demand_its_own_way():
    prom = demand_request("prometheus", resource="api", service_job="asset-service", window="2m")
    assert prom is not None and prom.query == ('sum(rate(http_request_duration_seconds_count{job="asset-service",'
                                               'route!~"/metrics|/health|/ready"}[2m]))')
    assert demand_request("results", resource="api", service_job="x", window="2m").query == "aggregate.rps"
    assert demand_request("host", resource="api", service_job="x", window="2m") is None


# ---- the command ---------------------------------------------------------------------------------------------

SPEC = Path(__file__).resolve().parents[2] / "opskit.yaml"


def probe_results(rate: float, *, started: str) -> dict:
    """A capacity probe's results.json, as `opskit capacity probe` writes it (only what the reader needs)."""
    lat = {"p50": 2.0, "p90": 4.0, "p95": 5.0, "p99": 8.0, "p999": 9.0, "max": 10.0, "mean": 3.0}
    return {
        "schema_version": 1,
        "run": {"scenario": "probe-http-get", "model": "open", "target": "http://127.0.0.1:1",
                "target_name": "embedded (1 worker)", "started_at": started, "ended_at": started,
                "duration_s": 30.0, "git_sha": "abc1234def", "valid": True, "invalid_reason": None,
                "run_id": "20261201T100000Z-probe"},
        "aggregate": {"requests": 3000, "failures": 0, "rps": 100.0, "error_rate": 0.0, "latency_ms": lat},
        "endpoints": {}, "timeline": [], "steps": [],
        "probe": {"model": "open", "max_rate_within_slo": rate, "saturation_rate": rate * 1.1,
                  "limited_by": "slo:p95", "interval": [rate, rate * 1.04], "slo": ["p95 < 200ms"],
                  "error_budget": 0.01, "step_s": 3.0, "notes": [], "steps": []},
    }


PROBE_SPEC = """
service: {name: asset-service}
thresholds:
  - {resource: api, metric: cpu_utilization, scale_up: 70%, scale_down: 20%, playbook: api-horizontal-scale}
  - {resource: database, metric: cpu_utilization, scale_up: 60%, scale_down: 15%}
resources:
  api: {min: 2, max: 10, current: 2, utilization_target: 70%, capacity_rps: {from: probe}}
  database: {min: 1, max: 1, current: 1}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A spec whose api capacity is {from: probe}, in a folder whose runs/ may hold a probe."""
    (tmp_path / "opskit.yaml").write_text(PROBE_SPEC, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_probe(root: Path, started: str) -> None:
    folder = root / "runs" / "20261201T100000Z-probe"
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(probe_results(200.0, started=started)), encoding="utf-8")


def samples(root: Path, rps: float, replicas: int = 2) -> str:
    path = root / "samples.json"
    path.write_text(json.dumps({
        "now": "2026-12-05T10:00:00Z", "resources": {"api": {"replicas": replicas}},
        "samples": [{"resource": "api", "metric": "cpu_utilization", "value": 40},
                    {"resource": "api", "metric": "request_rate", "value": rps}]}), encoding="utf-8")
    return str(path)


def test_scale_check_sizes_from_the_probe_and_says_which(invoke, project: Path) -> None:
    write_probe(project, started="2026-12-01T10:00:00Z")
    # 200 req/s per instance at 70% = 140 req/s each; 600 req/s needs ceil(4.29) = 5
    r = invoke("scale", "check", "--source", "file", "--from", samples(project, 600), "-o", "json")
    assert r.exit_code == ExitCode.NO, r.stderr
    doc = json.loads(r.stdout)
    row = next(d for d in doc["decisions"] if d["mode"] == "capacity")
    assert (row["metric"], row["value"], row["target"], row["proposed"], row["decision"]) == (
        "request_rate", 600, pytest.approx(140.0), 5, "scale_up")
    api = doc["resources"]["api"]
    assert (api["current"], api["recommended"], api["capacity_rps"]) == (2, 5, 200.0)
    source = api["capacity_source"]
    assert {k: source[k] for k in ("kind", "run_id", "date", "commit", "target")} == {
        "kind": "probe", "run_id": "20261201T100000Z-probe", "date": "2026-12-01T10:00:00Z",
        "commit": "abc1234def", "target": "embedded (1 worker)"}
    assert source["path"].endswith("20261201T100000Z-probe/results.json") and source["error"] is None
    assert doc["resources"]["database"]["capacity_rps"] is None  # only the serving fleet has a req/s capacity
    table = invoke("scale", "check", "--source", "file", "--from", samples(project, 600))
    assert table.exit_code == ExitCode.NO
    assert ("api capacity: 200.0 req/s per instance, target 140.0 at 70% (probe 20261201T100000Z-probe "
            "(2026-12-01, commit abc1234def, target embedded (1 worker)))") in table.stdout
    assert "api: scale_up 2 -> 5 [min 2, max 10] via playbook api-horizontal-scale: request_rate asks for 5" in (
        table.stdout)


def test_a_stale_probe_is_flagged_in_table_and_json(invoke, project: Path) -> None:
    write_probe(project, started="2025-01-01T10:00:00Z")  # long before max_age (30 days) from today
    r = invoke("scale", "check", "--source", "file", "--from", samples(project, 250), "-o", "json")
    assert r.exit_code == ExitCode.OK, r.stderr  # 250 / 140 -> 2: holds
    source = json.loads(r.stdout)["resources"]["api"]["capacity_source"]
    assert source["stale"] is True and "days ago, over max_age 30d" in source["stale_reason"]
    assert "the capacity probe is stale: measured" in r.stderr
    t = invoke("scale", "check", "--source", "file", "--from", samples(project, 250))
    assert "target embedded (1 worker)) STALE" in t.stdout and "the capacity probe is stale" in t.stderr


def test_a_missing_probe_is_a_no_data_row_not_a_failed_check(invoke, project: Path) -> None:
    r = invoke("scale", "check", "--source", "file", "--from", samples(project, 600), "-o", "json")
    assert r.exit_code == ExitCode.OK, r.stderr  # the CPU row still answers
    doc = json.loads(r.stdout)
    row = next(d for d in doc["decisions"] if d["mode"] == "capacity")
    assert row["decision"] == "no_data" and "holds no capacity probe" in row["reason"]
    assert doc["resources"]["api"]["capacity_source"]["error"].startswith("resources.api.capacity_rps is")


def test_a_typed_capacity_and_a_results_run_give_the_demand(invoke, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    doc = probe_results(1.0, started="2026-12-05T10:00:00Z")
    del doc["probe"]
    doc["aggregate"]["rps"] = 900.0  # the spec's 250 req/s x 70% = 175 per instance: 900 needs 6
    (run / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    r = invoke("scale", "check", "--spec", str(SPEC), "--source", "results", "--from", str(run), "-o", "json")
    assert r.exit_code == ExitCode.NO, r.stderr
    out = json.loads(r.stdout)
    row = next(d for d in out["decisions"] if d["mode"] == "capacity")
    assert (row["value"], row["proposed"], row["query"]) == (900.0, 6, "aggregate.rps")
    assert out["resources"]["api"]["capacity_source"]["kind"] == "spec"


def test_a_samples_file_without_demand_shows_no_capacity_row(invoke, project: Path) -> None:
    write_probe(project, started="2026-12-01T10:00:00Z")
    path = project / "cpu.json"
    path.write_text(json.dumps({"now": "2026-12-05T10:00:00Z", "resources": {"api": {"replicas": 2}},
                                "samples": [{"resource": "api", "metric": "cpu_utilization", "value": 40}]}))
    r = invoke("scale", "check", "--source", "file", "--from", str(path), "-o", "json")
    doc = json.loads(r.stdout)
    assert all(d["mode"] != "capacity" for d in doc["decisions"]) and doc["resources"]["api"]["capacity_rps"] is None
