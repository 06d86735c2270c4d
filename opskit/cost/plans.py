"""Price the spec's plans: catalog from the spec's pricing section, estimate, unit costs. Pure apart from
reading catalog files (the built-in one or those the spec names)."""

from __future__ import annotations

import difflib
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.cost.catalog import Catalog, load_catalog
from opskit.cost.diff import FailAbove, SpecDiff, diff_specs
from opskit.cost.economics import DemandAt, plan_month, unit_economics
from opskit.cost.estimate import PlanEstimate, estimate_plan
from opskit.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from opskit.spec.schema import Spec


def spec_catalog(spec: Spec, base: Path) -> Catalog:
    p = spec.pricing
    return load_catalog(p.catalog, p.catalogs, p.overrides, base=base)


def plan_names(spec: Spec, wanted: list[str] | None) -> list[str]:
    if not spec.plans:
        raise ConfigError("the spec has no plans: add a plans: section to price (see docs/guide/capacity.md)")
    if not wanted:
        return list(spec.plans)
    for name in wanted:
        if name not in spec.plans:
            close = difflib.get_close_matches(name, list(spec.plans), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"no plan named {name!r}{hint}; plans: {', '.join(spec.plans)}")
    return wanted


def price_plans(spec: Spec, catalog: Catalog, names: list[str], demand_at: DemandAt | None = None
                ) -> list[PlanEstimate]:
    """Estimates of the named plans; with demand_at (month -> traffic), their unit costs too."""
    out = []
    for name in names:
        plan = spec.plans[name]
        est = estimate_plan(name, plan, catalog, hours_per_month=spec.pricing.hours_per_month,
                            usage=spec.pricing.usage, free_tier=spec.pricing.free_tier)
        month = plan_month(plan)
        demand = demand_at(month) if demand_at is not None else None
        out.append(replace(est, unit_economics=unit_economics(est.total_monthly, demand, month)))
    return out


def unverified_prices(ests: list[PlanEstimate]) -> list[str]:
    """Every catalog price used that no offer file backs (SKU, offer version, publication date), one line each."""
    out = []
    for est in ests:
        for r in est.resources:
            for c in r.components:
                if c.price_key is not None and c.sku is None:
                    out.append(f"plans.{est.plan}.{r.name}: price {c.price_key} has no verifiable source ({c.source})")
    return out


def compare_with_base(base: Spec | None, head: Spec, *, base_rev: str, wanted: list[str], base_dir: Path,
                      fail_above: FailAbove | None) -> SpecDiff:
    """Price the plans of the spec at a revision (None: it did not exist there) and of the working tree, each
    with its own pricing section (catalog files from the working tree), and compare them."""
    names = list(base.plans if base else []) + [n for n in head.plans if base is None or n not in base.plans]
    for name in wanted:
        if name not in names:
            close = difflib.get_close_matches(name, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise UsageError(f"no plan named {name!r} at {base_rev} or in the working tree{hint}")
    names = wanted or names
    head_cat = spec_catalog(head, base_dir)
    head_ests = price_plans(head, head_cat, [n for n in names if n in head.plans])
    base_ests = price_plans(base, spec_catalog(base, base_dir), [n for n in names if n in base.plans]) if base else []
    return diff_specs(base_rev, base_ests, head_ests, head_cat.currency, fail_above)
