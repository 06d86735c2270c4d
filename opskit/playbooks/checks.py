"""Conditions of preconditions and verification, judged on one measured value. Pure.

No data, an error or NaN is inconclusive, never a pass: Argo Rollouts' known failure mode is an
empty Prometheus result read as success."""

from __future__ import annotations

import datetime as dt
import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from opskit.playbooks.refs import Resolver
from opskit.playbooks.schema import CONDITION, Window
from opskit.units import parse_quantity

Verdict = Literal["pass", "fail", "inconclusive"]
OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
}


@dataclass(frozen=True)
class Comparison:
    op: str
    value: float
    text: str  # as resolved, for messages: "> 500"

    def judge(self, measured: float | None) -> Verdict:
        if measured is None or not math.isfinite(measured):
            return "inconclusive"
        return "pass" if OPS[self.op](measured, self.value) else "fail"


def parse_comparison(text: str, resolver: Resolver) -> Comparison:
    """'> 500ms', 'result >= ${params.workers}' -> Comparison (references resolved, units applied)."""
    m = CONDITION.match(text)
    if not m:
        raise ValueError(f"expected a comparison like '> 500', got {text!r}")
    op, rhs = m.group(1), m.group(2)
    resolved: Any = resolver.resolve(rhs)
    try:
        value, _unit = parse_quantity(resolved if not isinstance(resolved, str) else resolved.strip())
    except ValueError:
        raise ValueError(f"{text!r}: {resolved!r} is not a number") from None
    shown = f"{int(value) if float(value).is_integer() else value}"
    return Comparison(op, value, f"{op} {shown}")


def in_window(window: Window, now: dt.datetime) -> tuple[bool, str]:
    """Whether `now` (aware) is inside the maintenance window; an end before the start wraps midnight
    and belongs to the day it started."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(window.tz))
    minutes = local.hour * 60 + local.minute
    start = _minutes(window.start)
    end = _minutes(window.end)
    day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[local.weekday()]
    yesterday = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")[(local.weekday() - 1) % 7]
    if start <= end:
        inside = day in window.days and start <= minutes < end
    else:
        inside = (day in window.days and minutes >= start) or (yesterday in window.days and minutes < end)
    shown = f"{'/'.join(window.days)} {window.start}-{window.end} {window.tz}"
    return inside, f"now {local:%a %H:%M} {window.tz}; window {shown}"


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)
