"""The data the scaling core returns: one Decision per threshold row, one ResourceDecision per resource."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

DecisionKind = Literal["scale_up", "scale_down", "hold", "no_data"]
Mode = Literal["threshold", "target", "capacity"]  # capacity: demand / measured per-instance req/s


@dataclass(frozen=True)
class Decision:
    """What one threshold row says about its metric, in numbers and in words."""

    resource: str
    metric: str
    mode: Mode
    decision: DecisionKind
    value: float | None
    unit: str
    reason: str
    scale_up: float | None = None
    scale_down: float | None = None
    target: float | None = None
    window_s: float | None = None  # the row's `for:`
    observed_s: float | None = None  # how long the value has been beyond the limit it crossed
    pending: bool = False  # beyond a limit, but not yet for the whole window
    proposed: int | None = None  # replicas this metric alone asks for
    playbook: str | None = None
    action: str | None = None
    severity: str = "warning"
    query: str = ""
    samples: int = 0


@dataclass(frozen=True)
class CapacitySource:
    """Where a per-instance capacity came from: a capacity probe's run, or a number typed into the spec."""

    kind: Literal["probe", "spec"]
    run_id: str | None = None
    date: str | None = None  # when the probe ran (ISO 8601)
    commit: str | None = None  # the git commit it measured
    target: str | None = None  # the target it loaded
    path: str | None = None  # its results.json
    stale: bool = False
    stale_reason: str | None = None  # too old, or measured at another commit

    @property
    def text(self) -> str:
        if self.kind == "spec":
            return "typed into the spec"
        when, sha = (self.date or "?")[:10], (self.commit or "unknown")[:12]
        return (f"probe {self.run_id or self.path} ({when}, commit {sha}, target {self.target or '?'})"
                + (" STALE" if self.stale else ""))


@dataclass(frozen=True)
class Capacity:
    """A resource's measured (or declared) req/s per instance within the SLO, for the scale check's
    instance math: desired = ceil(demand / (capacity_rps x utilization target))."""

    resource: str
    capacity_rps: float | None  # None: it could not be resolved, and `error` says why
    utilization_target_pct: float
    source: CapacitySource
    error: str | None = None

    @property
    def target_rps(self) -> float | None:
        """What one instance should carry: its capacity at the utilization target."""
        return None if self.capacity_rps is None else self.capacity_rps * self.utilization_target_pct / 100


@dataclass(frozen=True)
class Recommendation:
    """A resource's desired count before stabilization, kept for the stabilization windows (HPA keeps these)."""

    resource: str
    replicas: int
    at: dt.datetime


@dataclass(frozen=True)
class ResourceDecision:
    resource: str
    decision: DecisionKind
    current: int | None
    recommended: int | None
    desired: int | None  # max of the metric proposals, before stabilization, rate policies and bounds
    reason: str
    min: int
    max: int
    limited_by: str | None = None  # "max", "min", "scale_up_policy", "scale_down_policy", "stabilization"
    playbook: str | None = None
    action: str | None = None
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Evaluation:
    now: dt.datetime
    decisions: tuple[Decision, ...]
    resources: dict[str, ResourceDecision]
    recommendations: tuple[Recommendation, ...] = field(default=())  # to remember for the next evaluation
    capacities: dict[str, Capacity] = field(default_factory=dict)  # resource -> the capacity its row used

    @property
    def should_scale(self) -> bool:
        return any(r.decision in ("scale_up", "scale_down") for r in self.resources.values())

    @property
    def all_no_data(self) -> bool:
        return bool(self.decisions) and all(d.decision == "no_data" for d in self.decisions)
