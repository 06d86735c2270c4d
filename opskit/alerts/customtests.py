"""promtool unit tests for threshold rows with their own `queries.prometheus` (pure).

The query is modelled (opskit.alerts.exprmodel): one input series per selector, a knob series moved until
the query returns a chosen value above scale_up (the alert fires after for:) or below it (it stays
silent). Expected values come from that model, so `alerts test` checks it against promtool's real
evaluation. A query outside the model raises `ExprError` and keeps hand-written tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from opskit.alerts import promql
from opskit.alerts.exprmodel import ExprError, Leaf, Reading, evaluate, leaves, parse, satisfies
from opskit.units import parse_duration

if TYPE_CHECKING:
    from opskit.alerts.model import ThresholdAlert
    from opskit.spec.schema import Spec

Doc = dict[str, Any]
HISTOGRAM_RATE = 10.0  # observations per second in a generated histogram


def _minutes(seconds: float) -> int:
    return int(-(-seconds // 60))


def _buckets(spec: Spec) -> list[float]:
    return [b / 1000 for b in spec.service.latency_buckets_ms] + [math.inf]


def _placed(spec: Spec, j: int, rate: float) -> dict[float, float]:
    """Cumulative bucket rates with every observation in bucket j (the last one is +Inf)."""
    bounds = _buckets(spec)
    return {b: rate if i >= j else 0.0 for i, b in enumerate(bounds)}


def _readings(spec: Spec, parts: list[Leaf], knob: int, value: float | int) -> dict[str, Reading]:
    out: dict[str, Reading] = {}
    for i, leaf in enumerate(parts):
        if leaf.kind == "histogram":
            out[leaf.selector.key] = (_placed(spec, int(value) if i == knob else 0, HISTOGRAM_RATE), leaf.labels)
        else:
            out[leaf.selector.key] = (float(value) if i == knob else 1.0, leaf.labels)
    return out


def _value(node: object, readings: dict[str, Reading]) -> tuple[float, dict[str, str]] | None:
    try:
        result = evaluate(node, readings)
    except (ExprError, ZeroDivisionError, OverflowError):
        return None
    if not math.isfinite(result.value):
        return None
    return result.value, dict(result.labels or ())


def _solve(node: object, spec: Spec, parts: list[Leaf], wanted: float) -> tuple[int, float] | None:
    """(knob leaf, its value) for which the query returns `wanted`, for a counter or gauge knob."""
    for knob, leaf in enumerate(parts):
        if leaf.kind == "histogram":
            continue

        def f(x: float, knob: int = knob) -> float | None:
            got = _value(node, _readings(spec, parts, knob, x))
            return got[0] if got else None

        f1, f2, f3 = f(1.0), f(2.0), f(3.0)
        if f1 is None or f2 is None or f3 is None or f2 == f1:
            continue
        if abs((f3 - f2) - (f2 - f1)) <= 1e-9 * max(1.0, abs(f1), abs(f3)):  # affine in the knob
            x = 1.0 + (wanted - f1) / (f2 - f1)
            if x > 0:
                return knob, x
            continue
        lo, hi = 1e-6, 1e9  # monotone but not affine (the knob divides): bisect in log space
        flo, fhi = f(lo), f(hi)
        if flo is None or fhi is None or (flo - wanted) * (fhi - wanted) > 0:
            continue
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            fm = f(mid)
            if fm is None:
                break
            if (fm - wanted) * (flo - wanted) > 0:
                lo, flo = mid, fm
            else:
                hi = mid
        return knob, math.sqrt(lo * hi)
    return None


def _choose(node: object, spec: Spec, parts: list[Leaf], t: ThresholdAlert, breach: bool) -> tuple[
        int, float, float, dict[str, str]] | None:
    """(knob, knob value, the query's value, the result's labels) above scale_up (breach) or below it."""
    up = t.row.scale_up or 0.0
    down = t.row.scale_down if t.row.scale_down is not None else up / 2
    histograms = [i for i, leaf in enumerate(parts) if leaf.kind == "histogram"]
    if histograms:
        knob = histograms[0]
        found = []
        for j in range(len(_buckets(spec))):
            got = _value(node, _readings(spec, parts, knob, j))
            if got and (got[0] > up if breach else got[0] < up):
                found.append((abs(got[0] - up), j, got))
        if not found:
            return None
        _, j, got = min(found)  # nearest to the threshold: a realistic breach, a realistic normal load
        return knob, float(j), got[0], got[1]
    cap = 99.0 if t.row.unit == "percent" else math.inf
    candidates = ([min(up * k, cap) for k in (1.25, 1.5, 2, 3, 5, 10)] if breach
                  else [(up + down) / 2, down, up * 0.8, up * 0.5])
    for wanted in candidates:
        solved = _solve(node, spec, parts, wanted)
        if solved is None:
            continue
        got = _value(node, _readings(spec, parts, *solved))
        if got and (got[0] > up if breach else 0 <= got[0] < up):
            return solved[0], solved[1], got[0], got[1]
    return None


def _series(spec: Spec, parts: list[Leaf], knob: int, value: float, interval_s: float, steps: int) -> list[
        dict[str, str]]:
    out = []
    for i, leaf in enumerate(parts):
        name = leaf.selector.name
        if leaf.kind == "histogram":
            j = int(value) if i == knob else 0
            out += _histogram(name, leaf.labels, _placed(spec, j, HISTOGRAM_RATE), interval_s, steps)
            # the service's own routes, slower than anything: the query must leave them out (else no test)
            if i == knob and name == f"{promql.HISTOGRAM}_bucket":
                for route in promql.OWN_ROUTES[:2]:
                    labels = {**leaf.labels, "route": route}
                    if not satisfies(leaf.selector, labels):
                        out += _histogram(name, labels, _placed(spec, len(_buckets(spec)) - 1, HISTOGRAM_RATE),
                                          interval_s, steps)
            continue
        x = value if i == knob else 1.0
        text = promql.matchers(**leaf.labels)
        if leaf.kind == "counter":
            out.append({"series": name + text, "values": f"0+{x * interval_s:.10g}x{steps}"})
        else:
            out.append({"series": name + text, "values": f"{x:.10g}x{steps}"})
    return out


def _histogram(name: str, labels: dict[str, str], cumulative: dict[float, float], interval_s: float,
               steps: int) -> list[dict[str, str]]:
    out = []
    for bound, rate in cumulative.items():
        le = "+Inf" if math.isinf(bound) else repr(float(bound))
        out.append({"series": name + promql.matchers(**labels, le=le), "values": f"0+{rate * interval_s:.10g}x{steps}"})
    return out


def custom_tests(spec: Spec, t: ThresholdAlert, fired_annotations: Callable[[dict[str, str], str], dict[str, str]],
                 value_text: Callable[[str, float], str]) -> list[Doc]:
    """A firing and a silent case for the row's own query; raises ExprError with the reason."""
    node = parse(t.query)
    parts = leaves(node)
    if not parts:
        raise ExprError("the query reads no series")
    interval_s = max(1.0, float(spec.alerts.scrape_interval))
    windows = [parse_duration(w) for w in promql.range_windows(t.query)] or [0.0]
    fires_at = _minutes(t.for_seconds) + _minutes(max(windows)) + 2
    steps = int(math.ceil((fires_at + 2) * 60 / interval_s))
    breach, normal = _choose(node, spec, parts, t, True), _choose(node, spec, parts, t, False)
    if breach is None or normal is None:
        raise ExprError("no input values found that put the query " + ("above" if breach is None else "below")
                          + f" {t.row.scale_up:g}")
    name = t.rule.alert
    interval = promql.window(interval_s)
    fired = {"exp_labels": {**breach[3], **t.rule.labels},
             "exp_annotations": fired_annotations(t.rule.annotations, value_text(t.row.unit, breach[2]))}
    return [
        {"name": f"{name}: {t.row.key} at {value_text(t.row.unit, breach[2])} fires after for: {t.rule.for_}",
         "interval": interval,
         "input_series": _series(spec, parts, breach[0], breach[1], interval_s, steps),
         "alert_rule_test": [
             {"eval_time": f"{_minutes(t.for_seconds) - 1}m", "alertname": name, "exp_alerts": []},
             {"eval_time": f"{fires_at}m", "alertname": name, "exp_alerts": [fired]}]},
        {"name": f"{name}: {t.row.key} at {value_text(t.row.unit, normal[2])} (normal load) stays silent",
         "interval": interval,
         "input_series": _series(spec, parts, normal[0], normal[1], interval_s, steps),
         "alert_rule_test": [{"eval_time": f"{fires_at}m", "alertname": name, "exp_alerts": []}]},
    ]
