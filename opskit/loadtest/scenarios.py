"""Scenario files (loadtests/*.yaml): the model, the stages of load, and where levels come from.

Load levels can be numbers or references to opskit.yaml so nothing is a constant in code:
  rate: {from: peak_rps, month: 3, x: 2}        2 x the projected peak req/s three months out
  users: {from: concurrent_users, month: 0, x: 1.2}
  rate: {from: target_max_rps, x: 0.5}           half the target's declared max_rps
peak_rps(month) = daily_requests(month) / 86400 x growth.peak_to_mean (facts.md, Little's law
section); growth metrics between horizons are interpolated geometrically (growth compounds).
`x` may be a list: the stage is repeated once per factor (stair steps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from opskit.errors import ConfigError, UsageError
from opskit.faults.spec import FaultSpec
from opskit.spec.schema import Spec
from opskit.units import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Level(_Strict):
    from_: Literal["peak_rps", "mean_rps", "concurrent_users", "target_max_rps"] = Field(alias="from")
    month: float = 0
    x: float | list[float] = 1.0


class StageSpec(_Strict):
    name: str | None = None
    duration: Seconds = Field(gt=0)
    rate: float | Level | None = Field(None, description="arrivals per second (open model)")
    ramp_from: float | Level | None = Field(None, description="ramp linearly from this rate to `rate`")
    users: int | Level | None = Field(None, description="concurrent users (closed model)")

    @model_validator(mode="after")
    def _one(self) -> StageSpec:
        if (self.rate is None) == (self.users is None):
            raise ValueError("give exactly one of rate (open model) or users (closed model)")
        if self.ramp_from is not None and self.rate is None:
            raise ValueError("ramp_from goes with rate")
        return self


class ServiceSetup(_Strict):
    workers: int = Field(1, ge=1, le=16)
    tenants: int = Field(2, ge=1, le=100)
    seed_assets: int = Field(200, ge=0)
    tier: Literal["free", "pro", "enterprise", "internal"] = "internal"


class Failover(_Strict):
    at: Seconds = Field(description="when to kill one service worker, from the start of the run")


class ScenarioFile(_Strict):
    description: str
    locustfile: str = Field(description="file in loadtests/ (or a path) holding the Locust users")
    stages: list[StageSpec] = Field(min_length=1)
    max_in_flight: int = Field(200, ge=1, description="open model: arrivals beyond this are dropped")
    timeout: Seconds = Field(10, gt=0, description="per-request network timeout")
    tick: Literal["auto"] | Annotated[float, Field(gt=0, le=0.05)] = Field(
        "auto", description="open model: scheduling resolution (arrivals due within one tick go out together; "
        "coarser is cheaper at high rates, up to a tick late). auto: 1 ms up to 1,000 req/s per generator "
        "process, growing with the rate to 5 ms at 5,000 req/s")

    @field_validator("tick", mode="before")
    @classmethod
    def _tick(cls, v: Any) -> Any:
        return v if v == "auto" else parse_duration(v)
    spawn_rate: float = Field(10, gt=0, description="closed model: users started per second")
    service: ServiceSetup = ServiceSetup()
    failover: Failover | None = None
    fault: FaultSpec | None = Field(None, description="a failure scenario's fault (opskit/faults)")
    params: dict[str, Any] = Field(default_factory=dict, description="passed to the locustfile")
    needs_keys: bool = Field(False, description="the locustfile needs tenant API keys: against a real target "
                             "the run refuses to start without them (--api-key, --keys-file, OPSKIT_API_KEYS)")


@dataclass(frozen=True)
class Stage:
    name: str
    duration_s: float
    start_rate: float | None
    end_rate: float | None
    users: int | None


@dataclass(frozen=True)
class Scenario:
    name: str
    path: Path
    description: str
    model: str  # "open" | "closed"
    stages: tuple[Stage, ...]
    locustfile: Path
    max_in_flight: int
    timeout_s: float
    tick_s: float | None  # None: auto (arrivals.auto_tick)
    spawn_rate: float
    service: ServiceSetup
    failover_at: float | None
    params: dict[str, Any]
    needs_keys: bool = False
    fault: FaultSpec | None = None

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.stages)

    @property
    def peak_rate(self) -> float | None:
        rates = [r for s in self.stages for r in (s.start_rate, s.end_rate) if r is not None]
        return max(rates) if rates else None


def scenario_dir() -> Path:
    """loadtests/ next to the spec's working directory, else the one shipped beside the package."""
    here = Path.cwd() / "loadtests"
    if here.is_dir():
        return here
    return Path(__file__).resolve().parents[2] / "loadtests"


def list_files(directory: Path | None = None) -> list[Path]:
    d = directory or scenario_dir()
    return sorted(p for p in d.glob("*.yaml") if not p.name.startswith("_"))


def find(name: str, directory: Path | None = None) -> Path:
    p = Path(name)
    if p.suffix in (".yaml", ".yml") and p.is_file():
        return p
    d = directory or scenario_dir()
    candidate = d / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    import difflib

    names = [f.stem for f in list_files(d)]
    close = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else f"; known: {', '.join(names)}"
    raise UsageError(f"no scenario named '{name}' in {d}{hint}")


def read(path: Path) -> ScenarioFile:
    from opskit.spec.loader import read_located, validate

    return validate(ScenarioFile, read_located(path))


def load(name: str, spec: Spec, *, target_max_rps: float | None = None, directory: Path | None = None) -> Scenario:
    path = find(name, directory)
    sf = read(path)
    stages: list[Stage] = []
    for i, st in enumerate(sf.stages):
        where = f"{path}: stages[{i}]"
        if st.rate is not None:
            ends = _resolve(st.rate, spec, target_max_rps, where)
            starts = (_resolve(st.ramp_from, spec, target_max_rps, where) if st.ramp_from is not None
                      else ends)
            if len(starts) == 1:
                starts = starts * len(ends)
            for j, (a, b) in enumerate(zip(starts, ends, strict=False)):
                # rates kept to 3 decimals, as every rate opskit writes (docs/guide/json.md)
                stages.append(Stage(_name(st.name, i, j, len(ends)), st.duration, round(a, 3), round(b, 3), None))
        else:
            assert st.users is not None
            for j, u in enumerate(n := _resolve(st.users, spec, target_max_rps, where)):
                stages.append(Stage(_name(st.name, i, j, len(n)), st.duration, None, None, max(1, round(u))))
    models = {"open" if s.users is None else "closed" for s in stages}
    if len(models) > 1:
        raise ConfigError(f"{path}: mixes rate (open model) and users (closed model) stages; use one")
    lf = Path(sf.locustfile)
    if not lf.is_absolute():
        lf = path.parent / lf
    return Scenario(
        name=path.stem, path=path, description=sf.description, model=models.pop(), stages=tuple(stages),
        locustfile=lf, max_in_flight=sf.max_in_flight, timeout_s=sf.timeout,
        tick_s=None if sf.tick == "auto" else float(sf.tick), spawn_rate=sf.spawn_rate,
        service=sf.service, failover_at=sf.failover.at if sf.failover else None, params=dict(sf.params),
        needs_keys=sf.needs_keys,
        fault=sf.fault,
    )


def _name(name: str | None, i: int, j: int, n: int) -> str:
    base = name or f"stage-{i + 1}"
    return f"{base}-{j + 1}" if n > 1 else base


def _resolve(value: float | int | Level, spec: Spec, target_max_rps: float | None, where: str) -> list[float]:
    if not isinstance(value, Level):
        return [float(value)]
    base = level_value(value.from_, value.month, spec, target_max_rps, where)
    factors = value.x if isinstance(value.x, list) else [value.x]
    return [base * f for f in factors]


def level_value(source: str, month: float, spec: Spec, target_max_rps: float | None, where: str = "") -> float:
    if source == "target_max_rps":
        if target_max_rps is None:
            raise UsageError(f"{where}: the level comes from the target's max_rps, and this target has none")
        return target_max_rps
    growth = spec.growth
    metric = "concurrent_users" if source == "concurrent_users" else "daily_requests"
    if growth is None or metric not in growth.metrics:
        raise ConfigError(f"{where}: the level needs growth.metrics.{metric} in the spec")
    value = interpolate(growth.horizons_months, growth.metrics[metric].values, month)
    if source == "concurrent_users":
        return value
    mean = value / 86400.0
    return mean * growth.peak_to_mean if source == "peak_rps" else mean


def interpolate(months: list[float], values: list[float], month: float) -> float:
    """Geometric between horizons (growth compounds), linear where a value is 0, flat outside."""
    if month <= months[0]:
        return values[0]
    if month >= months[-1]:
        return values[-1]
    for (m0, v0), (m1, v1) in zip(zip(months, values, strict=True), zip(months[1:], values[1:], strict=True),
                                  strict=False):
        if m0 <= month <= m1:
            f = (month - m0) / (m1 - m0) if m1 > m0 else 0.0
            if v0 > 0 and v1 > 0:
                return math.exp(math.log(v0) + f * (math.log(v1) - math.log(v0)))
            return v0 + f * (v1 - v0)
    return values[-1]


def adjust(sc: Scenario, *, rate: float | None = None, users: int | None = None,
           duration_s: float | None = None, max_rps: float | None = None) -> tuple[Scenario, list[str]]:
    """Apply --rate/--users/--duration and the target's max_rps cap. Multi-stage scenarios keep their
    shape: stages scale so the highest stage equals the new level or the total the new duration."""
    from dataclasses import replace

    notes: list[str] = []
    stages = list(sc.stages)
    model = sc.model
    failover_at = sc.failover_at
    fault = sc.fault
    if duration_s is not None:
        f = duration_s / sc.duration_s
        stages = [replace(s, duration_s=s.duration_s * f) for s in stages]
        failover_at = failover_at * f if failover_at is not None else None
        fault = fault.scaled(f) if fault is not None else None
    if rate is not None:
        peak = sc.peak_rate
        if peak:
            f = rate / peak
            stages = [replace(s, start_rate=(s.start_rate or 0) * f, end_rate=(s.end_rate or 0) * f, users=None)
                      for s in stages]
        else:  # a closed scenario run open: every stage at the given rate
            stages = [replace(s, start_rate=rate, end_rate=rate, users=None) for s in stages]
        model = "open"
    if users is not None:
        peak = sc.peak_rate
        if model == "open" and peak:
            stages = [replace(s, users=max(1, round(users * max(s.start_rate or 0, s.end_rate or 0) / peak)),
                              start_rate=None, end_rate=None) for s in stages]
        else:
            top = max(s.users or 1 for s in stages)
            stages = [replace(s, users=max(1, round(users * (s.users or top) / top)), start_rate=None,
                              end_rate=None) for s in stages]
        model = "closed"
    if max_rps is not None and model == "open":
        capped = [replace(s, start_rate=min(s.start_rate or 0, max_rps), end_rate=min(s.end_rate or 0, max_rps))
                  for s in stages]
        if capped != stages:
            notes.append(f"offered load capped at the target's max_rps ({max_rps:g} req/s)")
        stages = capped
    return replace(sc, stages=tuple(stages), model=model, failover_at=failover_at, fault=fault), notes
