"""The scrape expression language over real expositions (parsed by prometheus_client.parser)."""

from __future__ import annotations

import math

import pytest

from opskit.alerts.exprmodel import parse
from opskit.metrics.scrape import NoData, ScrapeError, Snapshot, evaluate, needs_two_scrapes, parse_exposition


def histogram(route: str, counts: tuple[int, int, int, int], total: float) -> list[str]:
    """One route's series of http_request_duration_seconds: cumulative counts at 0.1, 0.5, 1.0, +Inf."""
    name = "http_request_duration_seconds"
    return [*(f'{name}_bucket{{le="{le}",route="{route}"}} {n}' for le, n in zip(("0.1", "0.5", "1.0", "+Inf"),
                                                                                   counts, strict=True)),
            f'{name}_count{{route="{route}"}} {counts[-1]}', f'{name}_sum{{route="{route}"}} {total}']


def exposition(histograms: list[str], ok: int, error: int, cpu: int, workers: int) -> str:
    return "\n".join(["# TYPE http_request_duration_seconds histogram", *histograms,
                      "# TYPE ops_total counter", f'ops_total{{status="ok"}} {ok}',
                      f'ops_total{{status="error"}} {error}',
                      "# TYPE cpu_seconds_total counter", f"cpu_seconds_total {cpu}",
                      "# TYPE workers gauge", f"workers {workers}", ""])


FIRST = exposition(histogram("/a", (10, 20, 20, 20), 3.0), ok=100, error=5, cpu=50, workers=2)
SECOND = exposition(histogram("/a", (10, 70, 110, 120), 40.0) + histogram("/b", (4, 4, 4, 4), 0.2),
                    ok=300, error=2, cpu=55, workers=4)


def snaps():
    return Snapshot(parse_exposition(FIRST), 100.0), Snapshot(parse_exposition(SECOND), 110.0)


def ev(text: str) -> float:
    first, second = snaps()
    return evaluate(parse(text, scrape=True), first, second)


# route /a between scrapes: 0 obs <= 0.1, 50 in (0.1, 0.5], 40 in (0.5, 1], 10 above: total 100
@pytest.mark.parametrize(("text", "value"), [
    ("workers", 4),  # an instant gauge is the latest scrape
    ('rate(ops_total{status="ok"})', 20.0),  # per second between the scrapes: (300 - 100) / 10 s
    ("100 * rate(cpu_seconds_total) / workers", 12.5),
    ('increase(ops_total{status="error"})', 2),  # 5 -> 2: a reset (restarted), 2 since
    ('increase(http_request_duration_seconds_count{route="/b"})', 4),  # new in the second scrape: from 0
    # p50: rank 50 -> the end of the (0.1, 0.5] bucket; p70: rank 70 -> in (0.5, 1]: 0.5 + 0.5 * 20/40
    ('histogram_quantile(0.5, http_request_duration_seconds{route="/a"})', 0.5),
    ('histogram_quantile(0.7, http_request_duration_seconds{route="/a"})', 0.75),
    ('histogram_quantile(0.95, http_request_duration_seconds{route="/a"})', 1.0),  # in +Inf: the highest bound
    # /a adds 100 obs, /b adds 4 obs <= 0.1: summed by le, 104 obs, p10 rank 10.4 -> in (0.1, 0.5]
    ("histogram_quantile(0.1, http_request_duration_seconds)", 0.1 + 0.4 * (10.4 - 4) / 50),
    ('histogram_quantile(0.7, rate(http_request_duration_seconds_bucket{route="/a"}))', 0.75),  # explicit buckets
    ("count(ops_total)", 2),
    ("max(rate(ops_total))", 20.0),
    ('sum(ops_total{status=~"ok|error"})', 302),
    ('ops_total{status!="ok"}', 2),
])
def test_values_like_prometheus(text, value):
    assert ev(text) == pytest.approx(value)


def test_division_by_zero_is_nan_not_zero():
    assert math.isnan(ev("workers / (workers - 4)"))


@pytest.mark.parametrize(("text", "why"), [
    ("no_such_metric", "no series matched no_such_metric"),
    ('histogram_quantile(0.5, ops_total)', "no histogram buckets"),
])
def test_no_data_cases(text, why):
    with pytest.raises(NoData, match=why):
        ev(text)


def test_quantile_with_no_new_observations_is_no_data():
    same = Snapshot(parse_exposition(FIRST), 100.0)
    later = Snapshot(parse_exposition(FIRST), 105.0)
    with pytest.raises(NoData, match="no observations"):
        evaluate(parse("histogram_quantile(0.9, http_request_duration_seconds)", scrape=True), same, later)


def test_rate_needs_two_scrapes():
    _, second = snaps()
    with pytest.raises(NoData, match="two scrapes"):
        evaluate(parse("rate(ops_total)", scrape=True), None, second)
    assert needs_two_scrapes(parse("1 + 100 * rate(x)", scrape=True))
    assert not needs_two_scrapes(parse("avg(workers) * 2", scrape=True))


def test_not_an_exposition():
    with pytest.raises(ScrapeError):
        parse_exposition("<html>this is not metrics</html>\n{")
