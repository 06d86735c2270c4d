"""The results document's types: results.json (docs/results-schema.md) as frozen dataclasses, block by block.

Field names are the JSON keys (tests/test_runmodel_schema.py checks them against the schema document);
a field with `derived` metadata is computed by the reader and is not in the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

DERIVED = {"derived": True}
SCHEMA_VERSION = 2
# schema_version 1 (the per-second rows' p50/p95/p99 flat, beside t; the probe steps' too) is still read,
# for one version: the rows' latencies moved into a latency_ms block like every other scope's
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class Second:
    """One row of a per-second timeline (endpoint rows have only t..latency_ms). In the file the row's
    percentiles are its latency_ms block, as in every other scope; here they are plain fields."""

    t: int
    requests: int
    errors: int
    rps: float | None = None
    p50: float | None = field(default=None, metadata=DERIVED)
    p95: float | None = field(default=None, metadata=DERIVED)
    p99: float | None = field(default=None, metadata=DERIVED)
    dropped: float | None = None
    in_flight: float | None = None
    scheduled: float | None = None
    lag_max_ms: float | None = None
    step: int | None = None

    # written to the file (the successes' p50/p95/p99 of the second), read into the fields above
    JSON_COMPUTED: ClassVar[tuple[str, ...]] = ("latency_ms",)

    @property
    def latency_ms(self) -> dict[str, float | None]:
        return {"p50": self.p50, "p95": self.p95, "p99": self.p99}


@dataclass(frozen=True)
class Scope:
    """The whole run (the aggregate block) or one endpoint."""

    name: str = field(metadata=DERIVED)
    requests: int
    failures: int
    rps: float | None
    latency_ms: Mapping[str, float | None]
    timeline: tuple[Second, ...]
    dropped: float | None = field(default=None, metadata=DERIVED)  # whole run only: generator.dropped
    failures_by_kind: Mapping[str, int] = field(default_factory=dict)
    # latency_ms is of the successful requests; the failures are timed apart here
    failure_latency_ms: Mapping[str, float | None] = field(default_factory=dict)

    # written to the file, computed here from failures and requests
    JSON_COMPUTED: ClassVar[tuple[str, ...]] = ("error_rate",)

    @property
    def error_rate(self) -> float | None:
        return self.failures / self.requests if self.requests else None


@dataclass(frozen=True)
class Stage:
    """One stage of the load schedule: a rate ramp (open model) or a user count (closed model)."""

    name: str
    duration_s: float
    start_rate: float | None = None
    end_rate: float | None = None
    users: int | None = None


@dataclass(frozen=True)
class Step:
    """One load level of the run (capacity fit uses concurrency as N and rps as X)."""

    index: int
    name: str | None
    rate: float | None
    users: float | None
    concurrency: float
    start_s: float | None
    duration_s: float | None
    active_s: float | None
    scheduled: float | None
    dropped: float | None
    requests: int
    failures: int | None
    failures_by_kind: Mapping[str, int]
    rps: float
    error_rate: float | None
    latency_ms: Mapping[str, float | None]
    failure_latency_ms: Mapping[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Worker:
    """One generator process that took part: proc is its key in cpu_samples; id is Locust's client id
    for a worker (the master's own process in a single-process run is "local")."""

    proc: str
    id: str
    host: str
    pid: int


@dataclass(frozen=True)
class Generator:
    """The load generator's own health (open-model rates, drops, CPU) and the processes that made the load."""

    cpu_max: float | None = None
    cpu_mean: float | None = None
    intended_rate: float | None = None
    achieved_rate: float | None = None
    scheduled: float | None = None
    sent: float | None = None
    dropped: float | None = None
    lag_max_ms: float | None = None
    task_errors: float | None = None
    processes: float | None = None
    cpu_samples: Mapping[str, Sequence[float]] = field(default_factory=dict)
    workers: tuple[Worker, ...] = ()


@dataclass(frozen=True)
class Failover:
    """The failover scenario's kill of a service worker and the recovery after it."""

    killed_at_s: float
    errors_after_kill: int
    recovered: bool
    recovery_s: float | None
    killed_pid: int | None = None


@dataclass(frozen=True)
class Fault:
    """A failure scenario's fault (opskit/faults): its window, what it cost, how the service recovered."""

    kind: str
    injected_at_s: float | None  # run seconds when the injection began (null: never injected)
    cleared_at_s: float | None  # run seconds when the fault had ended
    errors_during: int
    errors_after: int
    error_budget_spent: float | None  # a fraction of the SLO window's error budget
    p95_before_ms: float | None
    p95_during_ms: float | None
    recovery_s: float | None  # null: never back within the SLO for 5 s before the run ended
    acknowledged_writes: int | None  # 201s the load got (null: not checked)
    lost_writes: int | None  # acknowledged ids missing from the database after the run
    detail: str | None = None  # what was done, in words
    ramp_s: float | None = None  # seconds from the injection's start until the fault was in force
    held_bytes: int | None = None  # memory-pressure: bytes really resident once in force (null: other faults)


@dataclass(frozen=True)
class Histograms:
    """HdrHistogram encodings (base64, microseconds) to merge or re-query runs exactly."""

    unit: str = "us"
    aggregate: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    steps: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunInfo:
    """The run block: what ran, against what, when, and whether its numbers can be trusted."""

    scenario: str
    model: str
    valid: bool = True
    invalid_reason: str | None = None
    interrupted: bool = False
    aborted: str | None = None
    duration_s: float | None = None
    intended_rate: float | None = None
    users: float | None = None
    target: str | None = None
    target_name: str | None = None
    environment: str | None = None
    run_id: str | None = None
    metrics_url: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    spec_hash: str | None = None
    git_sha: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict)
    processes: int | None = None
    locustfile: str | None = None
    max_in_flight: int | None = None
    stages: tuple[Stage, ...] = ()
    limited_by: str = "none"  # none | service (valid: the answer is "no") | generator (invalid)
    limited_reason: str | None = None
    latency_lower_bound: bool = False  # arrivals were dropped (never sent): the percentiles leave them out


@dataclass(frozen=True)
class ProbeStepRow:
    """One step of a capacity probe: an open-model load at one rate, and its verdict."""

    rate: float
    achieved: float | None
    latency_ms: Mapping[str, float | None]  # the step's p50, p95 and p99
    error_rate: float | None
    in_flight_max: int | None
    verdict: str  # pass | generator | throughput | errors | slo:<metric>
    phase: str | None = None  # ramp | descend | bisect | confirm (closed: users)
    why: str | None = None
    users: int | None = None  # the closed model's sweep: the concurrency of the step
    results: str | None = None  # the step's own results.json, relative to the probe's folder
    cpu_pct: float | None = None  # the service's CPU (percent of its workers' cores), when it was watched
    memory_pct: float | None = None  # the service's memory (percent of the host's)

    @property
    def p50(self) -> float | None:
        return self.latency_ms.get("p50")

    @property
    def p95(self) -> float | None:
        return self.latency_ms.get("p95")

    @property
    def p99(self) -> float | None:
        return self.latency_ms.get("p99")


@dataclass(frozen=True)
class Probe:
    """The capacity probe's answer (`opskit capacity probe`): the highest rate held within the SLO."""

    model: str
    max_rate_within_slo: float | None
    saturation_rate: float | None
    limited_by: str  # slo:<metric> | errors | throughput | generator | max_rate
    interval: tuple[float | None, float | None]
    steps: tuple[ProbeStepRow, ...]
    slo: tuple[str, ...] = ()
    error_budget: float | None = None
    step_s: float | None = None
    notes: tuple[str, ...] = ()

    @property
    def lower_bound_only(self) -> bool:
        return self.limited_by in ("generator", "max_rate")


@dataclass(frozen=True)
class RunResults:
    """A whole results.json. `total` is the aggregate block; the run block's facts read through."""

    run: RunInfo
    aggregate: Scope
    endpoints: Mapping[str, Scope] = field(default_factory=dict)
    timeline: tuple[Second, ...] = ()
    steps: tuple[Step, ...] | None = None  # None: the file has no steps list
    generator: Generator | None = None
    failover: Failover | None = None
    histograms: Histograms | None = None
    fault: Fault | None = None
    probe: Probe | None = None
    schema_version: int = SCHEMA_VERSION
    # the file as read, for path queries into it (scale's results source) and showing blocks as written
    document: Mapping[str, Any] = field(default_factory=dict, metadata=DERIVED, repr=False, compare=False)

    @property
    def total(self) -> Scope:
        return self.aggregate

    @property
    def scenario(self) -> str:
        return self.run.scenario

    @property
    def model(self) -> str:
        return self.run.model

    @property
    def valid(self) -> bool:
        return self.run.valid

    @property
    def invalid_reason(self) -> str | None:
        return self.run.invalid_reason

    @property
    def interrupted(self) -> bool:
        return self.run.interrupted

    @property
    def aborted(self) -> str | None:
        return self.run.aborted

    @property
    def duration_s(self) -> float | None:
        return self.run.duration_s

    @property
    def intended_rate(self) -> float | None:
        return self.run.intended_rate

    @property
    def users(self) -> float | None:
        return self.run.users

    @property
    def target(self) -> str | None:
        return self.run.target

    @property
    def started_at(self) -> str | None:
        return self.run.started_at

    @property
    def spec_hash(self) -> str | None:
        return self.run.spec_hash

    @property
    def git_sha(self) -> str | None:
        return self.run.git_sha
