"""The scrape source against the real asset service's /metrics under real requests."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pytest

from opskit.metrics.base import MetricRequest
from opskit.metrics.scrape import ScrapeSource

from .conftest import Load, burst, spec_file

pytestmark = pytest.mark.slow


def test_rate_and_quantile_from_two_scrapes(service):
    src = ScrapeSource([f"{service.url}/metrics"], interval_s=1.0,
                       replica_queries={"api": "assetsvc_workers"})
    now = dt.datetime.now(dt.UTC)
    try:
        # the first scrape happens on the first read; the burst lands between it and the second
        first = src.read(MetricRequest("api", "workers", "assetsvc_workers"), now=now)
        assert first.latest == 2
        sent = 150
        t = threading.Thread(target=burst, args=(service, sent))
        t.start()
        t.join()
        later = now + dt.timedelta(seconds=1)
        inc = src.read(MetricRequest("api", "n", 'increase(http_request_duration_seconds_count{route="/api/assets"})'),
                       now=later)
        rate = src.read(MetricRequest("api", "rps", "rate(http_request_duration_seconds_count)"), now=later)
        p95 = src.read(MetricRequest("api", "p95", "1000 * histogram_quantile(0.95, http_request_duration_seconds)"),
                       now=later)
    finally:
        src.close()
    assert inc.latest == sent  # every request sent between the scrapes, no more, no less
    assert rate.latest > 0
    assert 0 < p95.latest < 1000
    assert src.replicas("api") == 2


def test_unreachable_and_non_metrics_targets_are_no_data(service):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    now = dt.datetime.now(dt.UTC)
    src = ScrapeSource([f"http://127.0.0.1:{dead}/metrics"], interval_s=0.0, timeout_s=2)
    s1 = src.read(MetricRequest("api", "x", "assetsvc_workers"), now=now)
    src.close()
    assert s1.no_data and "scrape failed" in (s1.error or "")
    src = ScrapeSource([f"{service.url}/no-such-page"], interval_s=0.0)
    s2 = src.read(MetricRequest("api", "x", "assetsvc_workers"), now=now)
    src.close()
    assert s2.no_data and "HTTP 404" in (s2.error or "")


def test_scale_check_with_the_scrape_source(invoke, service, tmp_path):
    spec = spec_file(tmp_path, service.url)
    with Load(service):
        result = invoke("scale", "check", "--spec", str(spec), "--source", "scrape", "--interval", "1",
                        "--state-dir", str(tmp_path / "state"), "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert doc["resources"]["api"]["current"] == 2 and doc["resources"]["api"]["replicas_from"] == "source"
    assert doc["from"] == f"{service.url}/metrics"  # the default: the spec's service.url + /metrics
    rate, p95 = doc["decisions"]
    assert (rate["decision"], p95["decision"]) == ("hold", "hold")
    assert rate["value"] > 0 and 0 < p95["value"] < 60_000


def test_several_targets_are_summed_and_counted(service):
    url = f"{service.url}/metrics"
    src = ScrapeSource([url, url], interval_s=0.0, replica_queries={"api": "targets"})
    now = dt.datetime.now(dt.UTC)
    try:
        both = src.read(MetricRequest("api", "w", "assetsvc_workers"), now=now)
        count = src.read(MetricRequest("api", "n", "count(assetsvc_workers)"), now=now)
        avg = src.read(MetricRequest("api", "a", "avg(assetsvc_workers)"), now=now)
    finally:
        src.close()
    assert (both.latest, count.latest, avg.latest) == (4, 2, 2)
    assert src.replicas("api") == 2
