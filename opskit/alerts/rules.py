"""Threshold and health alerts, and the whole rule set (opskit.alerts.model) a spec turns into.

`build(spec)` is pure: the spec in, rule files, the data the unit tests are generated from, and notes
about what was defaulted or skipped out. A spec that fails opskit.spec.checks raises its SpecProblem.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from opskit.alerts import promql
from opskit.alerts.model import Group, Note, Rule, RuleFile, RuleSet, ThresholdAlert, runbook_url
from opskit.alerts.slo import slo_groups
from opskit.spec.checks import require_valid

if TYPE_CHECKING:
    from opskit.spec.schema import Spec, Threshold

def _extra_labels(spec: Spec) -> dict[str, str]:
    return dict(sorted(spec.alerts.labels.items()))


# ---- threshold alerts --------------------------------------------------------------------------------

VALUE_TEMPLATE = {
    "percent": '{{ $value | printf "%.1f" }}%',
    "ms": '{{ $value | printf "%.0f" }}ms',
    "count": '{{ $value | printf "%.0f" }}',
    "bytes": '{{ $value | printf "%.0f" }} bytes',
}


def format_value(unit: str, value: float) -> str:
    """What VALUE_TEMPLATE renders to in Prometheus for `value` (Go's %.Nf rounds like Python's)."""
    return {"percent": f"{value:.1f}%", "ms": f"{value:.0f}ms", "count": f"{value:.0f}",
            "bytes": f"{value:.0f} bytes"}[unit]


def format_threshold(unit: str, value: float) -> str:
    if unit == "percent":
        return f"{value:g}%"
    if unit == "ms":
        return f"{value:g}ms"
    if unit == "bytes":
        for size, suffix in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
            if value >= size:
                return f"{value / size:g}{suffix}"
        return f"{value:g}B"
    return f"{value:g}"


def threshold_alert_name(row: Threshold) -> str:
    return promql.camel(row.resource, row.metric, "high")


def threshold_annotations(spec: Spec, row: Threshold, for_s: float, value_text: str) -> dict[str, str]:
    unit = row.unit
    up = format_threshold(unit, row.scale_up or 0)
    what = f"{row.resource} {row.metric.replace('_', ' ')}"
    description = f"{what} is {value_text}, above the scale-up threshold {up} for {promql.window(for_s)}"
    if row.scale_down is not None:
        description += f" (scale down below {format_threshold(unit, row.scale_down)})"
    description += "."
    if row.action:
        description += f" Action: {row.action}."
    if row.playbook:
        description += f" Playbook: opskit playbook plan {row.playbook}."
    url = runbook_url(spec, row.playbook) or runbook_url(spec, spec.alerts.runbooks.threshold)
    annotations = {"summary": f"{what} {value_text} > {up}", "description": description}
    if url:
        annotations["runbook_url"] = url
    return annotations


def threshold_alerts(spec: Spec, notes: list[Note]) -> list[ThresholdAlert]:
    """One alert per row with a scale_up and a Prometheus query (the row's, or the default `scale check
    --source prometheus` reads too); a note for each row left out or defaulted."""
    from opskit.alerts.queries import resolve

    out: list[ThresholdAlert] = []
    for i, row in enumerate(spec.thresholds):
        where = f"thresholds[{i}] {row.key}"
        if row.scale_up is None:
            notes.append(Note(where, "no scale_up (HPA target mode): no alert, the autoscaler owns it"))
            continue
        query = resolve(spec, row, "prometheus")
        if query.expr is None:
            notes.append(Note(where, f"{query.note}: no alert (scale check --source prometheus cannot read it "
                                     "either); give queries.prometheus"))
            continue
        if query.default:
            notes.append(Note(where, query.note))
        elif unfiltered_latency(query.expr):
            notes.append(Note(where, f"queries.prometheus reads {promql.HISTOGRAM} with no route matcher: the "
                                     f"service's own /metrics and /health count in it (add "
                                     f"{promql.not_own_routes()})"))
        for_s = row.for_ if row.for_ else spec.alerts.default_for
        if not row.for_:
            notes.append(Note(where, f"no for: in the row, alert waits alerts.default_for "
                                     f"({promql.window(for_s)})"))
        labels = {"severity": row.severity, "resource": row.resource, "metric": row.metric,
                  **_extra_labels(spec)}
        if row.playbook:  # Alertmanager routes on it to `opskit playbook serve`, which runs it
            labels["playbook"] = row.playbook
        rule = Rule(
            alert=threshold_alert_name(row),
            expr=f"({query.expr}) > {row.scale_up:g}",
            for_=promql.window(for_s),
            labels=labels,
            annotations=threshold_annotations(spec, row, for_s, VALUE_TEMPLATE[row.unit]),
        )
        out.append(ThresholdAlert(i, row, rule, query.expr, for_s, query.default))
    return out


def unfiltered_latency(expr: str) -> bool:
    """A query over the service's histogram buckets that never names a route."""
    selectors = re.findall(rf"\b{promql.HISTOGRAM}_bucket\s*(\{{[^}}]*\}})?", expr)
    return bool(selectors) and any("route" not in s for s in selectors)


# ---- service health ----------------------------------------------------------------------------------

def health_prefix(spec: Spec) -> str:
    return promql.camel(spec.service.name)


def health_rules(spec: Spec) -> list[Rule]:
    job = promql.quote(spec.service.job)
    up = f"up{{job={job}}}"
    prefix = health_prefix(spec)
    runbook = runbook_url(spec, spec.alerts.runbooks.health)
    extra = _extra_labels(spec)
    name = spec.service.name

    def ann(summary: str, description: str) -> dict[str, str]:
        a = {"summary": summary, "description": description}
        if runbook:
            a["runbook_url"] = runbook
        return a

    return [
        Rule(alert=f"{prefix}TargetDown", expr=f"{up} == 0", for_="2m",
             labels={"severity": "critical", **extra},
             annotations=ann(f"{name} target {{{{ $labels.instance }}}} is down",
                             f"Prometheus cannot scrape {{{{ $labels.instance }}}} of job {spec.service.job} "
                             "(up == 0 for 2m): the instance is down or unreachable.")),
        Rule(alert=f"{prefix}TargetMissing", expr=f"absent({up})", for_="5m",
             labels={"severity": "critical", **extra},
             annotations=ann(f"no {spec.service.job} target in Prometheus",
                             f"Prometheus has no target for job {spec.service.job}: service discovery or "
                             "the scrape config lost it, so every other alert of the service is blind.")),
        Rule(alert=f"{prefix}MetricsAbsent",
             expr=f"absent({promql.HISTOGRAM}_count{{job={job}}}) and on() ({up} == 1)", for_="10m",
             labels={"severity": "warning", **extra},
             annotations=ann(f"{name} is up but exports no request metrics",
                             f"{promql.HISTOGRAM} is missing from job {spec.service.job} while the target "
                             "is up: no traffic reaches it, or its metrics broke. The SLO alerts are blind.")),
        Rule(alert=f"{prefix}ScrapeFailing", expr=f"avg_over_time({up}[10m]) < 0.9", for_="10m",
             labels={"severity": "warning", **extra},
             annotations=ann("scrapes of {{ $labels.instance }} keep failing",
                             f"{{{{ $value | humanizePercentage }}}} of the scrapes of "
                             f"{{{{ $labels.instance }}}} ({spec.service.job}) succeeded over 10m: "
                             "timeouts or an overloaded /metrics.")),
    ]


# ---- the whole set -----------------------------------------------------------------------------------

def build(spec: Spec) -> RuleSet:
    """Raises SpecProblem (opskit.spec.checks) when the spec fails the checks `spec validate` makes."""
    require_valid(spec)
    notes: list[Note] = []
    thresholds = threshold_alerts(spec, notes)
    files = [
        RuleFile("thresholds.rules.yml", "Threshold alerts, one per thresholds: row (scale-up level, for: window)",
                 [Group("opskit-thresholds", [t.rule for t in thresholds])] if thresholds else []),
        *(RuleFile(f"slo-{g.name.removeprefix('opskit-slo-')}.rules.yml",
                   "SLO recording rules and multi-window multi-burn-rate alerts", [g])
          for g in slo_groups(spec, notes)),
        RuleFile("health.rules.yml", "Service health: target down or missing, metrics absent, scrapes failing",
                 [Group("opskit-service-health", health_rules(spec))]),
    ]
    return RuleSet([f for f in files if f.groups], thresholds, notes)
