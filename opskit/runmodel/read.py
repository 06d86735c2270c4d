"""Reading results into the typed model: a finished run's file strictly (`read`, `parse_results`), the
partial document a running load test hands the AbortWatcher leniently (`from_snapshot`)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from opskit.runmodel.document import UnreadableResults, check, parse
from opskit.runmodel.lenient import counts, int_or_none, keep, latencies, num_or_none, obj, str_or_none
from opskit.runmodel.results import (
    Failover,
    Fault,
    Generator,
    Histograms,
    Probe,
    ProbeStepRow,
    RunInfo,
    RunResults,
    Scope,
    Second,
    Stage,
    Step,
    Worker,
)
from opskit.runmodel.strict import Reader


def parse_results(text: str, name: str = "results.json") -> RunResults:
    """A finished run's results file, or UnreadableResults saying where and what."""
    return read(parse(text, name), name)


def read(doc: object, name: str = "results.json") -> RunResults:
    """A finished run's parsed results document, read strictly."""
    data = check(doc, name)
    r = Reader(name)
    run = r.mapping(data, "run")
    aggregate = r.mapping(data, "aggregate")
    generator = obj(data.get("generator"))
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
        invalid_reason=str_or_none(run.get("invalid_reason")),
        interrupted=bool(run.get("interrupted") or False),
        aborted=_aborted(run.get("aborted")),
        duration_s=r.number(run, "duration_s", "run.duration_s", optional=True),
        intended_rate=r.number(run, "intended_rate", "run.intended_rate", optional=True),
        users=r.number(run, "users", "run.users", optional=True),
        target=str_or_none(run.get("target")), target_name=str_or_none(run.get("target_name")),
        environment=str_or_none(run.get("environment")), run_id=str_or_none(run.get("run_id")),
        metrics_url=str_or_none(run.get("metrics_url")),
        started_at=str_or_none(run.get("started_at")), ended_at=str_or_none(run.get("ended_at")),
        spec_hash=str_or_none(run.get("spec_hash")), git_sha=str_or_none(run.get("git_sha")),
        versions={str(k): str_or_none(v) for k, v in obj(run.get("versions")).items()},
        processes=int_or_none(run.get("processes")), locustfile=str_or_none(run.get("locustfile")),
        max_in_flight=int_or_none(run.get("max_in_flight")),
        stages=tuple(_stage(s) for s in run.get("stages") or () if isinstance(s, dict)),
        limited_by=str_or_none(run.get("limited_by")) or "none", limited_reason=str_or_none(run.get("limited_reason")),
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
    r = Reader(name)
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
            rate=rate, achieved=num_or_none(s.get("achieved")),
            latency_ms={k: num_or_none(_percentile(s, k)) for k in ("p50", "p95", "p99")},
            error_rate=num_or_none(s.get("error_rate")), in_flight_max=int_or_none(s.get("in_flight_max")),
            verdict=r.text(s, "verdict", f"{where}.verdict"), phase=str_or_none(s.get("phase")),
            why=str_or_none(s.get("why")),
            users=int_or_none(s.get("users")), results=str_or_none(s.get("results")),
            cpu_pct=num_or_none(s.get("cpu_pct")), memory_pct=num_or_none(s.get("memory_pct"))))
    interval = value.get("interval")
    if not isinstance(interval, list) or len(interval) != 2:
        raise r.bad("probe.interval", "expected [lo, hi]")
    return Probe(
        model=r.text(value, "model", "probe.model"),
        max_rate_within_slo=r.number(value, "max_rate_within_slo", "probe.max_rate_within_slo", optional=True),
        saturation_rate=r.number(value, "saturation_rate", "probe.saturation_rate", optional=True),
        limited_by=r.text(value, "limited_by", "probe.limited_by"),
        interval=(num_or_none(interval[0]), num_or_none(interval[1])), steps=tuple(rows),
        slo=tuple(str(x) for x in value.get("slo") or () if isinstance(x, str)),
        error_budget=num_or_none(value.get("error_budget")), step_s=num_or_none(value.get("step_s")),
        notes=tuple(str(x) for x in value.get("notes") or () if isinstance(x, str)))


def read_timeline(rows: Any, name: str = "timeline") -> tuple[Second, ...]:
    """A per-second timeline (list of row objects) as Seconds, sorted by t."""
    return Reader(name).timeline(rows, name)


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
            index=int_or_none(s.get("index")) or i, name=str(s["name"]) if s.get("name") is not None else None,
            rate=keep(s.get("rate")), users=keep(s.get("users")),
            # a step that sent nothing says nothing about capacity: its figures are not checked
            concurrency=_located(s.get("concurrency"), f"{where}.concurrency") if sent else 0.0,
            start_s=keep(s.get("start_s")), duration_s=keep(s.get("duration_s")),
            active_s=keep(s.get("active_s")), scheduled=keep(s.get("scheduled")), dropped=keep(s.get("dropped")),
            requests=int(requests) if isinstance(requests, int | float) and not isinstance(requests, bool) else 0,
            failures=int_or_none(s.get("failures")),
            failures_by_kind=counts(s.get("failures_by_kind")),
            rps=_located(s.get("rps"), f"{where}.rps") if sent else 0.0,
            error_rate=_located(err, f"{where}.error_rate") if sent and err is not None else keep(err),
            latency_ms={**({k: num_or_none(v) for k, v in lat.items()} if isinstance(lat, dict) else {}),
                        "p95": _located(p95, f"{where}.latency_ms.p95") if sent and p95 is not None else None},
            failure_latency_ms=latencies(s.get("failure_latency_ms")),
        ))
    return tuple(out)


def from_snapshot(data: Mapping[str, Any]) -> RunResults:
    """A partial results dict from a running test: aggregates are taken when present and otherwise
    summed from the timeline (percentiles are then unknown, not guessed)."""
    r = Reader("snapshot")
    run = obj(data.get("run"))
    timeline = r.timeline(data.get("timeline") or [], "timeline")

    def scope(name: str, body: Mapping[str, Any], rows: tuple[Second, ...], dropped: float | None) -> Scope:
        latency = obj(body.get("latency_ms"))
        requests = body.get("requests")
        failures = body.get("failures")
        if not isinstance(requests, int) or not isinstance(failures, int):
            requests, failures = sum(s.requests for s in rows), sum(s.errors for s in rows)
        rps = body.get("rps")
        if not isinstance(rps, int | float) and rows:
            rps = requests / len(rows)
        return Scope(name, requests, failures, rps, {k: num_or_none(v) for k, v in latency.items()},
                     rows, dropped)

    dropped = sum(s.dropped or 0 for s in timeline) if timeline else None
    generator = data.get("generator")
    if isinstance(generator, dict) and isinstance(generator.get("dropped"), int | float):
        dropped = float(generator["dropped"])
    aggregate = obj(data.get("aggregate"))
    endpoints = {}
    for ep, body in obj(data.get("endpoints")).items():
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


def _located(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise UnreadableResults(f"{where}: expected a number, got {value!r}")
    return value


def _stage(s: Mapping[str, Any]) -> Stage:
    return Stage(str(s.get("name")), num_or_none(s.get("duration_s")) or 0.0, num_or_none(s.get("start_rate")),
                 num_or_none(s.get("end_rate")), int_or_none(s.get("users")))


def _generator(g: Mapping[str, Any]) -> Generator:
    samples = {str(k): tuple(float(x) for x in v if isinstance(x, int | float))
               for k, v in obj(g.get("cpu_samples")).items() if isinstance(v, list)}
    return Generator(**{k: keep(g.get(k)) for k in (
        "cpu_max", "cpu_mean", "intended_rate", "achieved_rate", "scheduled", "sent", "dropped", "lag_max_ms",
        "task_errors", "processes")}, cpu_samples=samples,
        workers=tuple(Worker(str(w.get("proc")), str(w.get("id")), str(w.get("host")), int_or_none(w.get("pid")) or 0)
                      for w in g.get("workers") or () if isinstance(w, dict)))


def _failover(value: Any) -> Failover | None:
    if not isinstance(value, dict):
        return None
    return Failover(killed_at_s=keep(value.get("killed_at_s")) or 0.0,
                    killed_pid=int_or_none(value.get("killed_pid")),
                    errors_after_kill=int_or_none(value.get("errors_after_kill")) or 0,
                    recovered=bool(value.get("recovered")), recovery_s=keep(value.get("recovery_s")))


def _fault(value: Any, r: Reader) -> Fault | None:
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
                 detail=str_or_none(value.get("detail")))


def _histograms(value: Any) -> Histograms | None:
    if not isinstance(value, dict) or not value:
        return None
    return Histograms(unit=str(value.get("unit", "us")), aggregate=str_or_none(value.get("aggregate")),
                      endpoints={str(k): v for k, v in obj(value.get("endpoints")).items() if isinstance(v, str)},
                      steps=tuple(v for v in value.get("steps") or () if isinstance(v, str)))


def _percentile(row: Mapping[str, Any], key: str) -> Any:
    """A probe step's p50/p95/p99: in its latency_ms block, or (schema_version 1) beside the rate."""
    lat = row.get("latency_ms")
    return lat.get(key) if isinstance(lat, dict) else row.get(key)
