"""opskit cost: Infracost-like estimates of the spec's plans from a pricing catalog, plan diffs, diffs against
a git revision (the PR guardrail), and catalogs imported from AWS Price List offer files."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from opskit import atomicio
from opskit import output as out
from opskit.commands.common import load, output_option, spec_option
from opskit.errors import ConfigError, Refused, UsageError

if TYPE_CHECKING:
    from opskit.cost.economics import DemandAt
    from opskit.spec import Spec


@click.group()
def cost() -> None:
    """Price the spec's plans (plans:) with a pricing catalog (pricing:)."""


def _setup(spec_file: str | None) -> tuple[Any, Any]:
    from opskit.cost.plans import spec_catalog
    from opskit.spec import spec_path

    spec = load(spec_file)
    return spec, spec_catalog(spec, spec_path(spec_file).resolve().parent)


def _demand(spec: Spec) -> DemandAt:
    from opskit.capacity.growth import demand_at

    return lambda month: demand_at(spec.growth, month)


@cost.command()
@spec_option
@click.option("--plan", "plans", multiple=True, metavar="NAME", help="Plan to price (repeatable) [default: all].")
@click.option("--all", "all_plans", is_flag=True, help="Price every plan (the default without --plan).")
@click.option("--strict", is_flag=True, help="Refuse (exit 2) a price no offer file backs; exit 1 when a figure "
              "in the spec is off the catalog by > 25%.")
@output_option("table", "json", "md")
def estimate(spec_file: str | None, plans: tuple[str, ...], all_plans: bool, strict: bool, output: str) -> None:
    """Monthly cost of plans: resource -> components (unit, quantity, unit price, cost) and totals.

    JSON always has the same shape: {"currency", "catalog", "plans": [...], "total_monthly"}, where
    total_monthly is the sum of the plans listed (one plan: that plan's total).
    """
    from opskit.cost.plans import plan_names, price_plans, unverified_prices
    from opskit.cost.render import (
        ASSUMPTION_COLUMNS,
        assumption_rows,
        breakdown_columns,
        breakdown_rows,
        economics_line,
        estimate_markdown,
        money,
        reserved_line,
    )

    if plans and all_plans:
        raise UsageError("give --plan NAME or --all, not both")
    spec, catalog = _setup(spec_file)
    ests = price_plans(spec, catalog, plan_names(spec, list(plans)), _demand(spec))
    if strict:
        bad = unverified_prices(ests)
        if bad:
            more = f" (and {len(bad) - 1} more; import an offer file: opskit cost catalog import)" if len(bad) > 1 \
                else " (import an offer file: opskit cost catalog import)"
            raise ConfigError(f"--strict: {bad[0]}{more}")
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
            out.table(breakdown_columns(est), breakdown_rows(est), title=title)
            for label, line in (("Unit cost", economics_line(est)), ("Reserved alternative:", reserved_line(est))):
                if line:
                    out.echo(f"{label} {line}")
            if assumption_rows(est):
                out.table(ASSUMPTION_COLUMNS, assumption_rows(est), title=f"Usage assumptions ({est.plan})")
        if len(ests) > 1:
            out.table(("plan", "monthly", "stated"),
                      [(e.plan, money(e.total_monthly), money(e.stated_monthly)) for e in ests], title="Plans")
    for m in mismatches:
        out.warn(m.message)
    if strict and mismatches:
        raise Refused(f"{len(mismatches)} figure(s) in the spec disagree with the catalog by more than 25%")


@cost.command()
@spec_option
@click.argument("plan_ab", nargs=-1, metavar="[PLAN_A PLAN_B]")
@click.option("--base", "base_rev", metavar="GIT_REV", default=None,
              help="Compare the spec at this git revision with the working tree (per plan, resource, component).")
@click.option("--plan", "plans", multiple=True, metavar="NAME", help="With --base: plan to compare (repeatable).")
@click.option("--all", "all_plans", is_flag=True, help="With --base: every plan (the default).")
@click.option("--fail-above", metavar="AMOUNT|PCT", default=None,
              help="With --base: exit 1 when a plan's monthly cost rises by more than $AMOUNT or PCT%.")
@output_option("table", "json", "md")
def diff(spec_file: str | None, plan_ab: tuple[str, ...], base_rev: str | None, plans: tuple[str, ...],
         all_plans: bool, fail_above: str | None, output: str) -> None:
    """What changes from PLAN_A to PLAN_B, or (--base REV) from the spec at a git revision to the working tree.

    With --base the Markdown output is a pull-request comment, and is also appended to
    $GITHUB_STEP_SUMMARY when that is set.
    """
    if base_rev is None:
        if plans or all_plans or fail_above:
            raise UsageError("--plan, --all and --fail-above go with --base REV")
        if len(plan_ab) != 2:
            raise UsageError("give two plans (cost diff PLAN_A PLAN_B) or --base GIT_REV")
        _diff_plans(spec_file, plan_ab[0], plan_ab[1], output)
        return
    if plan_ab:
        raise UsageError("give --base GIT_REV or two plans, not both")
    if plans and all_plans:
        raise UsageError("give --plan NAME or --all, not both")
    _diff_base(spec_file, base_rev, list(plans), fail_above, output)


def _diff_plans(spec_file: str | None, plan_a: str, plan_b: str, output: str) -> None:
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


def _diff_base(spec_file: str | None, base_rev: str, wanted: list[str], fail_above: str | None, output: str) -> None:
    from opskit.cost.diff import parse_fail_above
    from opskit.cost.gitspec import spec_at_revision
    from opskit.cost.plans import compare_with_base
    from opskit.cost.render import SPEC_DIFF_COLUMNS, change_note, spec_diff_markdown, spec_diff_rows
    from opskit.spec import spec_path

    try:
        limit = parse_fail_above(fail_above) if fail_above is not None else None
    except ValueError as exc:
        raise UsageError(f"--fail-above: {exc}") from None
    path = spec_path(spec_file).resolve()
    head = load(spec_file)
    d = compare_with_base(spec_at_revision(base_rev, path), head, base_rev=base_rev, wanted=wanted,
                          base_dir=path.parent, fail_above=limit)
    text = spec_diff_markdown(d)
    if output == "json":
        out.emit_json(d)
    elif output == "md":
        out.echo(text)
    else:
        for c in d.plans:
            out.table(SPEC_DIFF_COLUMNS, spec_diff_rows(d, c.plan),
                      title=f"Plan {c.plan}: {base_rev} -> working tree ({d.currency}/month){change_note(c)}")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as fh:  # GitHub collects every step's appends
                fh.write(text + "\n")
        except OSError as exc:
            out.warn(f"cannot append to $GITHUB_STEP_SUMMARY ({summary}): {exc}")
    if d.breaches:
        for line in d.breaches[1:]:
            out.warn(line)
        raise Refused(d.breaches[0])


@cost.group("catalog", invoke_without_command=True)
@spec_option
@click.option("--grep", default=None, metavar="TEXT", help="Only items whose key contains TEXT.")
@output_option("table", "json")
@click.pass_context
def catalog_cmd(ctx: click.Context, spec_file: str | None, grep: str | None, output: str) -> None:
    """List the merged pricing catalog: every item with its unit, price, source and date.

    `opskit cost catalog import FILE...` builds a catalog from AWS Price List offer files.
    """
    if ctx.invoked_subcommand is not None:
        return
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


@catalog_cmd.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="FILE...")
@click.option("--region", default="us-east-1", show_default=True, help="AWS region code to price.")
@click.option("--name", default=None, metavar="NAME", help="Catalog name [default: aws-REGION-offers].")
@click.option("--out", "out_path", default=None, metavar="PATH", help="Where to write it [default: NAME.yaml].")
def import_cmd(files: tuple[str, ...], region: str, name: str | None, out_path: str | None) -> None:
    """Build a catalog from AWS Price List bulk offer files (AmazonEC2, AmazonRDS, AmazonElastiCache, AmazonS3,
    AmazonCloudFront; JSON as AWS publishes them), each price with its SKU, offer version and date."""
    from opskit.cost.catalog import builtin_catalog
    from opskit.cost.offers import import_offers, read_json_offer

    name = name or f"aws-{region}-offers"
    offers = [read_json_offer(f) for f in files]
    result = import_offers(offers, builtin_catalog("aws-us-east-1"), region=region, name=name)
    target = atomicio.write_atomic(out_path or f"{name}.yaml", result.text)
    out.echo(f"wrote {target}: {len(result.imported)} prices from "
             f"{', '.join(f'{o.offer_code} {o.version}' for o in offers)}; {len(result.kept)} kept from the "
             f"built-in catalog (unverified)")
