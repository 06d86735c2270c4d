from __future__ import annotations

import pytest

from opskit import units
from opskit.units import (
    format_duration,
    parse_count,
    parse_duration,
    parse_latency_ms,
    parse_percent,
    parse_quantity,
    parse_size_bytes,
)


@pytest.mark.parametrize(("text", "seconds"), [
    ("5m", 300), ("30s", 30), ("1h30m", 5400), ("250ms", 0.25), ("3d", 259200), (12, 12), ("1.5s", 1.5), ("2", 2),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5x", "m5", "-3s", -1, True, None, "5m3"])
def test_parse_duration_rejects(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


@pytest.mark.parametrize(("seconds", "text"), [(300, "5m"), (0.25, "250ms"), (5400, "1h30m"), (30, "30s"),
                                               (86400 * 3, "3d"), (90, "1m30s")])
def test_format_duration_round_trips(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


def test_latency_percent_size_count():
    assert parse_latency_ms("200ms") == 200
    assert parse_latency_ms("5s") == 5000
    assert parse_latency_ms(150) == 150
    assert parse_percent("99.9%") == 99.9
    assert parse_percent(70) == 70
    assert parse_size_bytes("100GB") == 1e11
    assert parse_size_bytes("1TiB") == 2**40
    assert parse_count("10k") == 10_000
    assert parse_count("1,000") == 1000
    with pytest.raises(ValueError):
        parse_percent("lots")
    with pytest.raises(ValueError):
        parse_size_bytes("10 parsecs")


@pytest.mark.parametrize(("text", "expected"), [
    ("70%", (70, "percent")), ("500ms", (500, "ms")), ("2s", (2000, "ms")), (3000, (3000, "count")),
    ("3,000", (3000, "count")), ("80GB", (8e10, "bytes")),
])
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("parse, value, message", [
    (units.parse_duration, "1e400s", "expected a finite duration"),
    (units.parse_duration, float("nan"), "expected a finite duration"),
    (units.parse_duration, float("inf"), "expected a finite duration"),
    (units.parse_latency_ms, -5, "a latency cannot be negative"),
    (units.parse_percent, -5, "a percentage cannot be negative"),
    (units.parse_percent, "1e400%", "expected a finite percentage"),
    (units.parse_size_bytes, float("inf"), "expected a finite size"),
    (units.parse_count, -1, "a count cannot be negative"),
    (units.parse_count, "1e400k", "expected a finite count"),
    (units.parse_quantity, float("nan"), "expected a finite value"),
    (units.parse_quantity, "1e400", "expected a finite count"),
])
def test_non_finite_and_negative_amounts_are_refused(parse, value, message):
    with pytest.raises(ValueError, match=message):
        parse(value)
