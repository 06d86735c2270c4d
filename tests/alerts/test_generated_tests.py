"""Generated promtool tests for every rendered alert, rows with their own queries.prometheus included:
`alerts test` on a fresh render passes every check, and the model behind the tests matches promtool."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from .conftest import SPEC

needs_promtool = pytest.mark.skipif(not (shutil.which("promtool") and shutil.which("amtool")),
                                    reason="promtool/amtool not installed (scripts/setup.sh installs them)")


def failed(report):
    return [c for c in report["checks"] if not c["ok"]]


@pytest.mark.slow
@needs_promtool
def test_a_fresh_render_passes_every_check(invoke, tmp_path):
    """No hand-written test in the folder: every alert, custom queries included, fires and stays silent."""
    out = tmp_path / "fresh"
    assert invoke("alerts", "render", "--spec", str(SPEC), "--out", str(out)).exit_code == 0
    assert not (out / "tests" / "custom-thresholds.test.yml").exists()
    result = invoke("alerts", "test", "--spec", str(SPEC), "--out", str(out), "-o", "json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, failed(report)
    coverage = {c["target"] for c in report["checks"] if c["check"] == "coverage"}
    for name in ("ApiCpuUtilizationHigh", "ApiResponseTimeP95High", "RedisMemoryUtilizationHigh",
                 "RedisConnectionsHigh"):  # the rows with their own queries.prometheus
        assert f"thresholds.rules.yml: {name} (warning)" in coverage


@pytest.mark.slow
@needs_promtool
def test_custom_queries_of_another_spec_get_tests_that_pass(invoke, seed_spec, write_spec, tmp_path):
    """Nothing tuned to the seed queries: a ratio of two gauges, a rate over a gauge, an avg by instance
    and a latency of another histogram, with 30s scrapes."""
    seed_spec["alerts"]["scrape_interval"] = "30s"
    seed_spec["thresholds"] = [
        {"resource": "queue", "metric": "depth_ratio", "unit": "percent", "scale_up": "80%", "scale_down": "10%",
         "for": "4m", "queries": {"prometheus": '100 * queue_depth{job="q"} / queue_capacity{job="q"}'}},
        {"resource": "api", "metric": "cpu_per_worker", "unit": "percent", "scale_up": "70%", "for": "3m",
         "queries": {"prometheus": '100 * sum(rate(process_cpu_seconds_total{job="w"}[2m])) / '
                                   'sum(workers{job="w"})'}},
        {"resource": "api", "metric": "req_rate", "scale_up": 200, "scale_down": 20, "for": "2m",
         "queries": {"prometheus": "avg by (instance) (rate(requests_total{job=~\"api|web\"}[3m]))"}},
        {"resource": "api", "metric": "slow_p99", "unit": "ms", "scale_up": "400ms", "for": "5m",
         "queries": {"prometheus": "1000 * histogram_quantile(0.99, sum by (le) "
                                   "(rate(http_request_duration_seconds_bucket{job=\"asset-service\","
                                   "route!~\"/metrics|/health|/ready\"}[2m])))"}},
    ]
    spec = write_spec(seed_spec)
    rendered = invoke("alerts", "render", "--spec", str(spec), "-o", "json")
    assert rendered.exit_code == 0, rendered.stderr
    notes = json.loads(rendered.stdout)["notes"]
    assert not [n for n in notes if "no generated unit test" in n]
    result = invoke("alerts", "test", "--spec", str(spec), "-o", "json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, failed(report)


@pytest.mark.slow
@needs_promtool
def test_the_latency_test_catches_a_query_that_counts_metrics_scrapes(invoke, tmp_path):
    """The silent case puts slow /metrics and /health requests beside fast API ones: the rule without its
    route filter reads them and fires, so promtool fails it."""
    out = tmp_path / "fresh"
    assert invoke("alerts", "render", "--spec", str(SPEC), "--out", str(out)).exit_code == 0
    rules = out / "thresholds.rules.yml"
    text = rules.read_text()
    assert ',route!~"/metrics|/health|/ready"' in text
    rules.write_text(text.replace(',route!~\\"/metrics|/health|/ready\\"', "").replace(
        ',route!~"/metrics|/health|/ready"', ""))
    for path in (out / "tests").glob("slo-*.test.yml"):
        path.unlink()
    result = invoke("alerts", "test", "--spec", str(SPEC), "--out", str(out), "-o", "json")
    unit = next(c for c in json.loads(result.stdout)["checks"] if c["target"] == "tests/thresholds.test.yml")
    assert not unit["ok"] and "ApiResponseTimeP95High" in unit["detail"]


def test_a_query_outside_the_model_is_named_in_a_note(invoke, seed_spec, write_spec, tmp_path):
    seed_spec["thresholds"] = [{"resource": "api", "metric": "odd", "scale_up": 5, "for": "5m",
                                "queries": {"prometheus": "max_over_time(queue_depth[5m])"}}]
    spec = write_spec(seed_spec)
    result = invoke("alerts", "render", "--spec", str(spec))
    assert result.exit_code == 0, result.stderr
    assert ("note: thresholds[0] api.odd: no generated unit test (its query is outside what opskit models: "
            "function max_over_time() is not modelled)") in result.stderr
    tests = yaml.safe_load((tmp_path / "alerts" / "tests" / "health.test.yml").read_text())
    assert tests["tests"]  # the rest is generated as usual

