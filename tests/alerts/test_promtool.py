"""promtool and amtool, run for real against what opskit renders: `opskit alerts test` and `alerts lint`."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from .conftest import SPEC

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which("promtool") and shutil.which("amtool")),
                       reason="promtool/amtool not installed (scripts/setup.sh installs them)"),
]


def run_test(invoke, spec, folder=None):
    args = ["alerts", "test", "--spec", str(spec), "-o", "json"]
    if folder is not None:
        args += ["--out", str(folder)]
    result = invoke(*args)
    return result, json.loads(result.stdout)


def failed(report):
    return [c for c in report["checks"] if not c["ok"]]


def slim(alerts_copy):
    """Drop the SLO unit tests (the slow part) from a copy whose failure is about something else:
    their alerts then fail coverage, which the failure-path tests below filter out."""
    for path in (alerts_copy / "tests").glob("slo-*.test.yml"):
        path.unlink()
    return alerts_copy.parent / "opskit.yaml"


def not_slo(checks):
    return [c for c in checks if "slo-" not in c["target"]]


def test_committed_rules_pass_every_check(invoke):
    """Each alert fires on a breach and stays silent at normal load (promtool unit tests), rule counts match,
    lint is clean, the Alertmanager example is valid and routes critical to the pager."""
    result, report = run_test(invoke, SPEC)
    assert result.exit_code == 0, failed(report)
    checks = {(c["check"], c["target"]) for c in report["checks"]}
    for name in ("ApiCpuUtilizationHigh", "ApiMemoryUtilizationHigh", "ApiResponseTimeP95High",
                 "DatabaseCpuUtilizationHigh", "DatabaseIopsHigh", "DatabaseStorageUtilizationHigh",
                 "RedisMemoryUtilizationHigh", "RedisConnectionsHigh"):
        assert ("coverage", f"thresholds.rules.yml: {name} (warning)") in checks
    assert ("coverage", "slo-list-assets.rules.yml: ListAssetsAvailabilityBudgetBurn (critical)") in checks
    assert ("coverage", "slo-list-assets.rules.yml: ListAssetsAvailabilityBudgetBurn (warning)") in checks
    assert ("amtool route", "severity=critical") in checks
    counts = {c["target"]: c["detail"] for c in report["checks"] if c["check"] == "promtool check rules"}
    assert counts["thresholds.rules.yml"] == "8 rules" and counts["slo-upload.rules.yml"] == "30 rules"


def test_an_empty_rule_file_fails_the_count(invoke, alerts_copy):
    (alerts_copy / "health.rules.yml").write_text("groups: []\n")  # promtool itself says SUCCESS: 0 rules
    result, report = run_test(invoke, slim(alerts_copy))
    assert result.exit_code == 1
    bad = failed(report)
    assert any(c["target"] == "health.rules.yml" and "found 0 rules, the spec renders 4" in c["detail"] for c in bad)


def test_a_wrong_threshold_fails_the_unit_tests(invoke, alerts_copy):
    rules = alerts_copy / "thresholds.rules.yml"
    rules.write_text(rules.read_text().replace(") > 3000\n", ") > 30000\n"))
    result, report = run_test(invoke, slim(alerts_copy))
    assert result.exit_code == 1
    unit = next(c for c in report["checks"] if c["target"] == "tests/thresholds.test.yml")
    assert not unit["ok"] and "DatabaseIopsHigh" in unit["detail"]


def test_an_alert_without_a_silent_case_fails_coverage(invoke, alerts_copy):
    path = alerts_copy / "tests" / "health.test.yml"
    doc = yaml.safe_load(path.read_text())
    doc["tests"] = [t for t in doc["tests"] if not (t["name"].startswith("AssetServiceTargetDown")
                                                    and not t["alert_rule_test"][0]["exp_alerts"])]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result, report = run_test(invoke, slim(alerts_copy))
    assert result.exit_code == 1
    bad = not_slo(failed(report))
    assert [c["target"] for c in bad] == ["health.rules.yml: AssetServiceTargetDown (critical)"]
    assert bad[0]["detail"] == "no test where it stays silent"


def test_a_broken_alertmanager_config_fails(invoke, alerts_copy):
    am = alerts_copy / "alertmanager.yml"
    am.write_text(am.read_text().replace("receiver: pager", "receiver: nobody"))
    result, report = run_test(invoke, slim(alerts_copy))
    assert result.exit_code == 1
    assert any(c["check"] == "amtool check-config" and not c["ok"] for c in report["checks"])


def test_rules_rendered_from_another_spec_prove_themselves(invoke, seed_spec, write_spec, tmp_path):
    """Nothing is tuned to the seed: a different spec (28-day SLO, 30s scrapes, other thresholds, a p99 SLO)
    renders rules whose generated unit tests pass under promtool."""
    seed_spec["alerts"]["scrape_interval"] = "30s"
    seed_spec["alerts"]["labels"] = {"team": "assets"}
    seed_spec["slos"] = [
        {"name": "search", "endpoint": "GET /api/assets", "latency": {"p99": "1s"}, "availability": "99.5%",
         "window": "28d"},
        {"name": "create", "endpoint": "POST /api/assets", "latency": {"p95": "250ms", "p50": "50ms"}},
    ]
    seed_spec["thresholds"] = [
        {"resource": "api", "metric": "response_time_p99", "scale_up": "2s", "scale_down": "200ms", "for": "3m"},
        {"resource": "api", "metric": "error_rate", "scale_up": "2%", "scale_down": "0.1%", "for": "2m",
         "severity": "critical"},
        {"resource": "worker", "metric": "memory_utilization", "scale_up": "85%", "scale_down": "40%"},
        {"resource": "db", "metric": "iops", "scale_up": 12000, "scale_down": 1000, "for": "15m"},
    ]
    spec = write_spec(seed_spec)
    rendered = invoke("alerts", "render", "--spec", str(spec), "-o", "json")
    assert rendered.exit_code == 0, rendered.stderr
    result, report = run_test(invoke, spec)
    assert result.exit_code == 0, failed(report)
    targets = {c["target"] for c in report["checks"] if c["check"] == "coverage"}
    assert "thresholds.rules.yml: ApiErrorRateHigh (critical)" in targets
    # a p50 SLO has a 50% budget: only the 1x/3d ticket can ever fire, so no page is rendered for it
    assert "slo-create.rules.yml: CreateLatencyP50BudgetBurn (warning)" in targets
    assert "slo-create.rules.yml: CreateLatencyP50BudgetBurn (critical)" not in targets
    assert "slo-search.rules.yml: SearchLatencyP99BudgetBurn (critical)" in targets
    rules = yaml.safe_load((spec.parent / "alerts" / "thresholds.rules.yml").read_text())["groups"][0]["rules"]
    assert all(r["labels"]["team"] == "assets" for r in rules)


def test_lint_names_the_broken_seed_rules(invoke, tmp_path):
    seed = tmp_path / "seed.rules.yml"
    seed.write_text(
        "groups:\n  - name: asset-management\n    rules:\n"
        "      - alert: HighErrorRate\n        expr: rate(asset_operations_total{status=\"error\"}[5m]) > 0.1\n"
        "        for: 2m\n        annotations: {summary: High error rate detected}\n"
        "      - alert: SlowResponse\n        expr: histogram_quantile(0.95, http_request_duration_seconds) > 1\n"
        "        for: 5m\n        annotations: {summary: 95th percentile response time > 1s}\n"
        "      - alert: PerTenant\n        expr: sum by (company_id) (rate(asset_operations_total[30s])) > 1\n"
        "        annotations: {runbook_url: 'https://x'}\n")
    result = invoke("alerts", "lint", "--spec", str(SPEC), str(seed), "-o", "json")
    assert result.exit_code == 1
    got = {(p["rule"], p["check"]) for p in json.loads(result.stdout)["problems"]}
    assert got == {("HighErrorRate", "runbook"), ("SlowResponse", "runbook"), ("SlowResponse", "histogram"),
                   ("PerTenant", "for"), ("PerTenant", "rate-window"), ("PerTenant", "grouping")}
    # promtool alone passes that file: that is why opskit lints
    import subprocess

    done = subprocess.run(["promtool", "check", "rules", str(seed)], capture_output=True, text=True, check=False)
    assert done.returncode == 0


def test_lint_is_clean_on_the_committed_rules(invoke):
    result = invoke("alerts", "lint", "--spec", str(SPEC), "-o", "json")
    assert result.exit_code == 0 and json.loads(result.stdout)["problems"] == []


def test_lint_markdown_for_a_pull_request(invoke, tmp_path):
    rules = tmp_path / "x.rules.yml"
    rules.write_text("groups:\n  - name: g\n    rules:\n      - alert: NoFor\n        expr: up == 0\n"
                     "        annotations: {runbook_url: 'https://x'}\n")
    result = invoke("alerts", "lint", "--spec", str(SPEC), str(rules), "-o", "md")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[0] == "| file | rule | check | problem |"
    assert f"| {rules} | NoFor | for |" in result.stdout
