"""Rate limits per tier and /metrics, against the shared two-worker service."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from opskit.assetsvc.ratelimit import take


def test_token_bucket_arithmetic():
    d, left = take(tokens=1.0, last=0.0, now=0.0, capacity=100, window_s=3600)
    assert d.allowed and left == 0.0 and d.remaining == 0
    d, left = take(tokens=0.0, last=0.0, now=0.0, capacity=100, window_s=3600)
    assert not d.allowed and d.retry_after_s == 36  # one request per 36 s refills
    d, _ = take(tokens=0.0, last=0.0, now=36.0, capacity=100, window_s=3600)
    assert d.allowed
    d, left = take(tokens=0.0, last=0.0, now=10 * 3600.0, capacity=100, window_s=3600)
    assert d.allowed and left == 99.0  # never more than a full bucket


@pytest.mark.slow
def test_free_tier_is_limited_with_retry_after_and_internal_is_not(service, new_key):
    free = new_key("company-free", "free")  # the service runs with free=5/h
    headers = {"Authorization": f"Bearer {free}"}
    # no keep-alive: the requests spread over both workers, which share one bucket per key
    with httpx.Client(base_url=service.url, headers=headers, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        statuses = [c.get("/api/assets").status_code for _ in range(5)]
        assert statuses == [200] * 5
        r = c.get("/api/assets")
        assert r.status_code == 429
        assert 700 <= int(r.headers["retry-after"]) <= 720  # 3600 s / 5 requests, less what refilled since
        assert r.headers["x-ratelimit-limit"] == "5" and r.headers["x-ratelimit-remaining"] == "0"
        assert "free tier" in r.json()["error"]
    # the limit is per key and shared by both workers: a second free key starts full
    other = new_key("company-free", "free")
    assert httpx.get(f"{service.url}/api/assets", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.key}"}) as c:
        assert all(c.get("/api/assets?limit=1").status_code == 200 for _ in range(60))


def _families(url: str) -> dict:
    text = httpx.get(f"{url}/metrics").text
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(family, name: str | None = None, **labels) -> float:
    return sum(s.value for s in family.samples
               if (name is None or s.name == name) and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.mark.slow
def test_metrics_are_merged_across_workers_and_use_route_templates(service, api_a):
    asset = api_a.post("/api/assets", json={"address": "m", "latitude": 1, "longitude": 1}).json()
    before = _families(service.url)
    seen_pids = set()
    for _ in range(40):  # fresh connections, so both workers answer some of them
        r = httpx.get(f"{service.url}/api/assets/{asset['id']}", headers={"Authorization": f"Bearer {service.key}"})
        assert r.status_code == 200
        seen_pids.add(httpx.get(f"{service.url}/health").json()["worker_pid"])
    count = dict(name="http_request_duration_seconds_count", method="GET", route="/api/assets/{id}",
                 status_code="200")
    get_ok = dict(name="asset_operations_total", operation="get", status="success")
    old = _value(before["http_request_duration_seconds"], **count)
    old_ops = _value(before["asset_operations"], **get_ok)
    # a worker records a request just after answering it: poll briefly for the last one
    after = _poll(service.url, lambda f: _value(f["http_request_duration_seconds"], **count) - old >= 40
                  and _value(f["asset_operations"], **get_ok) - old_ops >= 40)

    hist = after["http_request_duration_seconds"]
    assert _value(hist, **count) - old == 40
    routes = {s.labels["route"] for s in hist.samples}
    assert "/api/assets/{id}" in routes and not any(r.startswith("/api/assets/1") for r in routes)
    bounds = sorted({float(s.labels["le"]) for s in hist.samples if s.name.endswith("_bucket")})
    assert bounds[:-1] == [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10]
    assert bounds[-1] == float("inf")

    ops = after["asset_operations"]
    assert {"operation", "status"} == set(ops.samples[0].labels)  # no company_id label by default
    assert _value(ops, **get_ok) - old_ops == 40
    assert _value(after["assetsvc_workers"]) == 2
    assert _value(after["assetsvc_assets_stored"]) >= 1
    assert _value(after["assetsvc_storage_bytes"]) > 0
    assert _value(after["process_cpu_seconds"]) > 0
    assert len(seen_pids) == 2  # both workers served, and the counts above still add up


@pytest.mark.slow
def test_list_and_health_are_counted_exactly_and_answer_like_every_route(service, api_a):
    """GET /api/assets and /health skip Starlette's router: the same answers, headers and exact metrics."""
    auth = {"Authorization": f"Bearer {service.key}"}
    before = _families(service.url)
    for _ in range(20):  # fresh connections: both workers answer
        assert httpx.get(f"{service.url}/api/assets?limit=2", headers=auth).json()["data"] is not None
        bad = httpx.get(f"{service.url}/api/assets?limit=0", headers=auth)
        assert bad.status_code == 400 and bad.headers["content-type"] == "application/json"
        assert "limit" in bad.json()["error"]
        assert httpx.get(f"{service.url}/health").json()["status"] == "ok"
    missing = httpx.get(f"{service.url}/api/assets")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{service.url}/health").status_code == 405  # other methods still go through the router

    def grew(f, route, status):
        hist = f["http_request_duration_seconds"]
        spec = dict(name="http_request_duration_seconds_count", method="GET", route=route, status_code=status)
        return _value(hist, **spec) - _value(before["http_request_duration_seconds"], **spec)

    def ops(f, status):
        return (_value(f["asset_operations"], operation="list", status=status)
                - _value(before["asset_operations"], operation="list", status=status))

    after = _poll(service.url, lambda f: grew(f, "/health", "200") >= 20 and ops(f, "client_error") >= 21)
    assert grew(after, "/api/assets", "200") == 20
    assert grew(after, "/api/assets", "400") == 20
    assert grew(after, "/api/assets", "401") == 1
    assert grew(after, "/health", "200") == 20
    assert ops(after, "success") == 20 and ops(after, "client_error") == 21


@pytest.mark.slow
def test_upload_processing_is_timed_by_type_and_size(service, api_c):
    api_c.post("/api/assets/upload", content=b"address,latitude,longitude\na,1,2\n",
               headers={"Content-Type": "text/csv"})
    labels = dict(name="file_processing_duration_seconds_count", file_type="csv", file_size_bucket="lt_1mb")
    _poll(service.url, lambda f: _value(f["file_processing_duration_seconds"], **labels) >= 1)


def _poll(url: str, ok, timeout: float = 10.0) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while True:
        families = _families(url)
        if ok(families):
            return families
        assert time.monotonic() < deadline, "metrics never showed the expected samples"
        time.sleep(0.05)
