"""Rows and Markdown for cost estimates and diffs (the command prints them through opskit.output)."""

from __future__ import annotations

from opskit import output as out
from opskit.cost.diff import PlanDiff
from opskit.cost.estimate import PlanEstimate

BREAKDOWN_COLUMNS = ("resource / component", "unit", "monthly qty", "unit price", "monthly cost")


def money(v: float | None) -> str:
    return "" if v is None else f"${v:,.2f}"


def qty(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 or v == int(v) else f"{v:,.2f}"


def breakdown_rows(est: PlanEstimate) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for r in est.resources:
        label = f"{r.name} ({r.kind}{', ' + r.instance if r.instance else ''})"
        rows.append((label, "", "", "", money(r.monthly_cost)))
        for i, c in enumerate(r.components):
            branch = "└─" if i == len(r.components) - 1 else "├─"
            rows.append((f" {branch} {c.name}", c.unit, qty(c.monthly_quantity), c.price_label,
                         money(c.monthly_cost)))
    rows.append(("TOTAL", "", "", "", money(est.total_monthly)))
    return rows


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
        chunks.append(out.markdown_table(BREAKDOWN_COLUMNS, breakdown_rows(est)))
        line = economics_line(est)
        if line:
            chunks.append(f"Unit cost {line}.\n")
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

    return [(r.resource, money(r.a_monthly) or "-", money(r.b_monthly) or "-", change(r.delta), pct(r.percent))
            for r in [*d.rows, d.total]]
