"""SLO recording rules and multi-window multi-burn-rate alerts (Google SRE workbook, as Sloth renders them).

Each SLO gives up to two SLIs: availability (the share of 5xx) and latency (the share of non-5xx
requests slower than the SLO bound, read from the histogram bucket whose `le` is that bound).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opskit.alerts import promql
from opskit.alerts.model import Group, Note, Rule, runbook_url
from opskit.spec.checks import require_valid

if TYPE_CHECKING:
    from opskit.spec.schema import SLO, Spec

FIVE_XX = 'status_code=~"5.."'
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")


@dataclass(frozen=True)
class BurnWindow:
    severity: str  # 'critical' pages, 'warning' is a ticket
    long: str
    short: str
    budget_spent: float  # share of the period's budget this pair lets burn before alerting
    long_seconds: float


# page: 2% of a 30d budget in 1h (14.4x) or 5% in 6h (6x); ticket: 10% in 1d (3x) or 10% in 3d (1x)
BURN_WINDOWS = (
    BurnWindow("critical", "1h", "5m", 0.02, 3600),
    BurnWindow("critical", "6h", "30m", 0.05, 6 * 3600),
    BurnWindow("warning", "1d", "2h", 0.10, 86400),
    BurnWindow("warning", "3d", "6h", 0.10, 3 * 86400),
)
NOTIFY = {"critical": "page", "warning": "ticket"}


def burn_factor(window: BurnWindow, period_seconds: float) -> float:
    """Burn factor = budget share x period / long window: 14.4, 6, 3, 1 for a 30-day period."""
    return round(window.budget_spent * period_seconds / window.long_seconds, 6)


@dataclass(frozen=True)
class SLI:
    slo: str
    sli: str  # 'availability' or 'latency-p95'
    objective: float  # ratio of good events, e.g. 0.999
    method: str
    route: str
    job: str
    period_seconds: float
    bound_seconds: float | None = None  # latency SLIs only

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 12)

    @property
    def labels(self) -> dict[str, str]:
        return {"slo": self.slo, "sli": self.sli}

    @property
    def alert_name(self) -> str:
        return promql.camel(self.slo, self.sli, "budget", "burn")

    @property
    def period(self) -> str:
        return promql.window(self.period_seconds)

    def selector(self, *extra: str) -> str:
        return promql.matchers(*extra, job=self.job, method=self.method, route=self.route)

    def ref(self, record: str) -> str:
        """A recorded series of this SLI: `record{slo="x",sli="y"}`."""
        return record + promql.matchers(**self.labels)

    def errors_expr(self, w: str) -> str:
        total = f"sum(rate({promql.HISTOGRAM}_count{self.selector(*self._valid())}[{w}]))"
        if self.bound_seconds is None:
            # no 5xx yet means no 5xx series: `or vector(0)` makes that 0 errors, not an absent ratio
            return f'(sum(rate({promql.HISTOGRAM}_count{self.selector(FIVE_XX)}[{w}])) or vector(0))'
        good = (f"sum(rate({promql.HISTOGRAM}_bucket"
                f"{self.selector(*self._valid(), promql.le_matcher(self.bound_seconds))}[{w}]))")
        return f"({total} - {good})"

    def requests_expr(self, w: str) -> str:
        return f"sum(rate({promql.HISTOGRAM}_count{self.selector(*self._valid())}[{w}]))"

    def _valid(self) -> tuple[str, ...]:
        # latency counts only requests that did not fail: fast 5xx must not make latency look good
        return ('status_code!~"5.."',) if self.bound_seconds is not None else ()


def slis(spec: Spec) -> list[SLI]:
    """The SLIs of every SLO; raises SpecProblem when an SLO cannot be read from the histogram."""
    require_valid(spec)
    out: list[SLI] = []
    for slo in spec.slos:
        method, route = promql.split_endpoint(slo.endpoint)
        base: dict[str, Any] = {"slo": slo.name, "method": method, "route": route, "job": spec.service.job,
                                "period_seconds": slo.window}
        if slo.availability is not None:
            out.append(SLI(sli="availability", objective=round(slo.availability / 100, 12), **base))
        for pct, bound_ms in _latencies(slo):
            objective = float("0." + pct[1:])
            out.append(SLI(sli=f"latency-{pct}", objective=objective, bound_seconds=bound_ms / 1000, **base))
    return out


def _latencies(slo: SLO) -> list[tuple[str, float]]:
    if slo.latency is None:
        return []
    return [(k, v) for k, v in slo.latency.model_dump().items() if v is not None]


def sli_rules(spec: Spec, sli: SLI) -> list[Rule]:
    labels = {**sli.labels, "service": spec.service.name}
    rules = [
        Rule(record="slo:sli_errors:rate5m", expr=sli.errors_expr("5m"), labels=labels),
        Rule(record="slo:sli_requests:rate5m", expr=sli.requests_expr("5m"), labels=labels),
        Rule(record="slo:sli_error:ratio_rate5m",
             expr=f"{sli.ref('slo:sli_errors:rate5m')} / {sli.ref('slo:sli_requests:rate5m')}", labels=labels),
    ]
    for w in WINDOWS[1:]:
        rules.append(Rule(record=f"slo:sli_error:ratio_rate{w}",
                          expr=f"{sli.errors_expr(w)}\n/\n{sli.requests_expr(w)}", labels=labels))
    # the whole period from the 5m rates: weighted by traffic, and cheap (no rate over 30 days of raw series)
    rules += [
        Rule(record=f"slo:sli_error:ratio_rate{sli.period}",
             expr=(f"sum_over_time({sli.ref('slo:sli_errors:rate5m')}[{sli.period}])\n/\n"
                   f"sum_over_time({sli.ref('slo:sli_requests:rate5m')}[{sli.period}])"), labels=labels),
        Rule(record="slo:objective:ratio", expr=f"vector({sli.objective:.12g})", labels=labels),
        Rule(record="slo:error_budget:ratio", expr=f"vector({sli.budget:.12g})", labels=labels),
        Rule(record="slo:error_budget_remaining:ratio",
             expr=f"1 - {sli.ref(f'slo:sli_error:ratio_rate{sli.period}')} / {sli.ref('slo:error_budget:ratio')}",
             labels=labels),
    ]
    return rules


def reachable(sli: SLI, severity: str) -> list[BurnWindow]:
    """The window pairs of a severity whose threshold an error ratio can exceed (factor x budget < 100%)."""
    return [w for w in BURN_WINDOWS if w.severity == severity and burn_factor(w, sli.period_seconds) * sli.budget < 1]


def burn_alert(spec: Spec, sli: SLI, severity: str) -> Rule:
    pairs = reachable(sli, severity)
    clauses = []
    for w in pairs:
        limit = f"({burn_factor(w, sli.period_seconds):g} * {sli.budget:.12g})"
        clauses.append(f"(\n  {sli.ref('slo:sli_error:ratio_rate' + w.long)} > {limit}\n"
                       f"  and\n  {sli.ref('slo:sli_error:ratio_rate' + w.short)} > {limit}\n)")
    rates = " or ".join(f"{burn_factor(w, sli.period_seconds):g}x over {w.long} and {w.short}" for w in pairs)
    fastest = min(sli.period_seconds / burn_factor(w, sli.period_seconds) for w in pairs)
    what = f"{sli.slo} {sli.sli.replace('-', ' ')}"
    annotations = {
        "summary": f"{what} SLO is burning its error budget ({NOTIFY[severity]})",
        "description": (f"{what}: error ratio {{{{ $value | humanizePercentage }}}} against a budget of "
                        f"{sli.budget * 100:.4g}% ({sli.objective * 100:.4g}% over {sli.period}); burning "
                        f"{rates}. At that rate the budget lasts {promql.window(fastest)}."),
    }
    url = runbook_url(spec, spec.alerts.runbooks.slo)
    if url:
        annotations["runbook_url"] = url
    extra = dict(sorted(spec.alerts.labels.items()))
    return Rule(alert=sli.alert_name, expr="\nor\n".join(clauses),
                labels={"severity": severity, **extra}, annotations=annotations)


def slo_groups(spec: Spec, notes: list[Note]) -> list[Group]:
    groups: dict[str, list[Rule]] = {}
    for sli in slis(spec):
        rules = groups.setdefault(sli.slo, [])
        rules += sli_rules(spec, sli)
        rules += [burn_alert(spec, sli, severity) for severity in NOTIFY if reachable(sli, severity)]
        for w in BURN_WINDOWS:
            if burn_factor(w, sli.period_seconds) * sli.budget >= 1:
                notes.append(Note(f"slo {sli.slo} {sli.sli}",
                                  f"no {NOTIFY[w.severity]} over {w.long}/{w.short}: it could never fire "
                                  f"({burn_factor(w, sli.period_seconds):g}x a {sli.budget:.0%} budget exceeds 100%)"))
    return [Group(f"opskit-slo-{name}", rules) for name, rules in groups.items()]
