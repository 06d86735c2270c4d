"""Dashboards: golden files, the SDK's JSON schema (offline), what the panels query, provisioning, --check."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from opskit.alerts.dashboards import build_all
from opskit.alerts.schemacheck import validate_dashboard
from opskit.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "opskit.yaml"
DASHBOARDS = ROOT / "dashboards"


@pytest.fixture(scope="module")
def built():
    return build_all(load_spec(SPEC))


def panels(doc, kind=None):
    return [p for p in doc["panels"] if kind is None or p["type"] == kind]


def exprs(doc):
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_committed_dashboards_match_the_spec(invoke):
    """Golden files: dashboards/ as committed is what opskit.yaml renders (regenerate: opskit dashboards render)."""
    result = invoke("dashboards", "render", "--spec", str(SPEC), "--check")
    assert result.exit_code == 0, result.stdout + result.stderr


def test_every_dashboard_passes_the_sdk_schema_and_is_v42(built):
    assert sorted(built) == ["asset-service-red.json", "asset-service-saturation.json", "asset-service-slos.json",
                             "loadtest.json"]
    for name, doc in built.items():
        assert validate_dashboard(doc) == [], name
        assert doc["schemaVersion"] == 42
        ids = [p["id"] for p in doc["panels"]]
        assert len(ids) == len(set(ids)) and 0 not in ids


def test_the_schema_check_catches_bad_dashboards(built):
    doc = copy.deepcopy(built["asset-service-red.json"])
    doc["panels"][1]["fieldConfig"]["defaults"]["unitz"] = "s"
    doc["panels"][2]["options"]["legend"]["displayMode"] = "huge"
    doc["panels"][4]["targets"][0]["expr"] = 42
    doc["schemaVersion"] = 39
    problems = "\n".join(validate_dashboard(doc))
    assert "dashboard/panels/1" in problems
    assert "dashboard/panels/2/options/legend/displayMode" in problems and "huge" in problems
    assert "dashboard/panels/4/targets/0/expr" in problems
    assert "schemaVersion: expected 42" in problems


def test_validate_command(invoke, built, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(built["loadtest.json"]))
    bad = tmp_path / "bad.json"
    broken = copy.deepcopy(built["loadtest.json"])
    del broken["templating"]
    bad.write_text(json.dumps(broken))
    assert invoke("dashboards", "validate", str(good), "-o", "json").exit_code == 0
    result = invoke("dashboards", "validate", str(good), str(bad), "-o", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["valid"] is False
    report = {r["file"]: r for r in doc["dashboards"]}
    assert report[str(good)]["valid"] and "templating" in report[str(bad)]["problems"][0]
    assert invoke("dashboards", "validate", str(tmp_path / "missing.json")).exit_code == 2


def test_red_panels_use_rate_interval_and_show_legends(built):
    doc = built["asset-service-red.json"]
    for expr in exprs(doc):
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", expr
    for p in panels(doc, "timeseries"):
        assert p["options"]["legend"]["showLegend"] is True, p["title"]
    titles = [p["title"] for p in panels(doc)]
    for name in ("Request rate by route", "Error ratio (5xx) by route", "Latency p50 by route",
                 "Latency p95 by route", "Latency p99 by route"):
        assert name in titles
    p95 = next(p for p in panels(doc) if p["title"] == "Latency p95 by route")["targets"][0]["expr"]
    assert p95.startswith("histogram_quantile(0.95, sum by (le, method, route) "
                          "(rate(http_request_duration_seconds_bucket")


def test_saturation_has_a_panel_per_threshold_with_its_lines(built):
    spec = load_spec(SPEC)
    doc = built["asset-service-saturation.json"]
    titles = {p["title"]: p for p in panels(doc)}
    for title in ("CPU (cores busy)", "Memory (resident)", "Workers", "Store size (database + WAL)"):
        assert title in titles
    for row in spec.thresholds:
        panel = titles[f"{row.resource} {row.metric.replace('_', ' ')}"]
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, row.scale_down, row.scale_up]
        assert steps[-1]["color"] == "red"
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"]["mode"] == "dashed"
        if row.queries.prometheus:
            assert panel["targets"][0]["expr"] == row.queries.prometheus.strip()


def test_slo_dashboard_has_budget_and_burn_per_sli(built):
    doc = built["asset-service-slos.json"]
    budget = [p for p in panels(doc, "stat") if p["title"].endswith("budget remaining")]
    burn = [p for p in panels(doc, "timeseries") if p["title"].endswith("burn rate")]
    assert len(budget) == 8 and len(burn) == 8  # 4 SLOs x (availability, latency)
    steps = [s["value"] for s in burn[0]["fieldConfig"]["defaults"]["thresholds"]["steps"]]
    assert steps == [None, 1, 3, 6, 14.4]
    assert 'slo:error_budget_remaining:ratio{slo="list-assets",sli="availability"}' in budget[0]["targets"][0]["expr"]


def test_loadtest_dashboard_reads_the_runner_contract(built):
    from opskit.alerts import loadtest_metrics as m

    text = json.dumps(built["loadtest.json"])
    for name in (m.REQUESTS, m.FAILURES, m.RESPONSE_TIME + "_bucket", m.USERS, m.TARGET_RPS, m.DROPPED):
        assert name in text
    assert {v["name"] for v in built["loadtest.json"]["templating"]["list"]} == {"datasource", "scenario", "run_id"}


def test_provisioning_files(tmp_path, invoke):
    assert invoke("dashboards", "render", "--spec", str(SPEC), "--out", str(tmp_path), "-o", "json").exit_code == 0
    ds = yaml.safe_load((tmp_path / "provisioning/datasources/opskit.yml").read_text())
    assert ds["datasources"][0]["type"] == "prometheus" and ds["datasources"][0]["jsonData"]["timeInterval"] == "15s"
    prov = yaml.safe_load((tmp_path / "provisioning/dashboards/opskit.yml").read_text())
    assert prov["providers"][0]["type"] == "file" and prov["providers"][0]["options"]["path"]


def test_check_prints_a_diff_and_exits_1(invoke, tmp_path):
    shutil.copy(SPEC, tmp_path / "opskit.yaml")
    shutil.copytree(DASHBOARDS, tmp_path / "dashboards")
    red = tmp_path / "dashboards" / "asset-service-red.json"
    red.write_text(red.read_text().replace('"title": "Workers"', '"title": "Workerz"').replace(
        '"refresh": "30s"', '"refresh": "5s"'))
    result = invoke("dashboards", "render", "--spec", str(tmp_path / "opskit.yaml"), "--check")
    assert result.exit_code == 1
    assert '-  "refresh": "5s",' in result.stdout and '+  "refresh": "30s",' in result.stdout
    assert "asset-service-red.json" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed")
def test_every_dashboard_query_is_valid_promql(built, tmp_path):
    """promtool parses each panel query (Grafana's variables replaced by what they expand to)."""
    import subprocess

    rules = []
    for doc in built.values():
        for i, expr in enumerate(exprs(doc)):
            concrete = (expr.replace("$__rate_interval", "1m").replace("$route", ".*")
                        .replace("$run_id", ".*").replace("$scenario", ".*"))
            rules.append({"record": f"dashboard:query_{len(rules)}:{i}", "expr": concrete})
    path = tmp_path / "queries.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    done = subprocess.run(["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout


def test_no_latency_panel_counts_the_services_own_routes(built):
    """Every quantile of the service histogram names its routes: /metrics, /health and /ready (scraped and
    probed every few seconds) never count in a latency panel."""
    quantiles = [t["expr"] for doc in built.values() for p in panels(doc) for t in p.get("targets", [])
                 if "histogram_quantile" in t["expr"] and "http_request_duration_seconds_bucket" in t["expr"]]
    assert len(quantiles) >= 5  # RED p50/p95/p99, the load-test service p95, the latency threshold row
    for expr in quantiles:
        for selector in re.findall(r"http_request_duration_seconds_bucket(\{[^}]*\})", expr):
            assert 'route!~"/metrics|/health|/ready"' in selector, expr


def test_a_row_scale_check_cannot_read_gets_no_panel():
    """One resolution rule: a row with no query and no default has no alert, no panel, and scale check's
    prometheus source is asked no query for it (it answers "no prometheus query")."""
    from opskit.alerts.dashboards import saturation
    from opskit.alerts.rules import build
    from opskit.scaling.collect import request_for
    from opskit.spec.loader import parse_yaml, validate
    from opskit.spec.schema import Spec

    data = yaml.safe_load(SPEC.read_text())
    data["thresholds"].append({"resource": "queue", "metric": "depth", "scale_up": 100, "for": "5m"})
    spec = validate(Spec, parse_yaml(yaml.safe_dump(data), "spec.yaml"))
    titles = {p["title"] for p in panels(saturation(spec))}
    assert "queue depth" not in titles and "api memory utilization" in titles
    alerts = {t.row.key: t.query for t in build(spec).thresholds}
    for row in spec.thresholds:
        if row.scale_up is not None:  # target-mode rows have no alert: the autoscaler owns them
            assert request_for(row, "prometheus", 15.0, spec).query == alerts.get(row.key), row.key
    assert "queue.depth" not in alerts and "api.memory_utilization" in alerts
