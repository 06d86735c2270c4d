"""The runner's config: what `opskit loadtest run` hands the runner process (and it its workers), and what
the CLI tells the runner during the run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opskit.jsontypes import JSONObject
from opskit.runmodel.lenient import int_or_none, keep, obj, str_or_none
from opskit.runmodel.results import Stage


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

    def to_json(self) -> JSONObject:
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
        got = obj(data)
        return cls(aborted=str_or_none(got.get("aborted")), failover_at_s=keep(got.get("failover_at_s")),
                   killed_pid=int_or_none(got.get("killed_pid")),
                   fault_ramp_s=keep(got.get("fault_ramp_s")),
                   fault_held_bytes=int_or_none(got.get("fault_held_bytes")),
                   fault_injected_at_s=keep(got.get("fault_injected_at_s")),
                   fault_cleared_at_s=keep(got.get("fault_cleared_at_s")),
                   fault_detail=str_or_none(got.get("fault_detail")))
