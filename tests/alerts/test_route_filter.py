"""The service's own /metrics, /health and /ready never count in its latency: the spec's queries, opskit's
defaults and the rendered alerts, against the real service and a real scrape (issue 18, item 6)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import httpx
import pytest
import yaml

from opskit.alerts.queries import resolve
from opskit.alerts.rules import build
from opskit.metrics.base import MetricRequest
from opskit.metrics.scrape import ScrapeSource
from opskit.metrics.timeutil import wall_now
from opskit.spec import load_spec

from .conftest import SPEC

pytestmark = pytest.mark.slow
UNFILTERED = "1000 * histogram_quantile(0.95, http_request_duration_seconds)"


@pytest.fixture(scope="module")
def idle_service():
    """A service that served a few API requests, then only its scrapes and health checks."""
    from opskit.localservice import LocalService

    with LocalService(workers=1, seed_assets=5) as svc:
        with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {svc.key}"}, trust_env=False) as c:
            for _ in range(3):
                c.get("/api/assets").raise_for_status()
        yield svc


def _latency_row(spec, without_queries: bool = False):
    row = next(t for t in spec.thresholds if t.metric == "response_time_p95")
    return row.model_copy(update={"queries": type(row.queries)()}) if without_queries else row


def test_an_idle_service_being_scraped_reports_no_latency(idle_service, invoke, tmp_path):
    spec = load_spec(SPEC)
    source = ScrapeSource([f"{idle_service.url}/metrics"], interval_s=0.3)
    now = wall_now()  # one evaluation: every read below shares the same pair of scrapes
    httpx.get(f"{idle_service.url}/health", timeout=5)
    # what the issue saw: the quantile of every route is the scrape's (and health check's) own latency
    seen = source.read(MetricRequest("api", "response_time_p95", query=UNFILTERED), now=now)
    assert seen.error is None and seen.samples[0].value > 0
    for query in (resolve(spec, _latency_row(spec), "scrape").expr,             # the spec's own query
                  resolve(spec, _latency_row(spec, True), "scrape").expr):     # opskit's default
        assert query and 'route!~"/metrics|/health|/ready"' in query
        got = source.read(MetricRequest("api", "response_time_p95", query=query), now=now)
        assert not got.samples and got.error, (query, got)
    source.close()

    # the same through scale check: no latency on an idle service, so nothing to decide on it
    path = tmp_path / "opskit.yaml"
    path.write_text(SPEC.read_text())
    result = invoke("scale", "check", "--spec", str(path), "--source", "scrape", "--from",
                    f"{idle_service.url}/metrics", "--interval", "0.3", "-o", "json")
    rows = {(d["resource"], d["metric"]): d for d in json.loads(result.stdout)["decisions"]}
    assert rows[("api", "response_time_p95")]["decision"] == "no_data"
    assert rows[("api", "response_time_p95")]["value"] is None


@pytest.mark.skipif(not shutil.which("prometheus"), reason="prometheus not installed")
def test_prometheus_scraping_an_idle_service_reads_no_latency_in_the_alert(idle_service, invoke, tmp_path):
    from .test_live_prometheus import prometheus, query

    alert = {t.row.metric: t for t in build(load_spec(SPEC)).thresholds}["response_time_p95"]
    unfiltered = alert.query.replace(',route!~"/metrics|/health|/ready"', "")
    assert unfiltered != alert.query
    with prometheus(tmp_path, idle_service.url.removeprefix("http://")) as prom:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not query(prom, unfiltered):
            time.sleep(0.5)  # polling Prometheus until two scrapes are in, bounded by the deadline
        # Prometheus' own scrapes of /metrics give the unfiltered quantile a value...
        assert query(prom, unfiltered), (tmp_path / "prometheus.log").read_text()[-2000:]
        # ...the alert's query (the spec's, with the route filter) has none: the service is idle
        assert query(prom, alert.query) == [] or all(s["value"][1] == "NaN" for s in query(prom, alert.query))

        # --check-metrics against a Prometheus server checks every job: no node_exporter is scraped here
        result = invoke("alerts", "render", "--spec", str(SPEC), "--out", str(tmp_path / "a"),
                        "--check-metrics", prom)
        assert result.exit_code == 2, result.stderr
        assert "thresholds.rules.yml: DatabaseCpuUtilizationHigh: node_cpu_seconds_total" in result.stderr
        assert "http_request_duration_seconds" not in result.stderr and "process_cpu" not in result.stderr


def test_check_metrics_refuses_a_rule_on_a_metric_the_service_does_not_export(idle_service, invoke, tmp_path):
    data = yaml.safe_load(SPEC.read_text())
    data["thresholds"].append({"resource": "api", "metric": "request_rate", "scale_up": 500, "for": "5m",
                               "queries": {"prometheus": 'sum(rate(http_requests_total{job="asset-service"}[5m]))'}})
    spec = tmp_path / "opskit.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    url = f"{idle_service.url}/metrics"
    result = invoke("alerts", "render", "--spec", str(spec), "--check-metrics", url)
    assert result.exit_code == 2
    assert f"opskit: error: 1 rule(s) read metrics that {url} does not export" in result.stderr
    assert 'thresholds.rules.yml: ApiRequestRateHigh: http_requests_total (job="asset-service")' in result.stderr
    assert not (tmp_path / "alerts").exists()

    # the committed spec reads only what the service exports; rows of the stack's exporters (job="redis",
    # "postgres", "node", "process") are checked only against those exporters' URLs, so they pass here
    ok = invoke("alerts", "render", "--spec", str(SPEC), "--out", str(tmp_path / "ok"), "--check-metrics", url)
    assert ok.exit_code == 0, ok.stderr
    assert "is not on" not in ok.stderr
    assert "http_request_duration_seconds" not in ok.stderr.replace("--check-metrics: ", "")


def test_check_metrics_against_an_unreachable_url_cannot_answer(invoke, tmp_path):
    result = invoke("alerts", "render", "--spec", str(SPEC), "--out", str(tmp_path / "a"),
                    "--check-metrics", "http://127.0.0.1:9/metrics")
    assert result.exit_code == 3
    assert "--check-metrics: cannot read http://127.0.0.1:9/metrics" in result.stderr
    assert not Path(tmp_path / "a").exists()
