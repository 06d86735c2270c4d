"""Parsing of the units people write in opskit.yaml and on the command line: 5m, 300ms, 70%, 100GB, 1.5k.

Canonical units used everywhere in opskit: durations in seconds, latencies in milliseconds,
percentages as percent (70 means 70%), sizes in bytes.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_COUNT_SUFFIX = {"k": 1e3, "m": 1e6}
_NUM = r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?"
_PART = re.compile(rf"({_NUM})\s*(ms|s|m|h|d|w)", re.IGNORECASE)


def _checked(number: float, value: object, what: str) -> float:
    """Every parser's result: a finite, non-negative number. NaN, infinity ('.inf', '1e400') and
    negative amounts are never a duration, latency, percentage, size or count."""
    if not math.isfinite(number):
        raise ValueError(f"expected a finite {what}, got {value!r}")
    if number < 0:
        raise ValueError(f"a {what} cannot be negative, got {value!r}")
    return number


def parse_duration(value: object) -> float:
    """'5m' -> 300.0, '1h30m' -> 5400.0, '250ms' -> 0.25; a bare number is seconds."""
    return _checked(_duration(value), value, "duration")


def _duration(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    text = value.strip().replace(" ", "")
    if re.fullmatch(_NUM, text):
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2).lower()]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    """300 -> '5m', 0.25 -> '250ms', 5400 -> '1h30m' (Prometheus-style, exact when it can be)."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    out, rest = "", seconds
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if rest >= size:
            n = int(rest // size)
            out += f"{n}{unit}"
            rest -= n * size
    if rest or not out:
        out += f"{rest:g}s"
    return out


def parse_latency_ms(value: object) -> float:
    """'200ms' -> 200.0, '5s' -> 5000.0; a bare number is milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _checked(float(value), value, "latency")
    if isinstance(value, str) and re.fullmatch(_NUM, value.strip()):
        return _checked(float(value), value, "latency")
    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        if "finite" in str(exc) or "negative" in str(exc):
            raise ValueError(str(exc).replace("duration", "latency")) from None
        raise ValueError(f"expected a latency like 200ms or 1.5s, got {value!r}") from None
    return _checked(seconds * 1000.0, value, "latency")


def parse_percent(value: object) -> float:
    """'99.9%' -> 99.9; a bare number is taken as percent already (70 -> 70.0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage like 70%, got {value!r}")
    if isinstance(value, int | float):
        return _checked(float(value), value, "percentage")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            text = text[:-1].strip()
        if re.fullmatch(_NUM, text):
            return _checked(float(text), value, "percentage")
    raise ValueError(f"expected a percentage like 70%, got {value!r}")


def parse_size_bytes(value: object) -> float:
    """'100GB' -> 1e11, '1TiB' -> 2**40; a bare number is bytes."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _checked(float(value), value, "size")
    if isinstance(value, str):
        match = re.fullmatch(rf"({_NUM})\s*([a-zA-Z]*)", value.strip())
        if match and match.group(2).lower() in _SIZE_UNITS | {"": 1}:
            return _checked(float(match.group(1)) * _SIZE_UNITS.get(match.group(2).lower(), 1), value, "size")
    raise ValueError(f"expected a size like 100GB or 1TB, got {value!r}")


def parse_count(value: object) -> float:
    """'10k' -> 10000.0, '2M' -> 2e6, '1,000' -> 1000.0."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _checked(float(value), value, "count")
    if isinstance(value, str):
        text = value.strip().replace(",", "").replace("_", "")
        match = re.fullmatch(rf"({_NUM})\s*([kKmM]?)", text)
        if match:
            return _checked(float(match.group(1)) * _COUNT_SUFFIX.get(match.group(2).lower(), 1), value, "count")
    raise ValueError(f"expected a number like 500, 10k or 2M, got {value!r}")


def parse_quantity(value: object) -> tuple[float, str]:
    """A threshold value with its unit: '70%' -> (70, 'percent'), '500ms' -> (500, 'ms'),
    '3000' -> (3000, 'count'), '80GB' -> (8e10, 'bytes'). Latencies come back in milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _checked(float(value), value, "value"), "count"
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%"):
            return parse_percent(text), "percent"
        try:
            return parse_count(text), "count"
        except ValueError as exc:
            if "finite" in str(exc) or "negative" in str(exc):
                raise
        if re.fullmatch(rf"{_NUM}\s*(ms|s)", text, re.IGNORECASE):
            return parse_latency_ms(text), "ms"
        try:
            return parse_size_bytes(text), "bytes"
        except ValueError:
            pass
    raise ValueError(f"expected a value like 70%, 500ms, 3000 or 80GB, got {value!r}")
