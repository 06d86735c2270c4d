"""The one typed model of a load-test run: results.json (docs/results-schema.md) and the runner's config.

`opskit loadtest run`'s runner writes results.json (once); the gate, capacity, the load-test command and
resultsfile.newest read it through `read` (or resultsfile.load_run), which checks strictly and names the
key path of the first problem (scale's results source still takes the checked document, `parse`/`check`,
and reads the paths its thresholds name): the gate fails closed, so anything it cannot read is an
UnreadableResults, never a guess. `from_snapshot` reads the partial document a running load test hands
the AbortWatcher, where missing pieces are derived from the timeline.

Field names are the JSON keys (tests/test_runmodel_schema.py checks them against the schema document);
a field with `derived` metadata is computed by the reader and is not in the file. Readers ignore keys
they do not know; the `fault` block is typed (Fault), `probe` is kept as read until it gets a type.
This module imports nothing of opskit (resultsfile, the file side, imports it), nor the writer, nor locust.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["SCHEMA_VERSION", "Failover", "Fault", "FaultSetup", "Generator", "Histograms", "Probe", "ProbeStepRow",
           "RunInfo", "RunMeta", "RunResults", "RunnerConfig", "RunnerControl", "Scope", "Second", "Stage", "Step",
           "UnreadableResults", "Worker", "from_snapshot", "parse_results", "read", "read_steps", "read_timeline"]

DERIVED = {"derived": True}
SCHEMA_VERSION = 2
# schema_version 1 (the per-second rows' p50/p95/p99 flat, beside t; the probe steps' too) is still read,
# for one version: the rows' latencies moved into a latency_ms block like every other scope's
READABLE_VERSIONS = (1, 2)


class UnreadableResults(ValueError):
    """The results cannot answer the question. kind: "missing" or "unreadable" (the file itself),
    "empty", "json" (truncated or corrupt), "schema" (not a results file of this version), or
    "content" (a key a reader needs is missing or malformed)."""

    def __init__(self, message: str, kind: str = "content") -> None:
        super().__init__(message)
        self.kind = kind


def parse(text: str, name: str = "results.json") -> Mapping[str, Any]:
    """A results document's text parsed and its schema_version checked (not yet its blocks)."""
    if not text.strip():
        raise UnreadableResults(f"{name}: the file is empty", "empty")
    try:
        data = json.loads(text, parse_int=_int)
    except RecursionError:
        raise UnreadableResults(f"{name}: not a results file: JSON nested too deeply", "json") from None
    except json.JSONDecodeError as exc:
        # a writer killed mid-write leaves a prefix: say so, it is the usual cause and not the user's typo
        stripped = text.strip()
        cut = exc.pos >= len(text.rstrip()) - 1 or (stripped.startswith("{") and not stripped.endswith("}"))
        what = f"truncated, the file ends early (column {exc.colno}: {exc.msg})" if cut else \
            f"{exc.msg} (column {exc.colno})"
        raise UnreadableResults(f"{name}:{exc.lineno}: not valid JSON: {what}", "json") from None
    return check(data, name)


def _int(text: str) -> int | float:
    # an integer no float can hold (1e400 written out) becomes inf, which every reader refuses with the
    # key path ("expected a number"), instead of an OverflowError deep in the arithmetic
    # (the length test first: int() of more than 4,300 digits raises ValueError in Python 3.11)
    if len(text.lstrip("-")) <= 18:
        return int(text)
    return float("-inf") if text.startswith("-") else float("inf")


def check(data: object, name: str = "results.json") -> Mapping[str, Any]:
    """The top level of a results document: an object of the schema_version this opskit reads."""
    if not isinstance(data, dict):
        raise UnreadableResults(f"{name}: not a results file: expected a JSON object at the top level", "schema")
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise UnreadableResults(f"{name}: schema_version is {version!r}; this opskit reads schema_version "
                                f"{SCHEMA_VERSION} (and {READABLE_VERSIONS[0]}) (docs/results-schema.md)", "schema")
    return data


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


# ---- the runner's config: what `opskit loadtest run` hands the runner process (and it its workers) ----


@dataclass(frozen=True)
class RunMeta:
    """What the command knows about a run before it starts; the runner copies it into results' run block
    (in this order, ahead of what the runner measures)."""

    run_id: str | None = None
    scenario: str | None = None
    target_name: str | None = None
    environment: str | None = None
    spec_hash: str | None = None
    git_sha: str | None = None
    locustfile: str | None = None
    versions: Mapping[str, str | None] = field(default_factory=dict)
    stages: tuple[Stage, ...] = ()
    max_in_flight: int | None = None
    target: str | None = None


@dataclass(frozen=True)
class RunnerConfig:
    """The runner's whole input; it travels as JSON (a private file, Locust's spawn message)."""

    scenario: str
    model: str  # "open" or "closed"
    host: str
    locustfile: str
    stages: tuple[Stage, ...]
    max_in_flight: int
    timeout_s: float
    out_dir: str
    run: RunMeta = field(default_factory=RunMeta)
    user_classes: tuple[str, ...] | None = None
    tick_s: float | None = None  # None: auto
    spawn_rate: float = 1.0
    workers: int = 0  # worker processes in all (local and remote)
    local_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    ui: bool = False
    web_port: int | None = None
    metrics_port: int | None = None
    metrics_linger_s: float = 0.0
    params: Mapping[str, Any] = field(default_factory=dict)  # the locustfile's own parameters (context.py)
    locustfile_source: str | None = None  # for workers: remote machines have no copy
    # a private JSON file where the CLI leaves what only it knows (abort reason, failover kill) for the
    # runner to put in results.json: the runner is the file's one writer
    control_path: str | None = None
    fault: FaultSetup | None = None  # a failure scenario: how the runner judges and checks it

    @property
    def open_model(self) -> bool:
        return self.model == "open"

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunnerConfig:
        raw = dict(data)
        run = dict(raw.pop("run", None) or {})
        run["stages"] = tuple(Stage(**s) for s in run.get("stages") or ())
        fault = raw.pop("fault", None)
        return cls(**{**raw, "stages": tuple(Stage(**s) for s in raw["stages"]),
                      "fault": FaultSetup(**{**fault, "p95_ms": dict(fault.get("p95_ms") or {})}) if fault else None,
                      "user_classes": tuple(raw["user_classes"]) if raw.get("user_classes") else None,
                      "run": RunMeta(**run)})


@dataclass(frozen=True)
class FaultSetup:
    """What the runner needs to write a failure scenario's fault block: the SLO objectives it is judged
    against and where the acknowledged writes are checked (the password comes from a file, never here)."""

    kind: str
    availability: float  # a fraction
    p95_ms: Mapping[str, float]  # endpoint -> p95 objective
    slo_window_s: float
    writes_dir: str | None = None  # where the locustfile records acknowledged writes
    db_url: str | None = None  # the stack's PostgreSQL, without a password
    password_file: str | None = None


@dataclass(frozen=True)
class RunnerControl:
    """What the CLI tells the runner during a run, for results.json (RunnerConfig.control_path)."""

    aborted: str | None = None  # the abort_on_fail reason
    failover_at_s: float | None = None  # when the failover scenario killed a service worker...
    killed_pid: int | None = None  # ...and which
    fault_injected_at_s: float | None = None  # a failure scenario's fault window (opskit/faults/schedule)
    fault_cleared_at_s: float | None = None
    fault_detail: str | None = None
    fault_ramp_s: float | None = None
    fault_held_bytes: int | None = None

    @classmethod
    def from_json(cls, data: object) -> RunnerControl:
        got = _obj(data)
        return cls(aborted=_str(got.get("aborted")), failover_at_s=_keep(got.get("failover_at_s")),
                   killed_pid=_int_or_none(got.get("killed_pid")),
                   fault_ramp_s=_keep(got.get("fault_ramp_s")),
                   fault_held_bytes=_int_or_none(got.get("fault_held_bytes")),
                   fault_injected_at_s=_keep(got.get("fault_injected_at_s")),
                   fault_cleared_at_s=_keep(got.get("fault_cleared_at_s")), fault_detail=_str(got.get("fault_detail")))


def parse_results(text: str, name: str = "results.json") -> RunResults:
    """A finished run's results file, or UnreadableResults saying where and what."""
    return read(parse(text, name), name)


def read(doc: object, name: str = "results.json") -> RunResults:
    """A finished run's parsed results document, read strictly."""
    data = check(doc, name)
    r = _Reader(name)
    run = r.mapping(data, "run")
    aggregate = r.mapping(data, "aggregate")
    generator = _obj(data.get("generator"))
    timeline = r.timeline(data.get("timeline"), "timeline")
    dropped = r.number(generator, "dropped", "generator.dropped", optional=True)
    if dropped is None and timeline and all(s.dropped is not None for s in timeline):
        dropped = sum(s.dropped or 0 for s in timeline)
    total = r.scope("(all)", aggregate, "aggregate", timeline, dropped)
    endpoints_raw = data.get("endpoints", {})
    if not isinstance(endpoints_raw, dict):
        raise UnreadableResults(f"{name}: endpoints: expected an object")
    endpoints = {}
    for ep, body in endpoints_raw.items():
        where = f"endpoints.{ep}"
        if not isinstance(body, dict):
            raise UnreadableResults(f"{name}: {where}: expected an object")
        rows = dense(r.timeline(body.get("timeline"), f"{where}.timeline"), timeline)
        endpoints[ep] = r.scope(ep, body, where, rows, None)
    info = RunInfo(
        scenario=r.text(run, "scenario", "run.scenario"),
        model=r.text(run, "model", "run.model"),
        valid=r.flag(run, "valid", "run.valid"),
        invalid_reason=_str(run.get("invalid_reason")),
        interrupted=bool(run.get("interrupted") or False),
        aborted=_aborted(run.get("aborted")),
        duration_s=r.number(run, "duration_s", "run.duration_s", optional=True),
        intended_rate=r.number(run, "intended_rate", "run.intended_rate", optional=True),
        users=r.number(run, "users", "run.users", optional=True),
        target=_str(run.get("target")), target_name=_str(run.get("target_name")),
        environment=_str(run.get("environment")), run_id=_str(run.get("run_id")),
        metrics_url=_str(run.get("metrics_url")),
        started_at=_str(run.get("started_at")), ended_at=_str(run.get("ended_at")),
        spec_hash=_str(run.get("spec_hash")), git_sha=_str(run.get("git_sha")),
        versions={str(k): _str(v) for k, v in _obj(run.get("versions")).items()},
        processes=_int_or_none(run.get("processes")), locustfile=_str(run.get("locustfile")),
        max_in_flight=_int_or_none(run.get("max_in_flight")),
        stages=tuple(_stage(s) for s in run.get("stages") or () if isinstance(s, dict)),
        limited_by=_str(run.get("limited_by")) or "none", limited_reason=_str(run.get("limited_reason")),
        latency_lower_bound=run.get("latency_lower_bound") is True,
    )
    return RunResults(
        run=info, aggregate=total, endpoints=endpoints, timeline=timeline,
        steps=read_steps(data, name) if "steps" in data else None,
        generator=_generator(generator) if "generator" in data else None,
        failover=_failover(data.get("failover")), histograms=_histograms(data.get("histograms")),
        fault=_fault(data.get("fault"), r),
        probe=read_probe(data.get("probe"), name), document=data,
    )


def read_probe(value: Any, name: str) -> Probe | None:
    """The probe block (None when absent); a malformed one names its key path."""
    if value is None:
        return None
    r = _Reader(name)
    if not isinstance(value, dict):
        raise r.bad("probe", "expected an object")
    raw_steps = value.get("steps")
    if not isinstance(raw_steps, list):
        raise r.bad("probe.steps", "missing" if raw_steps is None else "expected a list")
    rows = []
    for i, s in enumerate(raw_steps):
        where = f"probe.steps[{i}]"
        if not isinstance(s, dict):
            raise r.bad(where, "expected an object")
        rate = r.number(s, "rate", f"{where}.rate")
        assert rate is not None
        rows.append(ProbeStepRow(
            rate=rate, achieved=_num_or_none(s.get("achieved")),
            latency_ms={k: _num_or_none(_percentile(s, k)) for k in ("p50", "p95", "p99")},
            error_rate=_num_or_none(s.get("error_rate")), in_flight_max=_int_or_none(s.get("in_flight_max")),
            verdict=r.text(s, "verdict", f"{where}.verdict"), phase=_str(s.get("phase")), why=_str(s.get("why")),
            users=_int_or_none(s.get("users")), results=_str(s.get("results")),
            cpu_pct=_num_or_none(s.get("cpu_pct")), memory_pct=_num_or_none(s.get("memory_pct"))))
    interval = value.get("interval")
    if not isinstance(interval, list) or len(interval) != 2:
        raise r.bad("probe.interval", "expected [lo, hi]")
    return Probe(
        model=r.text(value, "model", "probe.model"),
        max_rate_within_slo=r.number(value, "max_rate_within_slo", "probe.max_rate_within_slo", optional=True),
        saturation_rate=r.number(value, "saturation_rate", "probe.saturation_rate", optional=True),
        limited_by=r.text(value, "limited_by", "probe.limited_by"),
        interval=(_num_or_none(interval[0]), _num_or_none(interval[1])), steps=tuple(rows),
        slo=tuple(str(x) for x in value.get("slo") or () if isinstance(x, str)),
        error_budget=_num_or_none(value.get("error_budget")), step_s=_num_or_none(value.get("step_s")),
        notes=tuple(str(x) for x in value.get("notes") or () if isinstance(x, str)))


def read_timeline(rows: Any, name: str = "timeline") -> tuple[Second, ...]:
    """A per-second timeline (list of row objects) as Seconds, sorted by t."""
    return _Reader(name).timeline(rows, name)


def read_steps(data: Mapping[str, Any], name: str) -> tuple[Step, ...]:
    """The steps list, each load level checked where capacity sizing needs it (concurrency, rps)."""
    raw = data.get("steps")
    if not isinstance(raw, list):
        raise UnreadableResults(f"{name}: no steps list (see docs/results-schema.md)")
    out = []
    for i, s in enumerate(raw):
        where = f"{name}: steps[{i}]"
        if not isinstance(s, dict):
            raise UnreadableResults(f"{where}: expected an object")
        lat = s.get("latency_ms")
        p95 = lat.get("p95") if isinstance(lat, dict) else None
        err = s.get("error_rate")
        requests = s.get("requests")
        sent = bool(requests)
        out.append(Step(
            index=_int_or_none(s.get("index")) or i, name=str(s["name"]) if s.get("name") is not None else None,
            rate=_keep(s.get("rate")), users=_keep(s.get("users")),
            # a step that sent nothing says nothing about capacity: its figures are not checked
            concurrency=_located(s.get("concurrency"), f"{where}.concurrency") if sent else 0.0,
            start_s=_keep(s.get("start_s")), duration_s=_keep(s.get("duration_s")),
            active_s=_keep(s.get("active_s")), scheduled=_keep(s.get("scheduled")), dropped=_keep(s.get("dropped")),
            requests=int(requests) if isinstance(requests, int | float) and not isinstance(requests, bool) else 0,
            failures=_int_or_none(s.get("failures")),
            failures_by_kind=_counts(s.get("failures_by_kind")),
            rps=_located(s.get("rps"), f"{where}.rps") if sent else 0.0,
            error_rate=_located(err, f"{where}.error_rate") if sent and err is not None else _keep(err),
            latency_ms={**({k: _num_or_none(v) for k, v in lat.items()} if isinstance(lat, dict) else {}),
                        "p95": _located(p95, f"{where}.latency_ms.p95") if sent and p95 is not None else None},
            failure_latency_ms=_latencies(s.get("failure_latency_ms")),
        ))
    return tuple(out)


def from_snapshot(data: Mapping[str, Any]) -> RunResults:
    """A partial results dict from a running test: aggregates are taken when present and otherwise
    summed from the timeline (percentiles are then unknown, not guessed)."""
    r = _Reader("snapshot")
    run = _obj(data.get("run"))
    timeline = r.timeline(data.get("timeline") or [], "timeline")

    def scope(name: str, body: Mapping[str, Any], rows: tuple[Second, ...], dropped: float | None) -> Scope:
        latency = _obj(body.get("latency_ms"))
        requests = body.get("requests")
        failures = body.get("failures")
        if not isinstance(requests, int) or not isinstance(failures, int):
            requests, failures = sum(s.requests for s in rows), sum(s.errors for s in rows)
        rps = body.get("rps")
        if not isinstance(rps, int | float) and rows:
            rps = requests / len(rows)
        return Scope(name, requests, failures, rps, {k: _num_or_none(v) for k, v in latency.items()},
                     rows, dropped)

    dropped = sum(s.dropped or 0 for s in timeline) if timeline else None
    generator = data.get("generator")
    if isinstance(generator, dict) and isinstance(generator.get("dropped"), int | float):
        dropped = float(generator["dropped"])
    aggregate = _obj(data.get("aggregate"))
    endpoints = {}
    for ep, body in _obj(data.get("endpoints")).items():
        if isinstance(body, dict):
            rows = dense(r.timeline(body.get("timeline") or [], f"endpoints.{ep}"), timeline)
            endpoints[ep] = scope(ep, body, rows, None)
    return RunResults(RunInfo(scenario=str(run.get("scenario", "")), model=str(run.get("model", ""))),
                      aggregate=scope("(all)", aggregate, timeline, dropped), endpoints=endpoints, timeline=timeline)


def dense(rows: tuple[Second, ...], run_rows: tuple[Second, ...]) -> tuple[Second, ...]:
    """An endpoint's timeline with a zero row for every second of the run it has no row for: a writer
    may leave out the seconds an endpoint got no request, and a throughput collapse must read as
    0 req/s, not as a gap that ends a breach. A missing timeline stays missing (no data is not zero)."""
    if not rows or not run_rows:
        return rows
    have = {s.t for s in rows}
    filled = list(rows) + [Second(t=s.t, requests=0, errors=0, rps=0.0) for s in run_rows if s.t not in have]
    return tuple(sorted(filled, key=lambda s: s.t))


def _aborted(value: Any) -> str | None:
    """run.aborted: the reason (a string), or true when the load test only knows that it was stopped."""
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.strip():
        return value
    return "stopped early by an abort_on_fail criterion"


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _num_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _latencies(value: Any) -> dict[str, float | None]:
    """An informative latency block (failure_latency_ms): read as numbers or None, never failing the file."""
    return {str(k): _num_or_none(v) for k, v in _obj(value).items()}


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) \
        else None


def _counts(value: Any) -> dict[str, int]:
    return {str(k): int(v) for k, v in _obj(value).items() if isinstance(v, int) and not isinstance(v, bool)}


def _located(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UnreadableResults(f"{where}: expected a number, got {value!r}")
    return value


def _keep(value: Any) -> float | None:
    """A number as written (an int stays an int, so it shows as written), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return None


def _stage(s: Mapping[str, Any]) -> Stage:
    return Stage(str(s.get("name")), _num_or_none(s.get("duration_s")) or 0.0, _num_or_none(s.get("start_rate")),
                 _num_or_none(s.get("end_rate")), _int_or_none(s.get("users")))


def _generator(g: Mapping[str, Any]) -> Generator:
    samples = {str(k): tuple(float(x) for x in v if isinstance(x, int | float))
               for k, v in _obj(g.get("cpu_samples")).items() if isinstance(v, list)}
    return Generator(**{k: _keep(g.get(k)) for k in (
        "cpu_max", "cpu_mean", "intended_rate", "achieved_rate", "scheduled", "sent", "dropped", "lag_max_ms",
        "task_errors", "processes")}, cpu_samples=samples,
        workers=tuple(Worker(str(w.get("proc")), str(w.get("id")), str(w.get("host")), _int_or_none(w.get("pid")) or 0)
                      for w in g.get("workers") or () if isinstance(w, dict)))


def _failover(value: Any) -> Failover | None:
    if not isinstance(value, dict):
        return None
    return Failover(killed_at_s=_keep(value.get("killed_at_s")) or 0.0,
                    killed_pid=_int_or_none(value.get("killed_pid")),
                    errors_after_kill=_int_or_none(value.get("errors_after_kill")) or 0,
                    recovered=bool(value.get("recovered")), recovery_s=_keep(value.get("recovery_s")))


def _fault(value: Any, r: _Reader) -> Fault | None:
    """The fault block, read strictly: the gate judges recovery_s and lost_writes from it."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise r.bad("fault", "expected an object")
    kind = r.text(value, "kind", "fault.kind")

    def num(key: str) -> float | None:
        return r.number(value, key, f"fault.{key}", optional=True)

    def count(key: str) -> int | None:
        return None if value.get(key) is None else r.count(value, key, f"fault.{key}")

    return Fault(kind=kind, injected_at_s=num("injected_at_s"), cleared_at_s=num("cleared_at_s"),
                 errors_during=count("errors_during") or 0, errors_after=count("errors_after") or 0,
                 error_budget_spent=num("error_budget_spent"), p95_before_ms=num("p95_before_ms"),
                 p95_during_ms=num("p95_during_ms"), recovery_s=num("recovery_s"),
                 acknowledged_writes=count("acknowledged_writes"), lost_writes=count("lost_writes"),
                 ramp_s=num("ramp_s"), held_bytes=count("held_bytes"),
                 detail=_str(value.get("detail")))


def _histograms(value: Any) -> Histograms | None:
    if not isinstance(value, dict) or not value:
        return None
    return Histograms(unit=str(value.get("unit", "us")), aggregate=_str(value.get("aggregate")),
                      endpoints={str(k): v for k, v in _obj(value.get("endpoints")).items() if isinstance(v, str)},
                      steps=tuple(v for v in value.get("steps") or () if isinstance(v, str)))


class _Reader:
    """Typed access to the parsed JSON; every problem names the key path."""

    def __init__(self, name: str) -> None:
        self.name = name

    def bad(self, where: str, what: str) -> UnreadableResults:
        return UnreadableResults(f"{self.name}: {where}: {what}")

    def mapping(self, data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = data.get(key)
        if not isinstance(value, dict):
            raise self.bad(key, "missing" if value is None else "expected an object")
        return value

    def text(self, data: Mapping[str, Any], key: str, where: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value:
            raise self.bad(where, "missing" if value is None else "expected a non-empty string")
        return value

    def flag(self, data: Mapping[str, Any], key: str, where: str) -> bool:
        value = data.get(key)
        if not isinstance(value, bool):
            raise self.bad(where, "missing" if value is None else "expected true or false")
        return value

    def number(self, data: Mapping[str, Any], key: str, where: str, *, optional: bool = False) -> float | None:
        value = data.get(key)
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.bad(where, "missing" if value is None else f"expected a number, got {value!r}")
        if value < 0:
            raise self.bad(where, f"cannot be negative, got {value!r}")
        return float(value)

    def count(self, data: Mapping[str, Any], key: str, where: str) -> int:
        value = self.number(data, key, where)
        assert value is not None
        if not value.is_integer():
            raise self.bad(where, f"expected a whole number, got {value!r}")
        return int(value)

    def scope(self, name: str, body: Mapping[str, Any], where: str, timeline: tuple[Second, ...],
              dropped: float | None) -> Scope:
        requests = self.count(body, "requests", f"{where}.requests")
        failures = self.count(body, "failures", f"{where}.failures")
        if failures > requests:
            raise self.bad(f"{where}.failures", f"{failures} failures out of {requests} requests")
        latency = body.get("latency_ms")
        if not isinstance(latency, dict):
            raise self.bad(f"{where}.latency_ms", "missing" if latency is None else "expected an object")
        lat: dict[str, float | None] = {}
        for key, value in latency.items():
            if value is not None:
                self.number(latency, key, f"{where}.latency_ms.{key}")
            lat[key] = _num_or_none(value)
        return Scope(name, requests, failures, self.number(body, "rps", f"{where}.rps", optional=True),
                     lat, timeline, dropped, _counts(body.get("failures_by_kind")),
                     _latencies(body.get("failure_latency_ms")))

    def timeline(self, rows: Any, where: str) -> tuple[Second, ...]:
        if rows is None:
            return ()
        if not isinstance(rows, list):
            raise self.bad(where, "expected a list of per-second rows")
        out = []
        for i, row in enumerate(rows):
            second = _fast_second(row)
            out.append(second if second is not None else self.second(row, f"{where}[{i}]"))
        out.sort(key=lambda s: s.t)
        return tuple(out)

    def second(self, row: Any, at: str) -> Second:
        """The careful reading of one row: the first problem, located."""
        if not isinstance(row, dict):
            raise self.bad(at, "expected an object")
        t = self.number(row, "t", f"{at}.t")
        assert t is not None
        lat, lat_at = row, at  # schema_version 1: the percentiles beside t
        if "latency_ms" in row:
            lat, lat_at = row["latency_ms"], f"{at}.latency_ms"
            if not isinstance(lat, dict):
                raise self.bad(lat_at, "expected an object")
        return Second(
            int(t), self.count(row, "requests", f"{at}.requests"),
            self.count(row, "errors", f"{at}.errors") if "errors" in row else 0,
            self.number(row, "rps", f"{at}.rps", optional=True),
            self.number(lat, "p50", f"{lat_at}.p50", optional=True),
            self.number(lat, "p95", f"{lat_at}.p95", optional=True),
            self.number(lat, "p99", f"{lat_at}.p99", optional=True),
            self.number(row, "dropped", f"{at}.dropped", optional=True),
            *_row_extras(row),
        )


def _fast_second(row: Any) -> Second | None:
    """A well-formed row, read without building error paths (an hour-long run has 3,600 per scope);
    None sends anything unusual to the careful reader, which says what is wrong."""
    if type(row) is not dict:
        return None
    t, requests, errors = row.get("t"), row.get("requests"), row.get("errors", 0)
    if type(t) is not int or type(requests) is not int or type(errors) is not int:
        return None
    if t < 0 or requests < 0 or errors < 0:
        return None
    lat = row.get("latency_ms", row)  # schema_version 1: the percentiles beside t
    if type(lat) is not dict:
        return None
    optional = [row.get("rps"), lat.get("p50"), lat.get("p95"), lat.get("p99"), row.get("dropped")]
    for v in optional:
        if v is not None and (type(v) not in (int, float) or not (0 <= v < math.inf)):
            return None
    rps, p50, p95, p99, dropped = (None if v is None else float(v) for v in optional)
    return Second(t, requests, errors, rps, p50, p95, p99, dropped, *_row_extras(row))


def _percentile(row: Mapping[str, Any], key: str) -> Any:
    """A probe step's p50/p95/p99: in its latency_ms block, or (schema_version 1) beside the rate."""
    lat = row.get("latency_ms")
    return lat.get(key) if isinstance(lat, dict) else row.get(key)


def _row_extras(row: Mapping[str, Any]) -> tuple[float | None, float | None, float | None, int | None]:
    """The run timeline's generator columns (in_flight, scheduled, lag_max_ms, step): informative, so read
    without failing the row."""
    if "in_flight" not in row and "step" not in row:
        return None, None, None, None  # an endpoint row
    return (_num_or_none(row.get("in_flight")), _num_or_none(row.get("scheduled")),
            _num_or_none(row.get("lag_max_ms")), _int_or_none(row.get("step")))
