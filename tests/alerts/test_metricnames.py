"""Metric names read by rule expressions, as `alerts render --check-metrics` compares them (pure)."""

from __future__ import annotations

from opskit.alerts.metricnames import MetricRef, exported, names_in, verdict


def test_names_in_finds_selectors_not_functions_labels_or_recorded_series():
    expr = ('sum(rate(http_request_duration_seconds_bucket{job="asset-service",route!~"/metrics|/health",'
            'le=~"0.2|0.2"}[5m])) / sum by (le, route) (rate(http_requests_total[5m])) '
            '+ slo:sli_error:ratio_rate1h{slo="x"} or vector(0) and on() (up{job="asset-service"} == 1) '
            "+ 1e3 * redis_connected_clients offset 5m")
    assert names_in(expr) == [("http_request_duration_seconds_bucket", "asset-service"),
                              ("http_requests_total", None), ("up", "asset-service"),
                              ("redis_connected_clients", None)]


def test_samples_of_an_exported_family_count_as_exported():
    names = {"http_request_duration_seconds", "asset_operations"}
    assert exported("http_request_duration_seconds_bucket", names)
    assert exported("asset_operations_total", names)
    assert exported("up", set())  # Prometheus makes it for every target
    assert not exported("http_requests_total", names)


def test_pages_vouch_for_the_service_job_a_server_for_every_job():
    refs = [MetricRef("t.rules.yml", "A", "http_requests_total", "svc"),
            MetricRef("t.rules.yml", "B", "redis_connected_clients", None),
            MetricRef("t.rules.yml", "C", "node_cpu_seconds_total", "database")]
    refused, noted = verdict(refs, set(), "svc", server=False)
    assert [r.rule for r in refused] == ["A"] and [r.rule for r in noted] == ["B"]
    refused, noted = verdict(refs, set(), "svc", server=True)
    assert [r.rule for r in refused] == ["A", "B", "C"] and noted == []


def test_braces_inside_a_label_value_do_not_end_the_selector():
    """The get-asset SLO's route is /api/assets/{id}: its label matchers are not metric names."""
    expr = ('(sum(rate(http_request_duration_seconds_count{job="asset-service",route="/api/assets/{id}",'
            'status_code=~"5.."}[5m])) or vector(0))')
    assert names_in(expr) == [("http_request_duration_seconds_count", "asset-service")]
