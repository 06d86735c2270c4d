"""The resource pipeline: max over metrics, missing metrics, stabilization, policies, bounds, decisions."""

from __future__ import annotations

import datetime as dt

from opskit.metrics.base import Series
from opskit.scaling.evaluate import evaluate
from opskit.scaling.model import Recommendation
from opskit.spec.schema import Resource

from .conftest import NOW, series, th


def run(thresholds, values, *, current=3, res=None, history=()):
    ss = [v if isinstance(v, Series) else series([v], metric=t.metric, resource=t.resource)
          for t, v in zip(thresholds, values, strict=True)]
    resources = res or {"api": Resource(min=1, max=20)}
    return evaluate(thresholds, ss, now=NOW, resources=resources, replicas={"api": current}, history=history)


def test_facts_case_3_replicas_50_percent_target_30_gives_5():
    ev = run([th(target="30%")], [50], current=3)
    r = ev.resources["api"]
    assert (r.decision, r.current, r.recommended) == ("scale_up", 3, 5)
    assert ev.should_scale


def test_facts_case_5_replicas_28_percent_target_50_gives_3():
    r = run([th(target="50%")], [28], current=5).resources["api"]
    assert (r.decision, r.recommended) == ("scale_down", 3)


def test_facts_case_tolerance_keeps_the_count():
    r = run([th(target="100%")], [102], current=4).resources["api"]
    assert (r.decision, r.recommended) == ("hold", 4)


def test_facts_case_stabilization_window():
    history = [Recommendation("api", 4, NOW - dt.timedelta(minutes=2)),
               Recommendation("api", 5, NOW - dt.timedelta(minutes=1))]
    # new desired 3 (5 replicas at 30% of a 50% target) -> held at 5
    ev = run([th(target="50%")], [30], current=5, history=history)
    r = ev.resources["api"]
    assert (r.desired, r.recommended, r.decision, r.limited_by) == (3, 5, "hold", "stabilization")
    assert "stabilization" in r.reason
    # the raw desired count is what is remembered, as the HPA does
    assert ev.recommendations == (Recommendation("api", 3, NOW),)


def test_several_metrics_take_the_max_proposal():
    ths = [th(metric="cpu_utilization", target="50%"), th(metric="rps_per_pod", target=100)]
    r = run(ths, [50, 250], current=4).resources["api"]  # cpu: 4 (hold), rps: ceil(4 x 2.5) = 10
    assert (r.desired, r.recommended, r.decision) == (10, 8, "scale_up")  # +4 pods / +100% per period
    assert r.limited_by == "scale_up_policy"
    assert "rps_per_pod" in r.reason and "max of 2 metrics" in r.reason


def test_a_missing_metric_never_allows_a_scale_down():
    ths = [th(metric="cpu_utilization", target="50%"), th(metric="memory_utilization", target="50%")]
    missing = Series("api", "memory_utilization", error="empty result (no series matched)")
    r = run(ths, [10, missing], current=6).resources["api"]
    assert (r.recommended, r.decision) == (6, "hold")
    assert "memory_utilization" in r.reason


def test_a_missing_metric_does_not_stop_a_scale_up():
    ths = [th(metric="cpu_utilization", target="50%"), th(metric="memory_utilization", target="50%")]
    missing = Series("api", "memory_utilization", error="timed out")
    r = run(ths, [100, missing], current=3).resources["api"]
    assert (r.recommended, r.decision) == (6, "scale_up")


def test_all_metrics_missing_is_no_data():
    ev = run([th(target="50%")], [Series("api", "cpu_utilization", error="connection refused")])
    assert ev.resources["api"].decision == "no_data"
    assert ev.all_no_data and not ev.should_scale
    assert ev.recommendations == ()


def test_clamped_to_max_still_says_scale_up_with_the_action():
    res = {"api": Resource(min=2, max=4)}
    r = run([th(scale_up="70%", scale_down="20%", action="increase instance size")], [95], current=4,
            res=res).resources["api"]
    assert (r.decision, r.recommended, r.limited_by) == ("scale_up", 4, "max")
    assert "increase instance size" in r.reason


def test_clamped_to_min():
    res = {"api": Resource(min=2, max=10)}
    r = run([th(target="50%")], [5], current=4, res=res).resources["api"]
    assert (r.recommended, r.decision, r.limited_by) == (2, "scale_down", "min")


def test_threshold_rows_recommend_towards_the_band_midpoint():
    r = run([th(scale_up="70%", scale_down="20%")], [90], current=4).resources["api"]
    assert (r.decision, r.recommended) == ("scale_up", 8)
    r = run([th(scale_up="70%", scale_down="20%")], [10], current=6).resources["api"]
    assert (r.decision, r.recommended) == ("scale_down", 2)


def test_pending_threshold_holds_and_says_so():
    t = th(scale_up="70%", scale_down="20%", **{"for": "5m"})
    r = run([t], [series([80] * 3)], current=3).resources["api"]
    assert r.decision == "hold" and "pending" in r.reason


def test_one_metric_high_other_in_band_scales_up_and_binds_the_playbook():
    ths = [th(metric="cpu_utilization", scale_up="70%", scale_down="20%", playbook="api-horizontal-scale"),
           th(metric="memory_utilization", scale_up="75%", scale_down="30%", playbook="api-vertical-scale")]
    r = run(ths, [90, 50], current=3).resources["api"]
    assert (r.decision, r.playbook) == ("scale_up", "api-horizontal-scale")


def test_scale_down_needs_every_metric_to_agree():
    ths = [th(metric="cpu_utilization", scale_up="70%", scale_down="20%"),
           th(metric="memory_utilization", scale_up="75%", scale_down="30%")]
    assert run(ths, [5, 50], current=6).resources["api"].decision == "hold"
    assert run(ths, [5, 10], current=6).resources["api"].decision == "scale_down"


def test_unknown_replicas_gives_a_direction_without_a_count():
    ev = evaluate([th(target="30%")], [series([90])], now=NOW, resources={}, replicas={"api": None})
    r = ev.resources["api"]
    assert (r.decision, r.current, r.recommended) == ("scale_up", None, None)
    assert "current" in r.reason


def test_resources_without_a_spec_entry_use_defaults():
    ev = evaluate([th(target="30%")], [series([50])], now=NOW, resources={}, replicas={"api": 3})
    assert (ev.resources["api"].recommended, ev.resources["api"].max) == (5, 10)
