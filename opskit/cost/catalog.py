"""Pricing catalogs: YAML files of item -> price, each with its unit, source and date.

A catalog is shipped with opskit (``opskit/cost/catalogs/<name>.yaml``) or given as a file. The spec
can layer extra catalogs and single-price overrides on top; later layers win item by item.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opskit.errors import ConfigError
from opskit.spec.loader import parse_yaml, read_located, validate

Unit = Literal["hour", "GB-month", "GB", "LCU-hour", "month", "request", "1M-requests"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tier(_Strict):
    upto: float | None = Field(None, gt=0, description="cumulative quantity this tier ends at (None: no end)")
    price: float = Field(ge=0)


class ReservedPrice(_Strict):
    """A reserved-instance rate (no upfront: all of it is paid by the hour) from the same offer file."""

    price: float = Field(ge=0, description="per unit (hour), like the on-demand price")
    offer_term_code: str = Field(min_length=1)
    purchase_option: str = "No Upfront"
    offering_class: str | None = None


class FreeTier(_Strict):
    """An always-free monthly allowance, shared by every item of the same pool within one account."""

    monthly: float = Field(gt=0, description="free quantity a month, in the item's unit")
    pool: str = Field(min_length=1, description="items drawing on the same allowance share a pool")
    source: str = Field(min_length=1)


class PriceItem(_Strict):
    price: float | None = Field(None, ge=0)
    tiers: list[Tier] | None = None
    unit: Unit
    source: str = Field(min_length=1)
    date: str = Field(min_length=4, description="when the price was read, YYYY-MM or YYYY-MM-DD")
    # set by `opskit cost catalog import`: the price can be checked against the AWS offer file it came from
    sku: str | None = None
    offer_code: str | None = None
    offer_version: str | None = None
    publication_date: str | None = None
    reserved: dict[Literal["1yr", "3yr"], ReservedPrice] | None = None
    free_tier: FreeTier | None = None
    # instance types: their size, from the offer file's attributes (`cost catalog import`) or written in
    vcpu: int | None = Field(None, gt=0)
    memory_gib: float | None = Field(None, gt=0)

    @property
    def verifiable(self) -> bool:
        return bool(self.sku and self.offer_version and self.publication_date)

    @field_validator("date", mode="before")
    @classmethod
    def _date(cls, v: Any) -> Any:
        return str(v) if v is not None and not isinstance(v, str) else v  # YAML reads 2024-07-01 as a date

    @model_validator(mode="after")
    def _one_price(self) -> PriceItem:
        if (self.price is None) == (self.tiers is None):
            raise ValueError("give either price or tiers")
        if self.tiers is not None:
            if not self.tiers:
                raise ValueError("tiers must not be empty")
            bounds = [t.upto for t in self.tiers]
            if any(b is None for b in bounds[:-1]):
                raise ValueError("only the last tier may be open-ended (no upto)")
            closed = [b for b in bounds if b is not None]
            if closed != sorted(closed) or len(set(closed)) != len(closed):
                raise ValueError("tier bounds (upto) must increase")
        return self

    def cost(self, quantity: float) -> float:
        """Price of a monthly quantity; tiered prices fill each tier in turn, as AWS bills them."""
        if self.tiers is None:
            assert self.price is not None
            return quantity * self.price
        total, below = 0.0, 0.0
        for tier in self.tiers:
            top = quantity if tier.upto is None else min(quantity, tier.upto)
            if top > below:
                total += (top - below) * tier.price
            below = tier.upto if tier.upto is not None else quantity
            if below >= quantity:
                break
        if below < quantity:  # the last tier was closed: bill the rest at its price
            total += (quantity - below) * self.tiers[-1].price
        return total

    def unit_price_label(self) -> str:
        if self.tiers is None:
            return f"{self.price:g}"
        return " / ".join(f"{t.price:g}" for t in self.tiers) + " (tiered)"


class CatalogFile(_Strict):
    name: str
    description: str | None = None
    currency: str = "USD"
    region: str | None = None
    items: dict[str, PriceItem]


@dataclass(frozen=True)
class PricedItem:
    key: str
    item: PriceItem
    origin: str  # which catalog (or "pricing.overrides") the price came from


@dataclass(frozen=True)
class Catalog:
    """The merged view of every layer: item key -> price."""

    name: str
    currency: str
    items: dict[str, PricedItem] = field(default_factory=dict)
    layers: tuple[str, ...] = ()

    def get(self, key: str, *, what: str) -> PricedItem:
        try:
            return self.items[key]
        except KeyError:
            raise ConfigError(self.unknown_message(key, what)) from None

    def unknown_message(self, key: str, what: str) -> str:
        """'unknown instance type db.t3.huge; closest known: db.t3.large, db.t3.xlarge'."""
        variant = "/multi-az"
        base = key.removesuffix(variant)
        prefix, _, name = base.rpartition("/")
        family = sorted({k.removesuffix(variant).rpartition("/")[2] for k in self.items
                         if k.removesuffix(variant).rpartition("/")[0] == prefix and k.endswith(variant) ==
                         key.endswith(variant)})
        close = difflib.get_close_matches(name, family, n=3, cutoff=0.5) or family[:5]
        hint = f"; closest known: {', '.join(close)}" if close else ""
        az = " (Multi-AZ)" if key.endswith(variant) else ""
        return f"no price for {what} {name!r}{az} in catalog {self.name} ({key}){hint}"


def builtin_names() -> list[str]:
    folder = resources.files("opskit.cost") / "catalogs"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def builtin_catalog(name: str) -> CatalogFile:
    res = resources.files("opskit.cost") / "catalogs" / f"{name}.yaml"
    return validate(CatalogFile, parse_yaml(res.read_text(encoding="utf-8"), f"<opskit>/cost/catalogs/{name}.yaml"))


def catalog_yaml(catalog: CatalogFile, header: str = "") -> str:
    """A catalog file's text, readable back by load_catalog."""
    body = yaml.safe_dump(catalog.model_dump(exclude_none=True), sort_keys=False, allow_unicode=True, width=120)
    return header + body


def _read_catalog(ref: str, base: Path) -> CatalogFile:
    """A built-in catalog by name, or a YAML file (relative to the spec's folder)."""
    if ref in builtin_names():
        return builtin_catalog(ref)
    path = Path(ref) if Path(ref).is_absolute() else base / ref
    if not path.exists() and (base / f"{ref}.yaml").is_file():
        path = base / f"{ref}.yaml"  # a catalog named as `cost catalog import --name` wrote it next to the spec
    if not path.exists():
        close = difflib.get_close_matches(ref, builtin_names(), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else f"; built-in catalogs: {', '.join(builtin_names())}"
        raise ConfigError(f"pricing catalog {ref!r} is neither a built-in catalog nor a file{hint}")
    return validate(CatalogFile, read_located(path))


def load_catalog(
    catalog: str = "aws-us-east-1",
    extra: list[str] | tuple[str, ...] = (),
    overrides: dict[str, float] | None = None,
    *,
    base: Path | None = None,
    override_date: str = "spec",
) -> Catalog:
    """Merge the base catalog, extra catalogs (later wins) and overrides into one Catalog."""
    base = base or Path.cwd()
    first = _read_catalog(catalog, base)
    items = {k: PricedItem(k, v, first.name) for k, v in first.items.items()}
    layers = [first.name]
    for ref in extra:
        layer = _read_catalog(ref, base)
        if layer.currency != first.currency:
            raise ConfigError(f"pricing catalog {ref}: currency {layer.currency} differs from "
                              f"{first.name}'s {first.currency}")
        items.update({k: PricedItem(k, with_shape(v, items.get(k)), layer.name) for k, v in layer.items.items()})
        layers.append(layer.name)
    for key, price in (overrides or {}).items():
        # a new item needs a unit: its family tells it (ec2/..., rds/... are hourly)
        unit = items[key].item.unit if key in items else _unit_for(key, items)
        priced = PriceItem(price=price, unit=unit, source="opskit.yaml pricing.overrides", date=override_date)
        items[key] = PricedItem(key, with_shape(priced, items.get(key)), "pricing.overrides")
    if overrides:
        layers.append("pricing.overrides")
    return Catalog(first.name, first.currency, items, tuple(layers))


def with_shape(item: PriceItem, below: PricedItem | PriceItem | None) -> PriceItem:
    """A layer or override that re-prices an instance type keeps the vCPUs and memory of the one it replaces
    (a price changes; the type's size does not)."""
    old = below.item if isinstance(below, PricedItem) else below
    if old is None or (item.vcpu is not None and item.memory_gib is not None):
        return item
    return item.model_copy(update={"vcpu": item.vcpu or old.vcpu, "memory_gib": item.memory_gib or old.memory_gib})


def _unit_for(key: str, items: dict[str, PricedItem]) -> Unit:
    family = key.split("/")[0]
    for k, v in items.items():
        if k.split("/")[0] == family:
            return v.item.unit
    raise ConfigError(f"pricing.overrides.{key}: not in the catalog and its family {family!r} is unknown; "
                      f"known families: {', '.join(sorted({k.split('/')[0] for k in items}))}")
