"""Compare two priced plans resource by resource. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from opskit.cost.estimate import PlanEstimate


@dataclass(frozen=True)
class DiffRow:
    resource: str
    a_monthly: float | None  # None: the resource is not in that plan
    b_monthly: float | None
    delta_monthly: float
    change_pct: float | None  # None when A is 0 or absent


@dataclass(frozen=True)
class PlanDiff:
    a: str
    b: str
    currency: str
    rows: list[DiffRow]
    total: DiffRow


def _row(name: str, a: float | None, b: float | None) -> DiffRow:
    delta = round((b or 0.0) - (a or 0.0), 2)
    change_pct = round(delta / a * 100, 1) if a else None
    return DiffRow(name, a, b, delta, change_pct)


def diff_plans(a: PlanEstimate, b: PlanEstimate) -> PlanDiff:
    a_costs = {r.name: r.monthly_cost for r in a.resources}
    b_costs = {r.name: r.monthly_cost for r in b.resources}
    names = list(a_costs) + [n for n in b_costs if n not in a_costs]
    rows = [_row(n, a_costs.get(n), b_costs.get(n)) for n in names]
    return PlanDiff(a.plan, b.plan, a.currency, rows, _row("total", a.total_monthly, b.total_monthly))


# --- the spec at a git revision against the working tree (cost diff --base) ---

@dataclass(frozen=True)
class ComponentChange:
    resource: str
    component: str  # its name now (at the base when removed); "" on the resource's own row
    component_id: str  # what is matched across the two sides: instance, storage, volume, ...
    base_monthly: float | None  # None: not there at the base revision
    head_monthly: float | None  # None: removed in the working tree
    delta_monthly: float


@dataclass(frozen=True)
class PlanChange:
    plan: str
    base_monthly: float | None
    head_monthly: float | None
    delta_monthly: float
    change_pct: float | None  # None when the plan is new (or cost nothing)
    rows: list[ComponentChange]  # resources and their components that changed


@dataclass(frozen=True)
class FailAbove:
    """The CI guardrail: a monthly increase above an amount ($200) or a percentage of the base (25%)."""

    amount_usd: float | None = None
    pct: float | None = None

    def breached(self, change: PlanChange) -> bool:
        if change.delta_monthly <= 0:
            return False
        if self.amount_usd is not None:
            return change.delta_monthly > self.amount_usd
        assert self.pct is not None
        return change.change_pct is None or change.change_pct > self.pct


@dataclass(frozen=True)
class SpecDiff:
    base: str
    currency: str
    plans: list[PlanChange]
    fail_above: FailAbove | None
    breaches: list[str]  # one line per plan over the guardrail


def parse_fail_above(text: str) -> FailAbove:
    """'$200', '200', '25%' -> a FailAbove; ValueError with what was expected otherwise."""
    raw = text.strip().replace(",", "")
    try:
        if raw.endswith("%"):
            value = float(raw[:-1])
            if value < 0:
                raise ValueError
            return FailAbove(pct=value)
        value = float(raw.removeprefix("$"))
        if value < 0:
            raise ValueError
        return FailAbove(amount_usd=value)
    except ValueError:
        raise ValueError(f"expected an amount like $200 or a percentage like 25%, got {text!r}") from None


def _component_costs(est: PlanEstimate | None, names: dict[tuple[str, str], str]) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for r in est.resources if est else []:
        out[(r.name, "")] = r.monthly_cost
        for c in r.components:
            key = (r.name, c.component_id or c.name)
            out[key] = out.get(key, 0.0) + c.monthly_cost
            names[key] = c.name
    return out


def plan_change(name: str, base: PlanEstimate | None, head: PlanEstimate | None) -> PlanChange:
    names: dict[tuple[str, str], str] = {}
    b = _component_costs(base, names)
    h = _component_costs(head, names)  # the working tree's names win: "t3.medium" -> "m5.large" reads as now
    keys = list(b) + [k for k in h if k not in b]
    # a resource's row first, then its components, in the order the plan lists them
    order = {name: i for i, name in enumerate(dict.fromkeys(k[0] for k in keys))}
    keys.sort(key=lambda k: (order[k[0]], k[1] != ""))
    rows = [ComponentChange(res, names.get((res, cid), ""), cid, b.get((res, cid)), h.get((res, cid)),
                            round(h.get((res, cid), 0.0) - b.get((res, cid), 0.0), 2))
            for res, cid in keys if b.get((res, cid)) != h.get((res, cid))]
    bt = base.total_monthly if base else None
    ht = head.total_monthly if head else None
    delta = round((ht or 0.0) - (bt or 0.0), 2)
    return PlanChange(name, bt, ht, delta, round(delta / bt * 100, 1) if bt else None, rows)


def diff_specs(base_rev: str, base: list[PlanEstimate], head: list[PlanEstimate], currency: str,
               fail_above: FailAbove | None = None) -> SpecDiff:
    by_base = {e.plan: e for e in base}
    by_head = {e.plan: e for e in head}
    names = list(by_base) + [n for n in by_head if n not in by_base]
    changes = [plan_change(n, by_base.get(n), by_head.get(n)) for n in names]
    breaches = []
    for c in changes:
        if fail_above is not None and fail_above.breached(c):
            limit = f"${fail_above.amount_usd:,.2f}" if fail_above.amount_usd is not None else f"{fail_above.pct:g}%"
            pct = f" ({c.change_pct:+.1f}%)" if c.change_pct is not None else " (new plan)"
            breaches.append(f"plan {c.plan}: +${c.delta_monthly:,.2f}/month{pct} vs {base_rev}, above the "
                            f"--fail-above limit of {limit}")
    return SpecDiff(base_rev, currency, changes, fail_above, breaches)
