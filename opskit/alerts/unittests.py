"""promtool unit tests generated from the spec: each alert fires on a breach and stays silent at normal load.

Pure: returns test documents as data. Expected values come from an independent model of the inputs
(window ratios of piecewise-linear counters, bucket interpolation), not from running the rules.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from opskit.alerts import promql
from opskit.alerts.customtests import Doc, custom_tests
from opskit.alerts.exprmodel import ExprError
from opskit.alerts.model import RuleSet, ThresholdAlert
from opskit.alerts.rules import VALUE_TEMPLATE, format_value, health_rules
from opskit.alerts.slo import BURN_WINDOWS, NOTIFY, SLI, burn_alert, burn_factor, slis
from opskit.units import parse_duration

if TYPE_CHECKING:
    from opskit.spec.schema import Spec

PCT = "{{ $value | humanizePercentage }}"
INSTANCE = "{{ $labels.instance }}"


def humanize_percentage(value: float) -> str:
    """Prometheus' humanizePercentage: Go's %.4g of value x 100, then '%'."""
    text = f"{value * 100:.4g}"
    return text + "%"


def expand(annotations: dict[str, str], *, value: str = "", instance: str = "") -> dict[str, str]:
    """The annotations as Prometheus renders them, for the few template snippets opskit writes."""
    out = {}
    for key, text in annotations.items():
        text = text.replace(PCT, value).replace(INSTANCE, instance)
        for template in VALUE_TEMPLATE.values():
            text = text.replace(template, value)
        out[key] = text
    return out


def _doc(rule_file: str, tests: list[Doc]) -> Doc:
    return {"rule_files": [f"../{rule_file}"], "evaluation_interval": "1m", "tests": tests}


def _minutes(seconds: float) -> int:
    return int(-(-seconds // 60))


# ---- thresholds --------------------------------------------------------------------------------------

def _pick(t: ThresholdAlert, ctx: Any, recipe: Any, breach: bool) -> tuple[float, float] | None:
    """A wanted value and what the query returns for it: above scale_up (breach) or below it (normal)."""
    up = t.row.scale_up or 0
    down = t.row.scale_down if t.row.scale_down is not None else up / 2
    cap = 99.0 if t.row.unit == "percent" else float("inf")
    if breach:
        candidates = [min(up * f, cap) for f in (1.25, 1.5, 2, 3, 5, 10)] + [(up + cap) / 2]
    else:
        candidates = [(up + down) / 2, down, up * 0.8, up * 0.5, up * 0.25]
    for wanted in candidates:
        got = recipe.predict(ctx, t.row.metric, wanted)
        if got is not None and (got > up if breach else got < up) and recipe.series(ctx, t.row.metric, wanted):
            return wanted, got
    return None


def threshold_tests(spec: Spec, ruleset: RuleSet) -> list[Doc]:
    from opskit.alerts.defaults import Context, default_for

    tests: list[Doc] = []
    window = promql.rate_window(spec.alerts.scrape_interval)
    for t in ruleset.thresholds:
        if not t.default_query:
            # the row's own query: series from a model of it, else hand-written tests (render notes it)
            with contextlib.suppress(ExprError):
                tests += custom_tests(spec, t, lambda a, v: expand(a, value=v), format_value)
            continue
        recipe = default_for(t.row.metric, t.row.resource,
                             getattr(spec.resources.get(t.row.resource), "capacity", None))
        assert recipe is not None
        selector = spec.alerts.resource_selectors.get(t.row.resource, f"job={promql.quote(t.row.resource)}")
        fires_at = _minutes(t.for_seconds) + _minutes(parse_duration(window)) + 2
        ctx = Context(selector, spec.service.job, window,
                      tuple(b / 1000 for b in spec.service.latency_buckets_ms), fires_at + 2)
        breach, normal = _pick(t, ctx, recipe, True), _pick(t, ctx, recipe, False)
        if breach is None or normal is None:
            continue
        name = t.rule.alert
        labels = dict(t.rule.labels)
        fired = {"exp_labels": labels,
                 "exp_annotations": expand(t.rule.annotations, value=format_value(t.row.unit, breach[1]))}
        tests.append({
            "name": f"{name}: {t.row.key} at {format_value(t.row.unit, breach[1])} fires after for: "
                    f"{t.rule.for_}",
            "interval": "1m",
            "input_series": recipe.series(ctx, t.row.metric, breach[0]),
            "alert_rule_test": [
                {"eval_time": f"{_minutes(t.for_seconds) - 1}m", "alertname": name, "exp_alerts": []},
                {"eval_time": f"{fires_at}m", "alertname": name, "exp_alerts": [fired]},
            ],
        })
        tests.append({
            "name": f"{name}: {t.row.key} at {format_value(t.row.unit, normal[1])} (normal load) stays silent",
            "interval": "1m",
            "input_series": recipe.series(ctx, t.row.metric, normal[0]),
            "alert_rule_test": [{"eval_time": f"{fires_at}m", "alertname": name, "exp_alerts": []}],
        })
    return tests


def untested(spec: Spec, t: ThresholdAlert) -> str:
    """Why a threshold alert got no generated test."""
    if t.default_query:
        return "no input values of the default query cross the threshold"
    try:
        custom_tests(spec, t, lambda a, v: expand(a, value=v), format_value)
    except ExprError as exc:
        return f"its query is outside what opskit models: {exc}"
    return "unknown"


# ---- SLOs --------------------------------------------------------------------------------------------

RATE = 1000.0  # requests per minute in the test series


def _counter_values(increments: list[float]) -> str:
    """Per-minute increments -> promtool's expanding notation, one `a+bxn` run per constant stretch."""
    parts, value, i = ["0"], 0.0, 0
    while i < len(increments):
        j = i
        while j < len(increments) and increments[j] == increments[i]:
            j += 1
        step = increments[i]
        parts.append(f"{value + step:.10g}+{step:.10g}x{j - i - 1}")
        value += step * (j - i)
        i = j
    return " ".join(parts)


def _window_ratio(ratios: list[float], at: int, minutes: int) -> float | None:
    """Error ratio over (at - minutes, at] for per-minute error shares `ratios` (one per minute)."""
    start = max(0, at - minutes)
    span = ratios[start:at]
    return sum(span) / len(span) if span else None


_MINUTES = {"5m": 5, "30m": 30, "1h": 60, "2h": 120, "6h": 360, "1d": 1440, "3d": 4320}


def expected_burn(sli: SLI, ratios: list[float], at: int) -> dict[str, float]:
    """severity -> the alert's value at minute `at`, for the severities that fire (the SRE workbook rule)."""
    fired: dict[str, float] = {}
    for w in BURN_WINDOWS:
        limit = burn_factor(w, sli.period_seconds) * sli.budget
        long_r, short_r = _window_ratio(ratios, at, _MINUTES[w.long]), _window_ratio(ratios, at, _MINUTES[w.short])
        if long_r is not None and short_r is not None and long_r > limit and short_r > limit:
            fired.setdefault(w.severity, long_r)  # `or` keeps the left-hand pair's value
    return fired


def _sli_series(sli: SLI, ratios: list[float], go_le: bool = False) -> list[dict[str, str]]:
    base = promql.matchers(job=sli.job, method=sli.method, route=sli.route)[1:-1]
    name = promql.HISTOGRAM
    good = _counter_values([RATE * (1 - r) for r in ratios])
    bad = _counter_values([RATE * r for r in ratios])
    total = _counter_values([RATE] * len(ratios))
    if sli.bound_seconds is None:
        return [{"series": f'{name}_count{{{base},status_code="200"}}', "values": good},
                {"series": f'{name}_count{{{base},status_code="503"}}', "values": bad}]
    values = promql.le_values(sli.bound_seconds)
    le = values[0] if go_le else values[-1]
    ok = f'{base},status_code="200"'
    return [{"series": f'{name}_bucket{{{ok},le="{le}"}}', "values": good},
            {"series": f'{name}_bucket{{{ok},le="+Inf"}}', "values": total},
            {"series": f"{name}_count{{{ok}}}", "values": total}]


def _slo_case(spec: Spec, sli: SLI, title: str, ratios: list[float], at: int, go_le: bool = False) -> Doc:
    fired = expected_burn(sli, ratios, at)
    exp = []
    for severity, value in sorted(fired.items()):
        rule = burn_alert(spec, sli, severity)
        exp.append({"exp_labels": {**rule.labels, **sli.labels, "service": spec.service.name},
                    "exp_annotations": expand(rule.annotations, value=humanize_percentage(value))})
    outcome = " and ".join(NOTIFY[s] for s in sorted(fired)) or "silent"
    return {"name": f"{sli.alert_name}: {title} -> {outcome}", "interval": "1m",
            "input_series": _sli_series(sli, ratios, go_le),
            "alert_rule_test": [{"eval_time": f"{at}m", "alertname": sli.alert_name, "exp_alerts": exp}]}


def _no_errors_case(spec: Spec, sli: SLI) -> Doc:
    """A healthy service has no 5xx series at all: the error ratio must read 0, not be absent."""
    case = _slo_case(spec, sli, "no 5xx series at all", [0.0] * 30, 30)
    case["input_series"] = case["input_series"][:1]
    labels = promql.matchers(service=spec.service.name, **sli.labels)
    case["promql_expr_test"] = [
        {"expr": sli.ref("slo:sli_error:ratio_rate1h"), "eval_time": "30m",
         "exp_samples": [{"labels": "slo:sli_error:ratio_rate1h" + labels, "value": 0}]},
        {"expr": sli.ref("slo:error_budget_remaining:ratio"), "eval_time": "30m",
         "exp_samples": [{"labels": "slo:error_budget_remaining:ratio" + labels, "value": 1}]},
    ]
    return case


def slo_tests(spec: Spec, slo_name: str) -> list[Doc]:
    tests: list[Doc] = []
    for sli in slis(spec):
        if sli.slo != slo_name:
            continue
        b = sli.budget
        fast = min(0.99, (burn_factor(BURN_WINDOWS[0], sli.period_seconds) * b + 1) / 2)
        tests.append(_slo_case(spec, sli, f"error ratio {fast:.4g} for 20m", [fast] * 20, 20))
        slow = 4.5 * b
        if slow < 1:
            tests.append(_slo_case(spec, sli, f"error ratio {slow:.4g} for 30m",
                                   [slow] * 30, 30))
        normal = 0.5 * b
        case = _slo_case(spec, sli, f"error ratio {normal:.4g} (normal load) for 30m", [normal] * 30, 30)
        case["promql_expr_test"] = [{
            "expr": f"round({sli.ref('slo:error_budget_remaining:ratio')}, 0.001)", "eval_time": "30m",
            "exp_samples": [{"labels": promql.matchers(service=spec.service.name, **sli.labels), "value": 0.5}],
        }]
        tests.append(case)
        if sli.bound_seconds is None:
            tests.append(_no_errors_case(spec, sli))
        burst = [fast] * 5 + [0.0] * 35
        tests.append(_slo_case(spec, sli, "a 5m burst that ended 35m ago (the page resets)", burst, 40))
        if sli.bound_seconds is not None and len(promql.le_values(sli.bound_seconds)) > 1:
            go_le = promql.le_values(sli.bound_seconds)[0]
            tests.append(_slo_case(spec, sli, f'error ratio {fast:.4g} with Go-style le="{go_le}"',
                                   [fast] * 20, 20, go_le=True))
    return tests


# ---- health ------------------------------------------------------------------------------------------

def health_tests(spec: Spec) -> list[Doc]:
    rules = {r.alert: r for r in health_rules(spec)}
    job = spec.service.job
    instance = "10.0.0.1:8000"
    up = f'up{{job={promql.quote(job)},instance="{instance}"}}'
    count = f'{promql.HISTOGRAM}_count{{job={promql.quote(job)},instance="{instance}",method="GET",' \
            f'route="/api/assets",status_code="200"}}'

    def name(suffix: str) -> str:
        return next(n for n in rules if n and n.endswith(suffix))

    def fired(alert: str, labels: dict[str, str], value: str = "") -> list[Doc]:
        rule = rules[alert]
        return [{"exp_labels": {**labels, **rule.labels},
                 "exp_annotations": expand(rule.annotations, value=value, instance=labels.get("instance", ""))}]

    def case(title: str, series: list[dict[str, str]], alert: str, at: str, exp: list[Doc]) -> Doc:
        return {"name": f"{alert}: {title}", "interval": "1m", "input_series": series,
                "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": exp}]}

    down, missing, absent, failing = (name(s) for s in ("TargetDown", "TargetMissing", "MetricsAbsent",
                                                          "ScrapeFailing"))
    healthy = [{"series": up, "values": "1x30"}, {"series": count, "values": "0+100x30"}]
    flapping = " ".join(["1", "0"] * 13)
    ones = sum(1 for i in range(12, 23) if i % 2 == 0)  # samples in [12m, 22m], 1 at even minutes
    return [
        case("scrapes fail for 4m", [{"series": up, "values": "1 1 0x10"}], down, "6m",
             fired(down, {"job": job, "instance": instance})),
        case("scrapes succeed", healthy, down, "6m", []),
        case("no target of the job", [{"series": 'up{job="node",instance="n1:9100"}', "values": "1x10"}],
             missing, "6m", fired(missing, {"job": job})),
        case("the target is there", healthy, missing, "6m", []),
        case("up but no request histogram", [{"series": up, "values": "1x15"}], absent, "11m",
             fired(absent, {"job": job})),
        case("request histogram present", healthy, absent, "11m", []),
        case("every other scrape fails", [{"series": up, "values": flapping}], failing, "22m",
             fired(failing, {"job": job, "instance": instance}, humanize_percentage(ones / 11))),
        case("scrapes succeed", healthy, failing, "22m", []),
    ]


def test_documents(spec: Spec, ruleset: RuleSet) -> dict[str, Doc]:
    """'tests/<name>.test.yml' -> promtool test document, for every rule file opskit can generate tests for."""
    docs: dict[str, Doc] = {}
    for f in ruleset.files:
        stem = f.name.removesuffix(".rules.yml")
        if f.name == "thresholds.rules.yml":
            tests = threshold_tests(spec, ruleset)
        elif f.name == "health.rules.yml":
            tests = health_tests(spec)
        elif f.name.startswith("slo-"):
            tests = slo_tests(spec, f.groups[0].name.removeprefix("opskit-slo-"))
        else:
            tests = []
        if tests:
            docs[f"tests/{stem}.test.yml"] = _doc(f.name, tests)
    return docs
