"""Rows and Markdown for cost estimates and diffs (the command prints them through opskit.output)."""

from __future__ import annotations

from opskit import output as out
from opskit.cost.diff import PlanChange, PlanDiff, SpecDiff
from opskit.cost.estimate import PlanEstimate

BREAKDOWN_COLUMNS = ("resource / component", "unit", "monthly qty", "unit price", "monthly cost")


def money(v: float | None) -> str:
    return "" if v is None else f"${v:,.2f}"


def qty(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 or v == int(v) else f"{v:,.2f}"


RESERVED_COLUMNS = ("1-yr reserved", "3-yr reserved")


def has_reserved(est: PlanEstimate) -> bool:
    return est.reserved_1yr_monthly is not None or est.reserved_3yr_monthly is not None


def breakdown_columns(est: PlanEstimate) -> tuple[str, ...]:
    """The breakdown's columns; the reserved alternatives only when the catalog has reserved rates."""
    return BREAKDOWN_COLUMNS + (RESERVED_COLUMNS if has_reserved(est) else ())


def breakdown_rows(est: PlanEstimate) -> list[tuple[str, ...]]:
    extra = has_reserved(est)
    rows: list[tuple[str, ...]] = []
    for r in est.resources:
        label = f"{r.name} ({r.kind}{', ' + r.instance if r.instance else ''})"
        # a resource without a reserved rate counts at on-demand, so the column adds up to its TOTAL
        more = tuple(money(v if v is not None else r.monthly_cost)
                     for v in (r.reserved_1yr_monthly, r.reserved_3yr_monthly)) if extra else ()
        rows.append((label, "", "", "", money(r.monthly_cost), *more))
        for i, c in enumerate(r.components):
            branch = "└─" if i == len(r.components) - 1 else "├─"
            more = (money(c.reserved_1yr_monthly_cost), money(c.reserved_3yr_monthly_cost)) if extra else ()
            rows.append((f" {branch} {c.name}", c.unit, qty(c.monthly_quantity), c.price_label,
                         money(c.monthly_cost), *more))
    more = (money(est.reserved_1yr_monthly), money(est.reserved_3yr_monthly)) if extra else ()
    rows.append(("TOTAL", "", "", "", money(est.total_monthly), *more))
    return rows


def reserved_line(est: PlanEstimate) -> str | None:
    """The alternative column: the plan at 1- and 3-year no-upfront reserved rates, where the catalog has them."""
    if est.reserved_1yr_monthly is None and est.reserved_3yr_monthly is None:
        return None
    parts = [f"{label} {money(v)}/month ({(v - est.total_monthly) / est.total_monthly * 100:+.0f}%)"
             for label, v in (("1-year", est.reserved_1yr_monthly), ("3-year", est.reserved_3yr_monthly))
             if v is not None and est.total_monthly]
    return "reserved, no upfront (on-demand where no reserved rate): " + ", ".join(parts) if parts else None


ASSUMPTION_COLUMNS = ("resource", "usage assumption", "value", "set in")


def assumption_rows(est: PlanEstimate) -> list[tuple[str, ...]]:
    return [(r.name, a.name, f"{a.value:,.10g}", a.origin) for r in est.resources for a in r.assumptions]


def economics_line(est: PlanEstimate) -> str | None:
    ue = est.unit_economics
    if ue is None:
        return None
    parts = []
    if ue.per_million_requests is not None and ue.monthly_requests:
        parts.append(f"${ue.per_million_requests:,.2f} per million requests ({ue.monthly_requests / 1e6:,.1f}M/month)")
    if ue.per_mau is not None and ue.mau:
        parts.append(f"${ue.per_mau:,.3f} per MAU ({ue.mau:,.0f} MAU)")
    return f"at month {ue.month:g} of the growth table: " + ", ".join(parts) if parts else None


def estimate_markdown(ests: list[PlanEstimate]) -> str:
    chunks = []
    for est in ests:
        chunks.append(f"### Plan `{est.plan}`: {money(est.total_monthly)}/month\n")
        if est.description:
            chunks.append(f"{est.description}\n")
        chunks.append(out.markdown_table(breakdown_columns(est), breakdown_rows(est)))
        line = economics_line(est)
        if line:
            chunks.append(f"Unit cost {line}.\n")
        line = reserved_line(est)
        if line:
            chunks.append(f"Reserved alternative: {line}.\n")
        if assumption_rows(est):
            chunks.append(out.markdown_table(ASSUMPTION_COLUMNS, assumption_rows(est)))
        for m in est.mismatches:
            chunks.append(f"> **Check:** {m.message}\n")
    if len(ests) > 1:
        chunks.append(out.markdown_table(("plan", "monthly"), [(e.plan, money(e.total_monthly)) for e in ests]))
    return "\n".join(chunks)


DIFF_COLUMNS = ("resource", "A monthly", "B monthly", "change", "change %")


def diff_rows(d: PlanDiff) -> list[tuple[str, ...]]:
    def pct(p: float | None) -> str:
        return "new" if p is None else f"{p:+.1f}%"

    def change(v: float) -> str:
        return f"{'+' if v >= 0 else '-'}${abs(v):,.2f}"

    return [(r.resource, money(r.a_monthly) or "-", money(r.b_monthly) or "-", change(r.delta_monthly),
             pct(r.change_pct)) for r in [*d.rows, d.total]]


SPEC_DIFF_COLUMNS = ("resource / component", "base monthly", "now monthly", "change")


def _change(v: float) -> str:
    return f"{'+' if v >= 0 else '-'}${abs(v):,.2f}"


def change_note(c: PlanChange) -> str:
    if c.base_monthly is None:
        return " (new plan)"
    if c.head_monthly is None:
        return " (removed)"
    return "" if c.change_pct is None else f" ({c.change_pct:+.1f}%)"


def spec_diff_rows(d: SpecDiff, plan: str) -> list[tuple[str, ...]]:
    (c,) = [p for p in d.plans if p.plan == plan]
    rows: list[tuple[str, ...]] = [
        (r.resource if not r.component else f" └─ {r.component}", money(r.base_monthly) or "-",
         money(r.head_monthly) or "-", _change(r.delta_monthly)) for r in c.rows]
    rows.append(("TOTAL", money(c.base_monthly) or "-", money(c.head_monthly) or "-",
                 _change(c.delta_monthly) + change_note(c)))
    return rows


def spec_diff_markdown(d: SpecDiff) -> str:
    """A pull-request comment: one table per plan, the guardrail's verdict last."""
    chunks = [f"### Cost change vs `{d.base}` ({d.currency}/month)\n",
              out.markdown_table(("plan", "base", "now", "change"),
                                 [(c.plan, money(c.base_monthly) or "-", money(c.head_monthly) or "-",
                                   _change(c.delta_monthly) + change_note(c))
                                  for c in d.plans])]
    for c in d.plans:
        if c.rows:
            chunks.append(f"#### Plan `{c.plan}`\n")
            chunks.append(out.markdown_table(SPEC_DIFF_COLUMNS, spec_diff_rows(d, c.plan)))
    if d.fail_above is not None:
        chunks.extend(f"> **Over the limit:** {b}\n" for b in d.breaches)
        if not d.breaches:
            chunks.append("No plan's monthly cost rises above the --fail-above limit.\n")
    return "\n".join(chunks)
