"""The schema of opskit.yaml. Strict: unknown keys are errors. Values keep the units people write
(5m, 200ms, 70%) in the file and come out canonical: seconds, milliseconds, percent, bytes.

Each later area reads its own section: loadtest (targets, growth, loadtest), gate (slos, gate),
scaling and alerts (thresholds, resources, alerts), cost and capacity (plans, pricing, growth, resources).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

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


def _quantity_number(value: Any) -> float:
    """A threshold level as written ('70%', '500ms', 3000, '80GB'), as its number. The unit is recorded
    by Threshold._units before this runs; here a value that is not a quantity gets the message that
    says what is expected, not pydantic's "unable to parse string as a number"."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a value like 70%, 500ms, 3000 or 80GB, got {value!r}")
    return parse_quantity(value)[0]


Quantity = Annotated[float, BeforeValidator(_quantity_number)]


class Strict(BaseModel):
    # allow_inf_nan: `.nan` and `.inf` are valid YAML floats but never a valid setting
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False)


class Service(Strict):
    name: str
    description: str | None = None
    job: str = Field("asset-service", description="Prometheus job label of the service's scrape target")
    url: str = Field("http://127.0.0.1:8000", description="where the service runs when started locally")
    latency_buckets_ms: list[float] = Field(
        default=[5, 10, 25, 50, 100, 200, 250, 500, 1000, 2500, 5000, 10000],
        description="histogram bucket bounds the service exposes; must include every SLO latency",
    )

    @field_validator("latency_buckets_ms")
    @classmethod
    def _buckets(cls, v: list[float]) -> list[float]:
        if not v or any(b <= 0 for b in v) or any(a >= b for a, b in zip(v, v[1:], strict=False)):
            raise ValueError(f"expected positive, strictly increasing bucket bounds in ms, got {v}")
        return v


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
    scale_up: Quantity | None = None
    scale_down: Quantity | None = None
    target: Quantity | None = Field(None, description="HPA-style target value (target mode)")
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
        if self.target is not None and self.target <= 0:
            raise ValueError(f"target must be above 0 (the usage ratio divides by it), got {self.target:g}")
        return self

    @property
    def key(self) -> str:
        return f"{self.resource}.{self.metric}"


class ScalingPolicy(Strict):
    type: Literal["pods", "percent"]
    value: float = Field(gt=0)
    period: Seconds = 15


class ProbeCapacity(Strict):
    """`capacity_rps: {from: probe}`: the capacity probe's answer instead of a typed-in number."""

    from_: Literal["probe"] = Field(alias="from")
    run: str | None = Field(None, description="a probe's results.json or folder [default: the newest probe under "
                            "loadtest.out_dir]")
    max_age: Seconds = Field(30 * 86400, description="older than this, the probe is flagged stale (default 30d)")


class Resource(Strict):
    min: int = Field(1, ge=0)
    max: int = Field(10, ge=1)
    current: int | None = Field(None, ge=0, description="replicas now, when no source can tell")
    capacity_rps: float | None = Field(None, gt=0, description="req/s one instance serves within the SLO, or "
                                       "{from: probe} (then held in capacity_probe)")
    capacity_probe: ProbeCapacity | None = Field(None, description="set by capacity_rps: {from: probe}")
    utilization_target: Percent = 70
    redundancy: int = Field(1, ge=0, description="spare instances on top of what load needs (N+1)")
    capacity: float | None = Field(None, gt=0, description="size of the resource for *_used metrics (e.g. GB)")
    scale_down_stabilization: Seconds = 300
    scale_up_stabilization: Seconds = 0
    scale_up_policies: list[ScalingPolicy] = [
        ScalingPolicy(type="pods", value=4, period=15), ScalingPolicy(type="percent", value=100, period=15)]
    scale_down_policies: list[ScalingPolicy] = [ScalingPolicy(type="percent", value=100, period=15)]
    scale_up_select_policy: Literal["max", "min", "disabled"] = Field(
        "max", description="HPA selectPolicy: the policy allowing the most change (max), the least, or none")
    scale_down_select_policy: Literal["max", "min", "disabled"] = "max"
    replicas_query: MetricQueries = Field(
        MetricQueries(), description="how a source counts the replicas now (e.g. PromQL count of up targets)")
    plan_resource: str | None = Field(None, description="name of this resource in plans:")

    @model_validator(mode="before")
    @classmethod
    def _capacity_from(cls, data: Any) -> Any:
        # capacity_rps: {from: probe, ...} is a source, not a number: the capacity commands resolve it
        if isinstance(data, dict) and isinstance(data.get("capacity_rps"), dict):
            data = dict(data)
            data["capacity_probe"] = data.pop("capacity_rps")
        return data

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


class GrowthDriver(Strict):
    """How a threshold's metric follows growth: value = growth metric x factor (x 100 / capacity)."""

    metric: str = Field(description="a growth metric, or peak_rps (daily_requests / 86400 x peak_to_mean)")
    factor: float = Field(1, gt=0, description="threshold units per unit of the growth metric")
    of_capacity: bool = Field(False, description="express as percent of resources.<resource>.capacity")
    note: str | None = Field(None, description="why this relation holds (shown as an assumption)")


class Growth(Strict):
    horizons_months: list[float] = Field(min_length=2, description="month of each column, 0 is now")
    metrics: dict[str, GrowthMetric]
    peak_to_mean: float = Field(1.7, ge=1)
    start: str | None = Field(None, description="YYYY-MM of month 0 (for dates in the forecast)")
    drivers: dict[str, GrowthDriver] = Field(
        default_factory=dict, description='threshold "resource.metric" -> the growth metric that drives it')

    @model_validator(mode="after")
    def _shape(self) -> Growth:
        if sorted(self.horizons_months) != self.horizons_months:
            raise ValueError("horizons_months must be increasing")
        for name, metric in self.metrics.items():
            if len(metric.values) != len(self.horizons_months):
                raise ValueError(f"metrics.{name} has {len(metric.values)} values for "
                                 f"{len(self.horizons_months)} horizons")
            if any(v < 0 for v in metric.values):
                raise ValueError(f"metrics.{name}: values cannot be negative")
        known = set(self.metrics) | {"peak_rps"}
        for key, driver in self.drivers.items():
            if key.count(".") != 1:
                raise ValueError(f'drivers.{key}: expected "resource.metric" like "database.storage_utilization"')
            if driver.metric not in known:
                raise ValueError(f"drivers.{key}.metric: unknown growth metric {driver.metric!r}; "
                                 f"known: {', '.join(sorted(known))}")
        if self.start is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", self.start):
            raise ValueError(f"start: expected YYYY-MM, got {self.start!r}")
        return self


class Usage(Strict):
    """Usage assumptions behind usage-priced components (Infracost's usage file). Under pricing.usage they
    are the defaults; under a resource's usage: they override them for that resource."""

    root_volume_gb: GigaBytes | None = Field(None, description="EBS root volume per compute instance "
                                             "without storage_gb")
    backup_ratio: float | None = Field(None, ge=0, description="RDS backup storage / provisioned storage "
                                       "(up to 1.0 is the free allocation)")
    get_requests: Count | None = Field(None, description="S3 GET/SELECT requests a month")
    put_requests: Count | None = Field(None, description="S3 PUT/COPY/POST/LIST requests a month")
    requests: Count | None = Field(None, description="CloudFront HTTPS requests a month")
    processed_gb: GigaBytes | None = Field(None, description="data a NAT gateway processes a month")


class PlanResource(Strict):
    name: str
    kind: Literal["compute", "database", "cache", "storage", "cdn", "load_balancer", "nat_gateway", "custom"]
    instance: str | None = None
    count: int = Field(1, ge=0)
    engine: str | None = None
    storage_gb: GigaBytes = 0
    storage_type: str | None = Field(None, description="gp2/gp3 (compute, database) or S3 class; kind default")
    transfer_gb: GigaBytes = 0
    multi_az: bool = False
    replicas: int = Field(0, ge=0, description="read replicas (database) or extra nodes (cache)")
    monthly_cost: float | None = Field(None, ge=0, description="fixed price (kind custom)")
    lcu: float = Field(1, ge=0, description="load balancer capacity units")
    stated_monthly: float | None = Field(None, ge=0, description="a hand-written figure to check")
    note: str | None = None
    usage: Usage | None = Field(None, description="usage assumptions for this resource (over pricing.usage)")


class Plan(Strict):
    description: str | None = None
    users: str | None = None
    months: list[float] | None = Field(None, description="[from, to] months this plan covers")
    stated_monthly: float | None = Field(None, ge=0, description="the plan's hand-written total, checked")
    source: str | None = None
    resources: list[PlanResource]

    @model_validator(mode="after")
    def _shape(self) -> Plan:
        if self.months is not None and (len(self.months) != 2 or not 0 <= self.months[0] < self.months[1]):
            raise ValueError(f"months: expected [from, to] with 0 <= from < to, got {self.months}")
        names = [r.name for r in self.resources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"resources: names must be unique within a plan, repeated: {', '.join(dupes)}")
        return self


class Pricing(Strict):
    catalog: str = "aws-us-east-1"
    catalogs: list[str] = Field(default_factory=list, description="extra catalog files, later ones win")
    overrides: dict[str, Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict, description="item -> price, in catalog units, e.g. ec2/t3.medium: 0.0416")
    hours_per_month: float = Field(730, gt=0, le=744)
    usage: Usage = Field(default_factory=Usage, description="default usage assumptions for every plan")
    free_tier: bool = Field(True, description="subtract AWS's always-free monthly allowances")


def _check_criterion(text: str) -> str:
    from opskit.gate.criteria import CriterionError, parse

    try:
        parse(text)
    except CriterionError as exc:
        raise ValueError(f"criterion {text!r}: column {exc.column}: {exc.message}") from None
    return text


CriterionText = Annotated[str, AfterValidator(_check_criterion)]


class GateSpec(Strict):
    criteria: list[CriterionText] = Field(default_factory=list, description="criteria for every scenario")
    scenarios: dict[str, list[CriterionText]] = Field(default_factory=dict,
                                                      description="extra criteria per scenario")
    # the same range as `gate --tolerance` (a latency may be allowed to more than double on a noisy runner)
    tolerance: Annotated[float, BeforeValidator(parse_percent), Field(ge=0, le=1000)] = 10
    abort_on_fail: list[CriterionText] = Field(default_factory=list, description="criteria that stop a run early")
    abort_grace: Seconds = 10
    strict: bool = Field(False, description="an inconclusive baseline comparison exits 3 instead of 0")


class LoadtestSpec(Strict):
    default_target: str | None = Field(None, description="target used when neither --target nor --host is given "
                                       "(default: the embedded asset service)")
    max_duration: Seconds = Field(3600, gt=0, description="longest run allowed; longer ones are refused")
    out_dir: str = Field("runs", description="where run folders <timestamp>-<scenario>/ are created")


class Runbooks(Strict):
    """Runbooks for alerts that have no playbook bound: a URL, or a playbook name (resolved like one)."""

    slo: str | None = Field(None, description="SLO burn-rate alerts")
    health: str | None = Field(None, description="service health alerts (target down, metrics absent)")
    threshold: str | None = Field(None, description="threshold alerts whose row names no playbook")


class AlertRouting(Strict):
    """Timings of the Alertmanager config opskit renders, and where playbook-bound alerts go."""

    group_wait: Seconds = Field(30, gt=0, description="wait before the first notification of a group")
    group_interval: Seconds = Field(300, gt=0, description="wait before notifying a group of new alerts")
    repeat_interval: Seconds = Field(43200, gt=0, description="re-send a still-firing group after this")
    playbook_receiver: str = Field("http://127.0.0.1:19095/alerts",
                                   description="webhook URL of `opskit playbook serve` for alerts with a playbook")


class AlertsSpec(Strict):
    runbook_base_url: str = "https://github.com/example/opskit/blob/main/playbooks/"
    scrape_interval: Seconds = Field(15, gt=0)
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on every alert")
    runbooks: Runbooks = Runbooks()
    routing: AlertRouting = AlertRouting()
    default_for: Seconds = Field(300, gt=0, description="for: of a threshold alert whose row has none")
    resource_selectors: dict[str, str] = Field(
        default_factory=dict,
        description='PromQL label matchers picking a resource\'s exporter metrics for default queries '
                    '(default: job="RESOURCE")',
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key) or key.startswith("__"):
                raise ValueError(f"{key!r} is not a Prometheus label name")
            if key in ("severity", "slo", "sli", "resource", "metric", "playbook"):
                raise ValueError(f"label {key!r} is set by opskit itself")
        return v


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
