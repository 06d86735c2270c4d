"""opskit cost: Infracost-like estimates of the spec's plans from a pricing catalog, and plan diffs."""

from __future__ import annotations

from typing import Any

import click

from opskit import output as out
from opskit.commands.common import load, output_option, spec_option
from opskit.errors import Refused, UsageError


@click.group()
def cost() -> None:
    """Price the spec's plans (plans:) with a pricing catalog (pricing:)."""


def _setup(spec_file: str | None) -> tuple[Any, Any]:
    from opskit.cost.plans import spec_catalog
    from opskit.spec import spec_path

    spec = load(spec_file)
    return spec, spec_catalog(spec, spec_path(spec_file).resolve().parent)


@cost.command()
@spec_option
@click.option("--plan", "plans", multiple=True, metavar="NAME", help="Plan to price (repeatable) [default: all].")
@click.option("--all", "all_plans", is_flag=True, help="Price every plan (the default without --plan).")
@click.option("--strict", is_flag=True, help="Exit 1 when a figure in the spec is off the catalog by > 25%.")
@output_option("table", "json", "md")
def estimate(spec_file: str | None, plans: tuple[str, ...], all_plans: bool, strict: bool, output: str) -> None:
    """Monthly cost of plans: resource -> components (unit, quantity, unit price, cost) and totals.

    JSON always has the same shape: {"currency", "catalog", "plans": [...], "total_monthly"}, where
    total_monthly is the sum of the plans listed (one plan: that plan's total).
    """
    from opskit.cost.plans import plan_names, price_plans
    from opskit.cost.render import BREAKDOWN_COLUMNS, breakdown_rows, economics_line, estimate_markdown, money

    if plans and all_plans:
        raise UsageError("give --plan NAME or --all, not both")
    spec, catalog = _setup(spec_file)
    ests = price_plans(spec, catalog, plan_names(spec, list(plans)))
    total = round(sum(e.total_monthly for e in ests), 2)
    mismatches = [m for e in ests for m in e.mismatches]
    if output == "json":
        out.emit_json({"currency": catalog.currency, "catalog": {"name": catalog.name, "layers": catalog.layers},
                       "hours_per_month": spec.pricing.hours_per_month, "plans": ests, "total_monthly": total,
                       "warnings": [m.message for m in mismatches]})
    elif output == "md":
        out.echo(estimate_markdown(ests))
    else:
        for est in ests:
            title = f"Plan {est.plan}: {money(est.total_monthly)}/month ({catalog.name}, {catalog.currency})"
            out.table(BREAKDOWN_COLUMNS, breakdown_rows(est), title=title)
            line = economics_line(est)
            if line:
                out.echo(f"Unit cost {line}")
        if len(ests) > 1:
            out.table(("plan", "monthly", "stated"),
                      [(e.plan, money(e.total_monthly), money(e.stated_monthly)) for e in ests], title="Plans")
    for m in mismatches:
        out.warn(m.message)
    if strict and mismatches:
        raise Refused(f"{len(mismatches)} figure(s) in the spec disagree with the catalog by more than 25%")


@cost.command()
@spec_option
@click.argument("plan_a", metavar="PLAN_A")
@click.argument("plan_b", metavar="PLAN_B")
@output_option("table", "json", "md")
def diff(spec_file: str | None, plan_a: str, plan_b: str, output: str) -> None:
    """What changes from PLAN_A to PLAN_B, per resource and in total (absolute and percent)."""
    from opskit.cost.diff import diff_plans
    from opskit.cost.plans import plan_names, price_plans
    from opskit.cost.render import DIFF_COLUMNS, diff_rows

    spec, catalog = _setup(spec_file)
    a, b = price_plans(spec, catalog, plan_names(spec, [plan_a, plan_b]))
    d = diff_plans(a, b)
    if output == "json":
        out.emit_json(d)
    elif output == "md":
        out.echo(f"### Cost change `{plan_a}` -> `{plan_b}` ({catalog.currency}/month)\n")
        out.echo(out.markdown_table(DIFF_COLUMNS, diff_rows(d)))
    else:
        out.table(DIFF_COLUMNS, diff_rows(d), title=f"{plan_a} -> {plan_b} ({catalog.currency}/month)")


@cost.command("catalog")
@spec_option
@click.option("--grep", default=None, metavar="TEXT", help="Only items whose key contains TEXT.")
@output_option("table", "json")
def catalog_cmd(spec_file: str | None, grep: str | None, output: str) -> None:
    """List the merged pricing catalog: every item with its unit, price, source and date."""
    _spec, catalog = _setup(spec_file)
    items = [p for k, p in sorted(catalog.items.items()) if not grep or grep in k]
    if output == "json":
        out.emit_json({"name": catalog.name, "currency": catalog.currency, "layers": catalog.layers,
                       "items": {p.key: {**p.item.model_dump(exclude_none=True), "origin": p.origin}
                                 for p in items}})
        return
    out.table(("item", "unit", "price", "source", "date"),
              [(p.key, p.item.unit, p.item.unit_price_label(), p.item.source, p.item.date) for p in items],
              title=f"{catalog.name} ({catalog.currency}; layers: {', '.join(catalog.layers)})")


