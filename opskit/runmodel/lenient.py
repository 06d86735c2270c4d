"""Lenient readings of JSON values, for the informative keys a reader takes as written or leaves as None
(never failing the file): the strict ones go through strict.Reader, which names the key path."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def num_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def latencies(value: Any) -> dict[str, float | None]:
    """An informative latency block (failure_latency_ms): read as numbers or None, never failing the file."""
    return {str(k): num_or_none(v) for k, v in obj(value).items()}


def str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def counts(value: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in obj(value).items() if isinstance(v, int) and not isinstance(v, bool)}


def keep(value: Any) -> float | None:
    """A number as written (an int stays an int, so it shows as written), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None
