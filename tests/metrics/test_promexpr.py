"""The scrape expression language over real expositions (parsed by prometheus_client.parser)."""

from __future__ import annotations

import math

import pytest

from opskit.metrics import promexpr
from opskit.metrics.scrape import ScrapeError, parse_exposition

FIRST = """
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",route="/a"} 10
http_request_duration_seconds_bucket{le="0.5",route="/a"} 20
http_request_duration_seconds_bucket{le="1.0",route="/a"} 20
http_request_duration_seconds_bucket{le="+Inf",route="/a"} 20
http_request_duration_seconds_count{route="/a"} 20
http_request_duration_seconds_sum{route="/a"} 3.0
# TYPE ops_total counter
ops_total{status="ok"} 100
ops_total{status="error"} 5
# TYPE cpu_seconds_total counter
cpu_seconds_total 50
# TYPE workers gauge
workers 2
"""

SECOND = """
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",route="/a"} 10
http_request_duration_seconds_bucket{le="0.5",route="/a"} 70
http_request_duration_seconds_bucket{le="1.0",route="/a"} 110
http_request_duration_seconds_bucket{le="+Inf",route="/a"} 120
http_request_duration_seconds_count{route="/a"} 120
http_request_duration_seconds_sum{route="/a"} 40.0
http_request_duration_seconds_bucket{le="0.1",route="/b"} 4
http_request_duration_seconds_bucket{le="0.5",route="/b"} 4
http_request_duration_seconds_bucket{le="1.0",route="/b"} 4
http_request_duration_seconds_bucket{le="+Inf",route="/b"} 4
http_request_duration_seconds_count{route="/b"} 4
http_request_duration_seconds_sum{route="/b"} 0.2
# TYPE ops_total counter
ops_total{status="ok"} 300
ops_total{status="error"} 2
# TYPE cpu_seconds_total counter
cpu_seconds_total 55
# TYPE workers gauge
workers 4
"""


def snaps():
    return (promexpr.Snapshot(parse_exposition(FIRST), 100.0), promexpr.Snapshot(parse_exposition(SECOND), 110.0))


def ev(text: str) -> float:
    first, second = snaps()
    return promexpr.evaluate(promexpr.parse(text), first, second)


def test_instant_gauge_is_the_latest_scrape():
    assert ev("workers") == 4


def test_rate_is_per_second_between_scrapes():
    assert ev('rate(ops_total{status="ok"})') == pytest.approx(20.0)  # (300 - 100) / 10 s
    assert ev("100 * rate(cpu_seconds_total) / workers") == pytest.approx(12.5)


def test_counter_reset_counts_the_new_value():
    assert ev('increase(ops_total{status="error"})') == 2  # 5 -> 2: restarted, 2 since


def test_series_new_in_the_second_scrape_counts_from_zero():
    assert ev('increase(http_request_duration_seconds_count{route="/b"})') == 4


def test_histogram_quantile_interpolates_like_prometheus():
    # route /a between scrapes: 0 obs <= 0.1, 50 in (0.1, 0.5], 40 in (0.5, 1], 10 above: total 100
    # p50: rank 50 -> end of the (0.1, 0.5] bucket = 0.5; p90: rank 90 -> in (0.5,1]: 0.5 + 0.5 * 40/40 = 1.0
    assert ev('histogram_quantile(0.5, http_request_duration_seconds{route="/a"})') == pytest.approx(0.5)
    assert ev('histogram_quantile(0.7, http_request_duration_seconds{route="/a"})') == pytest.approx(0.75)
    # p95 falls in +Inf: Prometheus returns the highest finite bound
    assert ev('histogram_quantile(0.95, http_request_duration_seconds{route="/a"})') == pytest.approx(1.0)


def test_histogram_quantile_sums_series_by_le():
    # /a adds 100 obs, /b adds 4 obs <= 0.1: 104 obs, p10 rank 10.4 -> in (0.1, 0.5]: 0.1 + 0.4 * 6.4/50
    value = ev("histogram_quantile(0.1, http_request_duration_seconds)")
    assert value == pytest.approx(0.1 + 0.4 * (10.4 - 4) / 50)


def test_explicit_bucket_rate_form():
    a = ev('histogram_quantile(0.7, rate(http_request_duration_seconds_bucket{route="/a"}))')
    assert a == pytest.approx(0.75)


def test_aggregations_and_regex_matchers():
    assert ev('count(ops_total)') == 2
    assert ev('max(rate(ops_total))') == pytest.approx(20.0)
    assert ev('sum(ops_total{status=~"ok|error"})') == 302
    assert ev('ops_total{status!="ok"}') == 2


def test_division_by_zero_is_nan_not_zero():
    assert math.isnan(ev("workers / (workers - 4)"))


@pytest.mark.parametrize(("text", "why"), [
    ("no_such_metric", "no series matched no_such_metric"),
    ('histogram_quantile(0.5, ops_total)', "no histogram buckets"),
])
def test_no_data_cases(text, why):
    with pytest.raises(promexpr.NoData, match=why):
        ev(text)


def test_quantile_with_no_new_observations_is_no_data():
    same = promexpr.Snapshot(parse_exposition(FIRST), 100.0)
    later = promexpr.Snapshot(parse_exposition(FIRST), 105.0)
    with pytest.raises(promexpr.NoData, match="no observations"):
        promexpr.evaluate(promexpr.parse("histogram_quantile(0.9, http_request_duration_seconds)"), same, later)


def test_rate_needs_two_scrapes():
    _, second = snaps()
    with pytest.raises(promexpr.NoData, match="two scrapes"):
        promexpr.evaluate(promexpr.parse("rate(ops_total)"), None, second)
    assert promexpr.needs_two_scrapes(promexpr.parse("1 + 100 * rate(x)"))
    assert not promexpr.needs_two_scrapes(promexpr.parse("avg(workers) * 2"))


@pytest.mark.parametrize("text", ["rate(", "foo(x)", "histogram_quantile(2, x)", "rate(1)", "x{a=1}", "x +",
                                  "sum(x, y)", "x $ y"])
def test_bad_expressions_are_errors(text):
    with pytest.raises(promexpr.ExprError):
        promexpr.parse(text)


def test_not_an_exposition():
    with pytest.raises(ScrapeError):
        parse_exposition("<html>this is not metrics</html>\n{")
