"""Timestamps: every time in opskit's metrics is an aware UTC datetime."""

from __future__ import annotations

import datetime as dt


def utc(value: dt.datetime) -> dt.datetime:
    """Naive times are taken as UTC (YAML `2026-11-22 10:00:00` has no zone); aware ones are converted."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def parse_time(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(float(value), dt.UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        return utc(dt.datetime.fromisoformat(text))
    raise ValueError(f"expected an ISO-8601 time like 2026-11-22T10:00:00Z, got {value!r}")


def wall_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
