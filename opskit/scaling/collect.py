"""The I/O side of a scale check: read every threshold's series and the replica counts from a source,
then hand them to the pure core. Also the recommendation history the stabilization windows need."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from opskit.metrics.base import MetricRequest, MetricsSource, Series
from opskit.metrics.timeutil import parse_time, wall_now
from opskit.scaling.evaluate import evaluate
from opskit.scaling.model import Capacity, Evaluation, Recommendation
from opskit.spec.schema import Spec, Threshold

HISTORY_FILE = "scaling-history.json"


@dataclass(frozen=True)
class Readings:
    now: dt.datetime
    series: tuple[Series, ...]
    replicas: dict[str, int | None]
    replicas_from: dict[str, str]  # resource -> "source" | "spec" | "unknown"
    demand: dict[str, Series] = field(default_factory=dict)  # resource -> its req/s, for its capacity row


def request_for(th: Threshold, source_name: str, step_s: float, spec: Spec | None = None) -> MetricRequest:
    # the same resolution the rendered alerts use: the row's query, else opskit's default for the metric
    from opskit.alerts.queries import resolve

    if source_name == "file":
        query = None
    elif spec is not None:
        query = resolve(spec, th, source_name).expr
    else:
        query = getattr(th.queries, source_name, None)
    # threshold mode needs the whole `for` window; target mode (HPA) reads the latest value
    window = th.for_ if th.target is None and th.for_ else 0.0
    return MetricRequest(th.resource, th.metric, query=query, window_s=window, step_s=step_s)


def read_all(spec: Spec, source: MetricsSource, now: dt.datetime | None = None,
             capacities: Mapping[str, Capacity] | None = None) -> Readings:
    at = now or source.recorded_now or wall_now()
    step = spec.alerts.scrape_interval or 15.0
    series = tuple(source.read(request_for(th, source.name, step, spec), now=at) for th in spec.thresholds)
    demand = read_demand(spec, source, at, capacities or {})
    replicas: dict[str, int | None] = {}
    origin: dict[str, str] = {}
    for name in dict.fromkeys([*(th.resource for th in spec.thresholds), *demand]):
        seen = source.replicas(name)
        configured = spec.resources[name].current if name in spec.resources else None
        replicas[name] = seen if seen is not None else configured
        origin[name] = "source" if seen is not None else "spec" if configured is not None else "unknown"
    return Readings(at, series, replicas, origin, demand)


def read_demand(spec: Spec, source: MetricsSource, now: dt.datetime,
                capacities: Mapping[str, Capacity]) -> dict[str, Series]:
    """The request rate of each resource with a per-instance capacity, where the source can tell it."""
    from opskit.alerts.promql import rate_window
    from opskit.scaling import capacity

    out = {}
    for name in capacities:
        request = capacity.demand_request(source.name, resource=name, service_job=spec.service.job,
                                          window=rate_window(spec.alerts.scrape_interval))
        if request is None:
            continue
        series = source.read(request, now=now)
        if capacity.shown(source.name, series):
            out[name] = series
    return out


def check(spec: Spec, source: MetricsSource, history: Sequence[Recommendation] = (),
          now: dt.datetime | None = None, earlier: Readings | None = None,
          capacities: Mapping[str, Capacity] | None = None) -> tuple[Readings, Evaluation]:
    """Read and evaluate. `earlier` is the previous round of a watch: its samples are kept (within each
    row's window) so a live source that reads only the present still fills a `for:` window. `capacities`:
    per-instance req/s by resource, weighed against the demand the source reads."""
    readings = read_all(spec, source, now, capacities)
    if earlier is not None:
        readings = accumulate(spec, earlier, readings)
    result = evaluate(spec.thresholds, readings.series, now=readings.now, resources=spec.resources,
                      replicas=readings.replicas, history=history, capacities=capacities,
                      demand=readings.demand)
    return readings, result


def accumulate(spec: Spec, earlier: Readings, now: Readings) -> Readings:
    """`now`'s series with `earlier`'s samples before them, back to each row's `for:` window plus the
    staleness limit (a run of samples beyond a limit cannot reach further back). A series that failed
    this round stays failed: no data now is not made up from the past."""
    from dataclasses import replace

    from opskit.scaling.rows import STALENESS_S

    merged = []
    for th, old, new in zip(spec.thresholds, earlier.series, now.series, strict=True):
        if new.error is not None:
            merged.append(new)
            continue
        cut = now.now - dt.timedelta(seconds=(th.for_ or 0.0) + STALENESS_S)
        first = min((s.at for s in new.samples), default=now.now)
        kept = tuple(s for s in old.samples if cut <= s.at < first)
        merged.append(replace(new, samples=kept + new.samples))
    return replace(now, series=tuple(merged))


def source_history(source: MetricsSource, spec: Spec | None = None,
                   capacities: Mapping[str, Capacity] | None = None) -> list[Recommendation]:
    """Recommendations recorded in the source itself (the file source's `recommendations:`); when it
    records none but has earlier samples, the desired counts an HPA would have computed at each of them."""
    recorded = [Recommendation(resource=r, replicas=n, at=at) for r, n, at in source.history()]
    if recorded or spec is None:
        return recorded
    return replay(spec, source, capacities)


REPLAY_LIMIT = 500


def replay(spec: Spec, source: MetricsSource, capacities: Mapping[str, Capacity] | None = None) -> list[Recommendation]:
    """Evaluate at every earlier sample time within the stabilization windows, as a controller running
    then would have, and keep its desired counts. Replica counts are taken as today's (the file has no
    others)."""
    now = source.recorded_now
    if now is None:
        return []
    cut = now - dt.timedelta(seconds=keep_seconds(spec))
    past = sorted(t for t in set(source.sample_times()) if cut < t < now)[-REPLAY_LIMIT:]
    out: list[Recommendation] = []
    for t in past:
        _, ev = check(spec, source, (), now=t, capacities=capacities)
        out.extend(ev.recommendations)
    return out


def prune(history: Sequence[Recommendation], now: dt.datetime, keep_s: float) -> list[Recommendation]:
    cut = now - dt.timedelta(seconds=keep_s)
    return [r for r in history if cut < r.at <= now]


def keep_seconds(spec: Spec) -> float:
    windows = [max(r.scale_down_stabilization, r.scale_up_stabilization) for r in spec.resources.values()]
    return max([300.0, *windows])


def load_history(state_dir: Path) -> list[Recommendation]:
    path = Path(state_dir) / HISTORY_FILE
    try:
        raw = json.loads(path.read_text())
        return [Recommendation(resource=str(r["resource"]), replicas=int(r["replicas"]), at=parse_time(r["at"]))
                for r in raw.get("recommendations", [])]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []  # a damaged history only weakens stabilization for one window; never block a check


def save_history(state_dir: Path, history: Sequence[Recommendation]) -> None:
    from opskit.atomicio import write_atomic

    body = {"recommendations": [{"resource": r.resource, "replicas": r.replicas, "at": r.at.isoformat()}
                                for r in history]}
    write_atomic(Path(state_dir) / HISTORY_FILE, json.dumps(body, indent=1) + "\n")
