"""results.json: assembling the document (pure) and writing it (atomically). See docs/results-schema.md;
the steps, generator, failover and histograms blocks are the run model's (opskit/runmodel/) written as they are."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.loadtest import hdr
from opskit.loadtest import health as health_mod
from opskit.loadtest.aggregate import Aggregator, stats_block
from opskit.runmodel import SCHEMA_VERSION, FaultSetup, Generator, Histograms, Step

if TYPE_CHECKING:
    from opskit.faults.analysis import Timing



def build(agg: Aggregator, run: dict[str, Any], *, duration_s: float, intended: int | None,
          processes: int, histograms: bool = True, failover: tuple[float, int] | None = None,
          fault: FaultInput | None = None) -> dict[str, Any]:
    """run: the run metadata known to the caller (scenario, model, target, times, versions, ...);
    failover: when (seconds into the run) the CLI killed which service worker (pid); fault: a failure
    scenario's window and checked writes (opskit/faults)."""
    requests, failures = agg.totals()
    sent = agg.scheduled - agg.dropped
    if run.get("model") == "closed":
        sent, intended = requests, None
    kinds: dict[str, int] = {}
    for totals in agg.endpoints.values():
        for k, v in totals.kinds.items():
            kinds[k] = kinds.get(k, 0) + v
    load = [r for r in agg.timeline() if r["t"] < duration_s]  # the seconds of load, not the drain after it
    health = health_mod.assess(cpu=agg.cpu_samples(), duration_s=duration_s, intended=intended, sent=sent,
                               dropped=agg.dropped if intended is not None else 0,
                               in_flight=[r["in_flight"] for r in load],
                               scheduled_each=[r["scheduled"] for r in load], lag_max_ms=agg.lag_max_ms,
                               out_of_files=kinds.get(health_mod.OUT_OF_FILES, 0))
    agg_hist = agg.aggregate_hist()
    timeline = agg.timeline()
    endpoints = {}
    for name in sorted(agg.endpoints):
        t = agg.endpoints[name]
        block = stats_block(t.hist, t.errors, t.kinds, duration_s, t.failed)
        rows = agg.endpoint_rows.get(name, {})
        block["timeline"] = [rows[s] for s in sorted(rows)]
        endpoints[name] = block
    valid = health.valid
    reasons = [health.invalid_reason] if health.invalid_reason else []
    if requests == 0:
        valid = False
        reasons.append("no requests completed")
    elif requests == failures:  # latency and throughput of nothing that worked: no answer at all
        valid = False
        top = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])[:3])
        reasons.append(f"no request succeeded ({failures} failed: {top})")
    if run.get("interrupted"):
        valid = False
        reasons.append("interrupted before the end")
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run": {
            **run,
            "duration_s": round(duration_s, 3),
            "valid": valid,
            "invalid_reason": "; ".join(reasons) or None,
            # what held the load back: none | service (valid: the answer is "no") | generator (invalid)
            "limited_by": health.limited_by,
            "limited_reason": health.limited_reason,
            # dropped arrivals were never sent, so they are not in the percentiles: those are lower bounds
            "latency_lower_bound": bool(agg.dropped) and intended is not None,
            "processes": processes,
        },
        "aggregate": stats_block(agg_hist, failures, kinds, duration_s, agg.aggregate_failed()),
        "endpoints": endpoints,
        "timeline": timeline,
        "steps": [asdict(step) for step in _steps(agg, timeline, run.get("model"))],
        "generator": asdict(Generator(
            cpu_max=health.cpu_max,
            cpu_mean=health.cpu_mean,
            intended_rate=health.intended_rate,
            achieved_rate=health.achieved_rate,
            scheduled=agg.scheduled if run.get("model") == "open" else None,
            sent=sent,
            dropped=agg.dropped,
            lag_max_ms=round(agg.lag_max_ms, 3),
            task_errors=agg.task_errors,
            processes=processes,
            # one sample a second per generator process (percent of one core), for the saturation check
            cpu_samples={proc: samples for proc, samples in agg.cpu_samples()},
            workers=tuple(agg.workers[p] for p in sorted(agg.workers)),
        )),
        "histograms": asdict(_histograms(agg, agg_hist)) if histograms else {},
    }
    if failover is not None:
        from opskit.loadtest import failover as failover_mod

        at_s, pid = failover
        doc["failover"] = asdict(failover_mod.analyse(timeline, at_s, pid))
    if fault is not None:
        doc["fault"] = asdict(_fault(agg, fault, timeline, endpoints, requests, failures, duration_s))
    # the analyses above read the flat rows; the file nests each second's percentiles like every scope's
    doc["timeline"] = [file_row(r) for r in timeline]
    for block in endpoints.values():
        block["timeline"] = [file_row(r) for r in block["timeline"]]
    return doc


def file_row(row: dict[str, Any]) -> dict[str, Any]:
    """A per-second row as results.json holds it: p50/p95/p99 in a latency_ms block, after rps."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in ("p50", "p95", "p99"):
            out.setdefault("latency_ms", {})[key] = value
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class FaultInput:
    setup: FaultSetup
    window: Timing
    writes: tuple[int, int] | None  # (acknowledged, lost); None: not checked


def _fault(agg: Aggregator, f: FaultInput, timeline: list[dict[str, Any]], endpoints: dict[str, Any],
           requests: int, failures: int, duration_s: float) -> Any:
    import math

    from opskit.faults import analysis
    from opskit.loadtest import hdr
    from opskit.runmodel import read_timeline

    w = f.window
    start = math.floor(w.injected_at_s) if w.injected_at_s is not None else None
    end = math.floor(w.cleared_at_s) if w.cleared_at_s is not None else None

    def p95(lo: int | None, hi: int | None) -> float | None:  # exact: the seconds' histograms merged
        hists = [hdr.decode(r["_hist"]) for t, r in agg.rows.items() if r.get("_hist")
                 and (lo is None or t >= lo) and (hi is None or t < hi)]
        return hdr.quantile_ms(hdr.merged(hists), 95) if hists else None

    objectives = analysis.Objectives(f.setup.availability, dict(f.setup.p95_ms), f.setup.slo_window_s)
    return analysis.analyse(
        w, read_timeline(timeline), {n: read_timeline(b["timeline"]) for n, b in endpoints.items()},
        objectives=objectives, requests=requests, failures=failures, duration_s=duration_s,
        p95_before_ms=p95(None, start) if start is not None else None,
        p95_during_ms=p95(math.floor(w.in_force_at_s), end) if w.in_force_at_s is not None else None,
        writes=f.writes)


def _steps(agg: Aggregator, timeline: list[dict[str, Any]], model: Any) -> list[Step]:
    out = []
    for i, step in enumerate(agg.steps):
        totals = agg.step_totals[i]
        seconds = [r for r in timeline if r["step"] == step.index]
        # the step's own window; requests finishing after the last stage belong to the last step
        active = min(step.duration_s, max(len(seconds), 1)) if seconds else step.duration_s
        block = stats_block(totals.hist, totals.errors, totals.kinds, step.duration_s, totals.failed)
        # Little's law counts every request in flight, failed ones too
        mean_ms = hdr.summary(hdr.merged([totals.hist, totals.failed]))["mean"] or 0.0
        concurrency = (step.users if model == "closed" and step.users is not None
                       else round(block["rps"] * mean_ms / 1000.0, 3))  # Little's law
        out.append(Step(
            index=step.index, name=step.name, rate=step.rate, users=step.users, concurrency=concurrency,
            start_s=step.start_s, duration_s=step.duration_s, active_s=active, scheduled=agg.step_scheduled[i],
            dropped=agg.step_dropped[i], **block,
        ))
    return out


def _histograms(agg: Aggregator, agg_hist: Any) -> Histograms:
    return Histograms(
        unit="us",
        aggregate=hdr.encode(agg_hist),
        endpoints={name: hdr.encode(t.hist) for name, t in sorted(agg.endpoints.items())},
        steps=tuple(hdr.encode(t.hist) for t in agg.step_totals),
    )


def write(out_dir: str | Path, results: dict[str, Any]) -> Path:
    from opskit import atomicio
    from opskit import output as out

    return atomicio.write_atomic(Path(out_dir) / "results.json", out.dumps_figures(results) + "\n")
