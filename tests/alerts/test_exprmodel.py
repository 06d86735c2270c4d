"""The PromQL subset opskit models: its parser in both dialects, bucket interpolation, and the model of
a query on a unit test's synthetic series (the scrape source's evaluation: tests/metrics/test_scrape_expr.py)."""

from __future__ import annotations

import re

import pytest

from opskit.alerts.exprmodel import ExprError, bucket_quantile, evaluate, leaves, parse


def test_bucket_quantile_interpolates_like_prometheus():
    inf = float("inf")
    assert bucket_quantile(0.95, {0.25: 0, 0.5: 10, 1.0: 10, inf: 10}) == pytest.approx(0.4875)
    assert bucket_quantile(0.5, {0.1: 10, 1.0: 10, inf: 10}) == pytest.approx(0.05)  # first bucket from 0
    assert bucket_quantile(0.9, {0.1: 0, 1.0: 0, inf: 10}) == 1.0  # in +Inf: the highest finite bound


def test_the_model_matches_one_to_one_like_prometheus():
    node = parse('100 * used{job="redis"} / cap')
    parts = leaves(node)
    # both series carry job="redis", so the division matches one to one as on a real exporter
    assert all(p.labels == {"job": "redis"} for p in parts)
    values = {p.selector.key: (80.0 if p.selector.name == "used" else 200.0, p.labels) for p in parts}
    assert evaluate(node, values).value == pytest.approx(40.0)
    odd = parse('a{job="x"} / b{job="y"}')  # two jobs: Prometheus finds no pair, the model says so
    with pytest.raises(ExprError):
        evaluate(odd, {p.selector.key: (1.0, p.labels) for p in leaves(odd)})


@pytest.mark.parametrize("scrape", [False, True], ids=["promql", "scrape"])
@pytest.mark.parametrize("text", ["rate(", "foo(x)", "histogram_quantile(2, x)", "rate(1)", "x{a=1}", "x +",
                                  "sum(x, y)", "x $ y"])
def test_bad_expressions_are_errors(text, scrape):
    with pytest.raises(ExprError):
        parse(text, scrape=scrape)


@pytest.mark.parametrize("text", ["rate(x[5m])", "sum by (job) (x)", "sum(x) without (le)", "irate(x[1m])"])
def test_the_scrape_dialect_has_no_ranges_groupings_or_irate(text):
    parse(text)  # as a rule writes it; a scrape's rates are between its two scrapes
    with pytest.raises(ExprError, match=re.escape(f"in {text!r}") + "$"):
        parse(text, scrape=True)
