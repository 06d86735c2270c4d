"""The prometheus source against a live Prometheus started by `opskit monitor up`, scraping the real
asset service while real requests arrive; and its failure modes against real loopback servers."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from opskit.metrics.base import MetricRequest
from opskit.metrics.prometheus import PrometheusSource

from .conftest import Load, burst, poll

pytestmark = pytest.mark.slow

COUNT = 'sum(http_request_duration_seconds_count{job="asset-service",route="/api/assets"})'


def test_instant_and_range_queries_see_the_requests(service, prometheus):
    src = PrometheusSource(prometheus["url"], timeout_s=5)

    def total() -> float:
        s = src.read(MetricRequest("api", "n", COUNT), now=dt.datetime.now(dt.UTC))
        return s.latest or 0.0

    poll(lambda: src.read(MetricRequest("api", "up", 'up{job="asset-service"}'),
                          now=dt.datetime.now(dt.UTC)).latest == 1)
    before = total()
    burst(service, 120)
    # Prometheus sees the requests at its next scrape (every 1 s)
    after = poll(lambda: (v := total()) >= before + 120 and v)
    assert after == before + 120  # exactly the requests sent: nothing else hits that route
    up_range = MetricRequest("api", "up", 'up{job="asset-service"}', window_s=10, step_s=1)
    rng = poll(lambda: len((r := src.read(up_range, now=dt.datetime.now(dt.UTC))).samples) >= 3 and r)
    assert [s.at for s in rng.samples] == sorted(s.at for s in rng.samples)
    assert {s.value for s in rng.samples} == {1.0}
    steps = {(b.at - a.at).total_seconds() for a, b in zip(rng.samples, rng.samples[1:], strict=False)}
    assert steps == {1.0}
    assert src.replicas("api") is None  # no replicas query given to this source
    src.close()


def test_rate_and_p95_under_load(service, prometheus):
    src = PrometheusSource(prometheus["url"], timeout_s=5, replica_queries={
        "api": 'sum(assetsvc_workers{job="asset-service"})'})
    rate_q = 'sum(rate(http_request_duration_seconds_count{job="asset-service"}[5s]))'
    p95_q = ('1000 * histogram_quantile(0.95, sum by (le) '
             '(rate(http_request_duration_seconds_bucket{job="asset-service"}[5s])))')
    with Load(service):
        rate = poll(lambda: (s := src.read(MetricRequest("api", "rps", rate_q), now=dt.datetime.now(dt.UTC)))
                    .latest and s.latest > 5 and s)
        p95 = src.read(MetricRequest("api", "p95", p95_q), now=dt.datetime.now(dt.UTC))
    assert rate.latest > 5
    assert not p95.no_data and 0 < p95.latest < 1000
    assert src.replicas("api") == 2
    src.close()


@pytest.mark.parametrize(("query", "why"), [
    ("no_such_metric_anywhere", "empty result"),
    ("0/0", "NaN"),
    ('histogram_quantile(0.95, rate(no_such_bucket[1m]))', "empty result"),
    ("sum(rate(up[5m]", "bad_data"),
    ('"a string"', "unsupported result type"),
])
def test_empty_nan_and_errors_are_no_data_with_the_query(prometheus, query, why):
    with PrometheusSource(prometheus["url"], timeout_s=5) as src:
        s = src.read(MetricRequest("api", "x", query), now=dt.datetime.now(dt.UTC))
    assert s.no_data and s.query == query and why in (s.error or ""), s


def test_scale_check_against_the_live_prometheus(invoke, service, prometheus, tmp_path):
    with Load(service) as load:
        poll(lambda: load.sent > 50)
        with PrometheusSource(prometheus["url"]) as src:
            poll(lambda: (src.read(MetricRequest("api", "rps", 'sum(rate(http_request_duration_seconds_count'
                                                               '{job="asset-service"}[5s]))'),
                                   now=dt.datetime.now(dt.UTC)).latest or 0) > 1)
        result = invoke("scale", "check", "--spec", str(prometheus["spec"]), "--prometheus", prometheus["url"],
                        "--state-dir", str(tmp_path), "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    doc = json.loads(result.stdout)
    assert [d["decision"] for d in doc["decisions"]] == ["hold", "hold"]
    assert all(d["value"] > 0 for d in doc["decisions"])
    assert doc["resources"]["api"]["current"] == 2


def test_default_location_is_the_prometheus_monitor_up_started(service, prometheus):
    from opskit.metrics.sources import make_source
    from opskit.spec import load_spec

    src = make_source("prometheus", None, load_spec(prometheus["spec"]), state_dir=prometheus["state_dir"])
    assert src.url == prometheus["url"]  # type: ignore[attr-defined]
    src.close()  # type: ignore[attr-defined]


class _Slow(http.server.BaseHTTPRequestHandler):
    delay = 0.0
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        if self.delay:
            self.server.release.wait(self.delay)  # type: ignore[attr-defined]
        body = b'{"status":"error","errorType":"unavailable","error":"overloaded"}'
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def stand_in() -> Iterator[callable]:
    servers = []

    def start(delay: float = 0.0, status: int = 200) -> str:
        handler = type("H", (_Slow,), {"delay": delay, "status": status})
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        srv.release = threading.Event()  # type: ignore[attr-defined]
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_address[1]}"

    yield start
    for srv in servers:
        srv.release.set()  # type: ignore[attr-defined]
        srv.shutdown()
        srv.server_close()


def test_timeout_is_no_data(stand_in):
    url = stand_in(delay=30)
    started = time.monotonic()
    with PrometheusSource(url, timeout_s=0.3) as src:
        s = src.read(MetricRequest("api", "x", "up"), now=dt.datetime.now(dt.UTC))
    assert s.no_data and "timed out" in (s.error or "") and s.query == "up"
    assert time.monotonic() - started < 5


def test_http_error_is_no_data_with_prometheus_message(stand_in):
    with PrometheusSource(stand_in(status=503)) as src:
        s = src.read(MetricRequest("api", "x", "up"), now=dt.datetime.now(dt.UTC))
    assert s.no_data and "unavailable: overloaded" in (s.error or "")
