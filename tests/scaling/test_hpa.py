"""HPA semantics (facts.md, kubernetes pkg/controller/podautoscaler) on the pure replica arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest

from opskit.scaling import hpa
from opskit.spec.schema import Resource, ScalingPolicy

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)


def ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


@pytest.mark.parametrize(("current", "value", "target", "expected"), [
    (3, 50, 30, 5),      # facts.md: 3 replicas at 50% CPU, target 30% -> 5
    (5, 28, 50, 3),      # facts.md: 5 replicas at 28%, target 50% -> 3
    (4, 102, 100, 4),    # facts.md: 102% of target -> unchanged (tolerance)
    (4, 110, 100, 4),    # exactly at the tolerance edge: |1 - 1.1| <= 0.1 keeps the count
    (4, 90, 100, 4),
    (4, 111, 100, 5),    # just past the tolerance: ceil(4 x 1.11) = 5
    (4, 89, 100, 4),     # ceil(4 x 0.89) = ceil(3.56) = 4: outside tolerance, still 4
    (10, 30, 60, 5),
    (1, 1000, 100, 10),
    (7, 0, 50, 0),       # no load at all: the ratio alone asks for 0 (the bounds clamp later)
])
def test_target_proposal(current, value, target, expected):
    assert hpa.target_proposal(current, value, target) == expected


def test_tolerance_is_a_parameter():
    assert hpa.target_proposal(4, 104, 100, tolerance=0.03) == 5
    assert hpa.target_proposal(4, 104, 100, tolerance=0.05) == 4


def test_stabilization_facts_case():
    # facts.md: window holding {4 @ -2 min, 5 @ -1 min}, new desired 3 -> 5
    history = [(ago(120), 4), (ago(60), 5)]
    assert hpa.stabilize(5, 3, history, NOW, up_window_s=0, down_window_s=300) == 5
    res = Resource(min=1, max=10)
    assert hpa.normalize(5, 3, res, history, NOW).replicas == 5
    assert hpa.normalize(5, 3, res, history, NOW).limited_by == "stabilization"


def test_stabilization_only_counts_recommendations_inside_the_window():
    history = [(ago(400), 9), (ago(301), 8), (ago(60), 4)]
    assert hpa.stabilize(6, 3, history, NOW, up_window_s=0, down_window_s=300) == 4
    # a recommendation exactly at the window's start is outside it (the HPA uses After(cutoff))
    assert hpa.stabilize(6, 3, [(ago(300), 6)], NOW, up_window_s=0, down_window_s=300) == 3


def test_stabilization_never_turns_a_scale_down_into_a_scale_up():
    # current 3, desired 3, the window once wanted 5: the HPA keeps 3 (it only slows scale-downs)
    assert hpa.stabilize(3, 3, [(ago(60), 5)], NOW, up_window_s=0, down_window_s=300) == 3
    assert hpa.stabilize(4, 3, [(ago(60), 5)], NOW, up_window_s=0, down_window_s=300) == 4


def test_scale_up_is_immediate_by_default_and_windowed_when_configured():
    history = [(ago(30), 3), (ago(10), 8)]
    assert hpa.stabilize(3, 8, history, NOW, up_window_s=0, down_window_s=300) == 8
    # a 60s scale-up window: no higher than the lowest recommendation within it
    assert hpa.stabilize(3, 8, history, NOW, up_window_s=60, down_window_s=300) == 3
    assert hpa.stabilize(2, 8, history, NOW, up_window_s=60, down_window_s=300) == 3


def test_recommendations_from_the_future_of_the_clock_are_ignored():
    assert hpa.stabilize(5, 3, [(NOW + dt.timedelta(seconds=30), 9)], NOW, up_window_s=0,
                         down_window_s=300) == 3


@pytest.mark.parametrize(("current", "expected"), [(1, 5), (3, 7), (4, 8), (5, 10), (10, 20)])
def test_default_scale_up_policies_take_the_larger_of_4_pods_and_100_percent(current, expected):
    assert hpa.scale_up_limit(current, Resource().scale_up_policies) == expected


def test_scale_up_select_min_and_disabled():
    policies = Resource().scale_up_policies
    assert hpa.scale_up_limit(10, policies, "min") == 14
    assert hpa.scale_up_limit(10, policies, "disabled") == 10


def test_scale_down_limits():
    assert hpa.scale_down_limit(5, Resource().scale_down_policies) == 0  # 100% per period: anything goes
    half = [ScalingPolicy(type="percent", value=50)]
    assert hpa.scale_down_limit(5, half) == 2  # HPA truncates: int(5 x 0.5)
    mixed = [ScalingPolicy(type="pods", value=1), ScalingPolicy(type="percent", value=50)]
    assert hpa.scale_down_limit(8, mixed, "max") == 4  # the policy allowing the most change
    assert hpa.scale_down_limit(8, mixed, "min") == 7
    assert hpa.scale_down_limit(8, mixed, "disabled") == 8


def test_normalize_rate_limits_a_big_jump():
    res = Resource(min=1, max=100)
    n = hpa.normalize(2, 40, res, [], NOW)
    assert (n.replicas, n.limited_by) == (6, "scale_up_policy")  # max(2 + 4, 2 x 2)


def test_normalize_clamps_to_max_and_min():
    res = Resource(min=2, max=10)
    assert (hpa.normalize(8, 14, res, [], NOW).replicas, hpa.normalize(8, 14, res, [], NOW).limited_by) == (10, "max")
    assert (hpa.normalize(5, 1, res, [], NOW).replicas, hpa.normalize(5, 1, res, [], NOW).limited_by) == (2, "min")


def test_normalize_brings_an_out_of_bounds_count_back_inside():
    res = Resource(min=2, max=10)
    assert hpa.normalize(12, 12, res, [], NOW).replicas == 10
    assert hpa.normalize(1, 1, res, [], NOW).replicas == 2


def test_scale_down_policy_limits_the_step():
    res = Resource(min=1, max=20, scale_down_policies=[ScalingPolicy(type="pods", value=2)])
    n = hpa.normalize(10, 3, res, [], NOW)
    assert (n.replicas, n.limited_by) == (8, "scale_down_policy")


def test_band_proposal_moves_towards_the_midpoint():
    # band 20..70, midpoint 45: 4 replicas at 90% -> ceil(4 x 90 / 45) = 8
    assert hpa.band_proposal(4, 90, "scale_up", 70, 20) == 8
    # just above the limit still moves one step
    assert hpa.band_proposal(10, 71, "scale_up", 70, 20) == 16
    assert hpa.band_proposal(3, 71, "scale_up", 70, 60) == 4
    # 6 replicas at 10% -> ceil(6 x 10 / 45) = 2
    assert hpa.band_proposal(6, 10, "scale_down", 70, 20) == 2
    # at least one step down
    assert hpa.band_proposal(2, 19, "scale_down", 70, 20) == 1
    assert hpa.band_proposal(3, 50, "hold", 70, 20) == 3
