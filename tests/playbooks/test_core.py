"""Pure cores: comparisons, maintenance windows, references, masking."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from opskit.playbooks.checks import in_window, parse_comparison
from opskit.playbooks.journal import Masker
from opskit.playbooks.refs import Deferred, RefError, Resolver
from opskit.playbooks.schema import Window

R = Resolver({"workers": 2, "ms": 500, "name": "api", "token": "tok-123"}, frozenset({"token"}),
             captures={"scale": {"previous_workers": 1, "json": {"items": [{"id": "x"}]}}})


@pytest.mark.parametrize("text, value, verdict", [
    ("> 500", 501.0, "pass"), ("> 500", 500.0, "fail"), ("result >= ${params.workers}", 2.0, "pass"),
    ("< 500ms", 499.0, "pass"), ("== 2", 2.0, "pass"), ("!= 2", 2.0, "fail"), ("<= 70%", 70.0, "pass"),
    ("> 1", math.nan, "inconclusive"), ("> 1", None, "inconclusive"), ("< 1", math.inf, "inconclusive"),
])
def test_comparisons(text, value, verdict):
    assert parse_comparison(text, R).judge(value) == verdict


def test_comparison_with_a_non_number_is_an_error():
    with pytest.raises(ValueError, match="not a number"):
        parse_comparison("> ${params.name}", R)


@pytest.mark.parametrize("when, inside", [
    (dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC), True),     # Saturday 02:00, start is inside
    (dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC), False),    # end is outside
    (dt.datetime(2026, 11, 22, 5, 59, tzinfo=dt.UTC), True),    # Sunday
    (dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC), False),    # Monday
])
def test_window(when, inside):
    w = Window(days=["sat", "sun"], start="02:00", end="06:00", tz="UTC")
    assert in_window(w, when)[0] is inside


def test_window_across_midnight_belongs_to_the_day_it_starts_and_uses_its_zone():
    w = Window(days=["fri"], start="22:00", end="02:00", tz="Europe/Berlin")
    # Friday 23:30 Berlin = 22:30 UTC (winter); Saturday 01:30 Berlin = Saturday 00:30 UTC
    assert in_window(w, dt.datetime(2026, 11, 20, 22, 30, tzinfo=dt.UTC))[0]
    assert in_window(w, dt.datetime(2026, 11, 21, 0, 30, tzinfo=dt.UTC))[0]
    assert not in_window(w, dt.datetime(2026, 11, 21, 1, 30, tzinfo=dt.UTC))[0]  # 02:30 Berlin
    assert not in_window(w, dt.datetime(2026, 11, 19, 22, 30, tzinfo=dt.UTC))[0]  # Thursday


def test_whole_value_references_keep_types_and_embedded_ones_become_text():
    assert R.resolve("${params.workers}") == 2
    assert R.resolve("--workers=${params.workers}") == "--workers=2"
    assert R.resolve({"a": ["${capture.scale.previous_workers}"]}) == {"a": [1]}
    assert R.resolve("${capture.scale.json.items.0.id}") == "x"


def test_masked_resolution_hides_secrets_and_plan_mode_defers_captures():
    masked = Resolver(R.params, R.secret_names, mask=True, defer_captures=True)
    assert masked.resolve("Bearer ${params.token}") == "Bearer ***"
    assert masked.resolve("${capture.later.id}") == Deferred("capture.later.id")
    assert str(masked.resolve("x-${capture.later.id}")) == "<x-<capture.later.id>>"


@pytest.mark.parametrize("text, message", [
    ("${params.nope}", "unknown parameter"), ("${capture.other.x}", "has not run"),
    ("${capture.scale.missing}", "captured no 'missing'"), ("${capture.scale}", "name a field"),
])
def test_bad_references(text, message):
    with pytest.raises(RefError, match=message):
        R.resolve(text)


def test_masker_masks_nested_values_longest_first():
    m = Masker(["abc", "abcdef"])
    assert m.data({"k": ["xx abcdef yy abc"], "abc": 1}) == {"k": ["xx *** yy ***"], "***": 1}
