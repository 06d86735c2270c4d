"""The schema of opskit.yaml. Strict: unknown keys are errors. Values keep the units people write
(5m, 200ms, 70%) in the file and come out canonical: seconds, milliseconds, percent, bytes.

Each later area reads its own section: loadtest (targets, growth, loadtest), gate (slos, gate),
scaling and alerts (thresholds, resources, alerts), cost and capacity (plans, pricing, growth, resources).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from opskit.units import (
    parse_count,
    parse_duration,
    parse_latency_ms,
    parse_percent,
    parse_quantity,
    parse_size_bytes,
)

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
Millis = Annotated[float, BeforeValidator(parse_latency_ms), Field(gt=0)]
Percent = Annotated[float, BeforeValidator(parse_percent), Field(ge=0, le=100)]
Count = Annotated[float, BeforeValidator(parse_count), Field(ge=0)]
GigaBytes = Annotated[float, BeforeValidator(lambda v: parse_size_bytes(v) / 1e9 if isinstance(v, str) else v),
                      Field(ge=0)]

_ENDPOINT = re.compile(r"^(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) /\S*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Service(Strict):
    name: str
    description: str | None = None
    job: str = Field("asset-service", description="Prometheus job label of the service's scrape target")
    url: str = Field("http://127.0.0.1:8000", description="where the service runs when started locally")
    latency_buckets_ms: list[float] = Field(
        default=[5, 10, 25, 50, 100, 200, 250, 500, 1000, 2500, 5000, 10000],
        description="histogram bucket bounds the service exposes; must include every SLO latency",
    )


class Target(Strict):
    url: str
    environment: Literal["dev", "test", "staging", "production"] = "dev"
    max_rps: float | None = Field(None, gt=0)
    description: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError(f"expected an http:// or https:// URL, got {v!r}")
        return v.rstrip("/")


class Latency(Strict):
    p50: Millis | None = None
    p90: Millis | None = None
    p95: Millis | None = None
    p99: Millis | None = None
    p999: Millis | None = None


class SLO(Strict):
    name: str
    endpoint: str = Field(description='"METHOD /route", the route template as the service names it')
    latency: Latency | None = None
    availability: Percent | None = Field(None, description="share of requests that are not 5xx, e.g. 99.9%")
    window: Seconds = Field(30 * 86400, description="SLO period for the error budget (default 30d)")
    description: str | None = None

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: str) -> str:
        if not _ENDPOINT.match(v):
            raise ValueError(f'expected "METHOD /path" like "GET /api/assets", got {v!r}')
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"use lower-case letters, digits, '-', '_' or '.', got {v!r}")
        return v


class MetricQueries(Strict):
    """How a threshold's metric is read from each metrics source."""

    prometheus: str | None = Field(None, description="PromQL returning one value (or one per instance)")
    scrape: str | None = Field(None, description="metric expression over a /metrics scrape")
    host: str | None = Field(None, description="psutil reading: cpu, memory, disk, disk_iops, connections")
    results: str | None = Field(None, description="path in results.json, e.g. aggregate.latency_ms.p95")


class Threshold(Strict):
    resource: str
    metric: str
    scale_up: float | None = None
    scale_down: float | None = None
    target: float | None = Field(None, description="HPA-style target value (target mode)")
    unit: Literal["percent", "ms", "count", "bytes"] = "count"
    for_: Seconds | None = Field(None, alias="for")
    playbook: str | None = None
    action: str | None = None
    severity: Literal["info", "warning", "critical"] = "warning"
    queries: MetricQueries = Field(default_factory=MetricQueries)

    @model_validator(mode="before")
    @classmethod
    def _units(cls, data: Any) -> Any:
        """scale_up/scale_down/target carry their unit ('70%', '500ms'); keep the number, record the unit."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        units = set()
        for key in ("scale_up", "scale_down", "target"):
            if data.get(key) is not None and not isinstance(data[key], bool):
                try:
                    value, unit = parse_quantity(data[key])
                except ValueError:
                    continue  # left as is: the field's own validation reports it
                data[key] = value
                units.add(unit)
        if "unit" not in data and units:
            data["unit"] = sorted(units - {"count"})[0] if units - {"count"} else "count"
        return data

    @model_validator(mode="after")
    def _mode(self) -> Threshold:
        if self.target is None and self.scale_up is None:
            raise ValueError("give scale_up (threshold mode) or target (HPA target mode)")
        if self.scale_up is not None and self.scale_down is not None and self.scale_down >= self.scale_up:
            raise ValueError(f"scale_down ({self.scale_down:g}) must be below scale_up ({self.scale_up:g})")
        return self

    @property
    def key(self) -> str:
        return f"{self.resource}.{self.metric}"


class ScalingPolicy(Strict):
    type: Literal["pods", "percent"]
    value: float = Field(gt=0)
    period: Seconds = 15


class Resource(Strict):
    min: int = Field(1, ge=0)
    max: int = Field(10, ge=1)
    current: int | None = Field(None, ge=0, description="replicas now, when no source can tell")
    capacity_rps: float | None = Field(None, gt=0, description="req/s one instance serves within the SLO")
    utilization_target: Percent = 70
    redundancy: int = Field(1, ge=0, description="spare instances on top of what load needs (N+1)")
    capacity: float | None = Field(None, gt=0, description="size of the resource for *_used metrics (e.g. GB)")
    scale_down_stabilization: Seconds = 300
    scale_up_stabilization: Seconds = 0
    scale_up_policies: list[ScalingPolicy] = [
        ScalingPolicy(type="pods", value=4, period=15), ScalingPolicy(type="percent", value=100, period=15)]
    scale_down_policies: list[ScalingPolicy] = [ScalingPolicy(type="percent", value=100, period=15)]
    plan_resource: str | None = Field(None, description="name of this resource in plans:")

    @model_validator(mode="after")
    def _bounds(self) -> Resource:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is above max ({self.max})")
        return self


class GrowthMetric(Strict):
    values: list[float] = Field(min_length=2, description="one value per horizon")
    unit: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _list(cls, data: Any) -> Any:
        if isinstance(data, list):
            data = {"values": data}
        if isinstance(data, dict) and isinstance(data.get("values"), list):
            unit = data.get("unit")
            conv = (lambda v: parse_size_bytes(v) / 1e9) if unit == "GB" else parse_count
            data = {**data, "values": [conv(v) if isinstance(v, str) else v for v in data["values"]]}
        return data


class Growth(Strict):
    horizons_months: list[float] = Field(min_length=2, description="month of each column, 0 is now")
    metrics: dict[str, GrowthMetric]
    peak_to_mean: float = Field(1.7, ge=1)
    start: str | None = Field(None, description="YYYY-MM of month 0 (for dates in the forecast)")

    @model_validator(mode="after")
    def _shape(self) -> Growth:
        if sorted(self.horizons_months) != self.horizons_months:
            raise ValueError("horizons_months must be increasing")
        for name, metric in self.metrics.items():
            if len(metric.values) != len(self.horizons_months):
                raise ValueError(f"metrics.{name} has {len(metric.values)} values for "
                                 f"{len(self.horizons_months)} horizons")
        return self


class PlanResource(Strict):
    name: str
    kind: Literal["compute", "database", "cache", "storage", "cdn", "load_balancer", "custom"]
    instance: str | None = None
    count: int = Field(1, ge=0)
    engine: str | None = None
    storage_gb: GigaBytes = 0
    transfer_gb: GigaBytes = 0
    multi_az: bool = False
    replicas: int = Field(0, ge=0, description="read replicas (database) or extra nodes (cache)")
    monthly_cost: float | None = Field(None, ge=0, description="fixed price (kind custom)")
    lcu: float = Field(1, ge=0, description="load balancer capacity units")
    stated_monthly: float | None = Field(None, ge=0, description="a hand-written figure to check")
    note: str | None = None


class Plan(Strict):
    description: str | None = None
    users: str | None = None
    months: list[float] | None = Field(None, description="[from, to] months this plan covers")
    stated_monthly: float | None = Field(None, ge=0, description="the plan's hand-written total, checked")
    source: str | None = None
    resources: list[PlanResource]


class Pricing(Strict):
    catalog: str = "aws-us-east-1"
    catalogs: list[str] = Field(default_factory=list, description="extra catalog files, later ones win")
    overrides: dict[str, float] = Field(default_factory=dict, description="item -> price, in catalog units")
    hours_per_month: float = 730


class GateSpec(Strict):
    criteria: list[str] = Field(default_factory=list, description="criteria for every scenario")
    scenarios: dict[str, list[str]] = Field(default_factory=dict, description="extra criteria per scenario")
    tolerance: Percent = 10
    abort_on_fail: list[str] = Field(default_factory=list, description="criteria that stop a run early")
    abort_grace: Seconds = 10


class LoadtestSpec(Strict):
    default_target: str | None = None
    max_duration: Seconds = 3600
    out_dir: str = "runs"


class AlertsSpec(Strict):
    runbook_base_url: str = "https://github.com/example/opskit/blob/main/playbooks/"
    scrape_interval: Seconds = 15
    labels: dict[str, str] = Field(default_factory=dict)


class Spec(Strict):
    service: Service
    targets: dict[str, Target] = Field(default_factory=dict)
    slos: list[SLO] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=list)
    resources: dict[str, Resource] = Field(default_factory=dict)
    growth: Growth | None = None
    plans: dict[str, Plan] = Field(default_factory=dict)
    pricing: Pricing = Pricing()
    gate: GateSpec = GateSpec()
    loadtest: LoadtestSpec = LoadtestSpec()
    alerts: AlertsSpec = AlertsSpec()

    @model_validator(mode="after")
    def _references(self) -> Spec:
        names = [s.name for s in self.slos]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"slos: names must be unique, repeated: {', '.join(dupes)}")
        return self
