"""The capacity probe's adapter: one load step at one rate through the load-test machinery (preparation,
the runner, results.json read through the run model), turned into a StepMeasure for probe.search; the
embedded service (one worker) when no target is named; the probe's own results.json at the end.

Nothing here prints: progress goes to the reporter the command passes in.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from opskit.capacity.probe import PASS, ProbeResult, ProbeStep, StepMeasure, judge, search
from opskit.errors import RuntimeFailure, UsageError
from opskit.runmodel import Probe, ProbeStepRow, RunResults

if TYPE_CHECKING:
    from opskit.gate.criteria import Criterion
    from opskit.loadtest.request import HostFacts, RunRequest
    from opskit.spec.schema import Spec

DEFAULT_SCENARIO = "http-get"


class Reporter(Protocol):
    def note(self, text: str) -> None: ...

    def step(self, index: int, step: ProbeStep) -> None: ...


@dataclass(frozen=True)
class ProbeRequest:
    slo: tuple[Criterion, ...]
    slo_text: tuple[str, ...]
    error_budget: float  # a fraction
    start: float
    max_rate: float
    step_s: float
    out_dir: Path
    target: str | None = None
    host: str | None = None
    scenario: str = DEFAULT_SCENARIO
    path: str | None = None
    workers: int = 1  # embedded service workers (capacity per instance: 1)
    model: str = "open"
    confirm_production: bool = False


@dataclass
class _Service:
    """The service being probed: its URL, its keys, and the processes to watch (embedded only)."""

    url: str
    name: str
    environment: str
    tenants: list[dict[str, str]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


def probe(spec: Spec, req: ProbeRequest, facts: Callable[[], HostFacts], reporter: Reporter) -> tuple[
        ProbeResult, Path]:
    """Search for the highest rate within the SLO (or sweep users, closed model); write the probe's
    results.json under req.out_dir and return the answer and its path."""
    from opskit.loadtest import safety

    if req.out_dir.joinpath("results.json").exists():
        raise UsageError(f"--out {req.out_dir} already holds a results.json; choose another folder")
    try:
        target = safety.resolve(spec, target=req.target, host=req.host, confirm_production=req.confirm_production)
    except safety.ParamError as exc:
        raise UsageError(str(exc).replace("`target`", "--target").replace("`host`", "--host")) from None
    if target.max_rps is not None and req.max_rate > target.max_rps:
        # the load test would cap each step there anyway, and a capped step would read as the service's shortfall
        if req.start > target.max_rps:
            raise UsageError(f"--start {req.start:g} is above target {target.name!r}'s max_rps ({target.max_rps:g})")
        reporter.note(f"--max-rate capped at target {target.name!r}'s max_rps ({target.max_rps:g} req/s)")
        req = dataclasses.replace(req, max_rate=target.max_rps)
    host_facts = facts()
    with ExitStack() as stack:
        if target.embedded:
            service = stack.enter_context(_embedded(spec, req, reporter))
        else:
            assert target.url is not None
            _check_reachable(target.url)
            service = _Service(target.url, target.name, target.environment,
                               [{"company_id": k.company_id, "key": k.key} for k in host_facts.tenant_keys])
        runs: list[Path] = []
        users_of: dict[str, int] = {}  # the closed sweep's user count of each step's results.json

        def run_step(rate: float, users: int | None = None) -> StepMeasure:
            index = len(runs) + 1
            folder = req.out_dir / "steps" / (f"{index:02d}-{users}u" if users else f"{index:02d}-{rate:.4g}")
            with _CpuWatch(service.pids, req.workers) as cpu:
                results = _run_one(spec, req, service, host_facts, folder, rate=rate, users=users)
            runs.append(folder / "results.json")
            if users:
                users_of[str(folder / "results.json")] = users
            return _measure(results, rate, folder / "results.json", service.pids, cpu.busiest)

        if req.model == "closed":
            result = sweep_users(lambda users: run_step(0.0, users), slo=req.slo, error_budget=req.error_budget,
                                 max_users=int(req.max_rate), start=max(1, int(req.start)), reporter=reporter)
        else:
            result = search(run_step, start=req.start, max_rate=req.max_rate, slo=req.slo,
                            error_budget=req.error_budget, reporter=reporter)
    path = write_results(req, result, service, host_facts, runs, users_of)
    return result, path


def _embedded(spec: Spec, req: ProbeRequest, reporter: Reporter) -> Any:
    """The embedded asset service, seeded as the scenario asks, with `workers` workers."""
    from contextlib import contextmanager

    from opskit.loadtest import scenarios
    from opskit.localservice import LocalService

    setup = scenarios.load(req.scenario, spec, target_max_rps=None).service

    @contextmanager
    def running() -> Any:
        reporter.note(f"starting the embedded asset service ({req.workers} worker(s), {setup.seed_assets} assets, "
                      f"{setup.tenants} tenants)")
        with LocalService(workers=req.workers, seed_assets=setup.seed_assets, tenants=setup.tenants,
                          tier=setup.tier) as svc:
            yield _Service(svc.url, f"embedded ({req.workers} worker{'s' if req.workers > 1 else ''})", "dev",
                           [{"company_id": k["company_id"], "key": k["key"]} for k in svc.keys], [svc.pid])

    return running()


def _check_reachable(url: str) -> None:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=5):
            pass
    except OSError as exc:
        raise RuntimeFailure(f"cannot reach {url}: {exc.strerror or exc}") from None


def _run_one(spec: Spec, req: ProbeRequest, service: _Service, host_facts: HostFacts, folder: Path, *,
             rate: float, users: int | None) -> RunResults:
    """One constant step through the load test's own preparation and runner."""
    from opskit.loadtest import host, plan, request
    from opskit.loadtest.scenarios import Stage

    params = request.RunParams(req.scenario, host=service.url, rate=None if users else rate, users=users,
                               duration=f"{req.step_s:g}s", path=req.path, out_dir=folder)
    facts = dataclasses.replace(host_facts, tenant_keys=tuple(
        request.TenantKey(t["company_id"], t["key"]) for t in service.tenants))
    try:
        prepared = request.prepare(spec, params, lambda: facts)
    except request.ParamError as exc:
        raise UsageError(str(exc)) from None
    sc = prepared.scenario
    # one level for the whole step, whatever shape the scenario has
    stage = Stage("probe", req.step_s, None if users else rate, None if users else rate, users)
    # a closed step measures one concurrency: all its users start in the first second, not at the
    # scenario's spawn rate (10/s would still be ramping through a short step)
    sc = dataclasses.replace(sc, stages=(stage,), model="closed" if users else "open", failover_at=None,
                             spawn_rate=max(sc.spawn_rate, float(users or 0)))
    ready: RunRequest = dataclasses.replace(prepared, scenario=sc, run_meta=dataclasses.replace(
        prepared.run_meta, stages=plan.stages(sc), target_name=service.name))
    host.check_local(ready)
    outcome, results = host.execute(ready, None)
    if results is None:
        from opskit.errors import Interrupted

        raise Interrupted("interrupted during a probe step")
    return results


def _measure(run: RunResults, rate: float, path: Path, pids: Sequence[int], cpu_pct: float | None) -> StepMeasure:
    duration = run.duration_s or 1.0
    load = [s for s in run.timeline if s.t < duration]
    completed = sum(s.requests for s in load)
    lat = run.total.latency_ms
    return StepMeasure(
        rate=rate if rate else round(completed / duration, 3), achieved=round(completed / duration, 3),
        p50_ms=lat.get("p50"), p95_ms=lat.get("p95"), p99_ms=lat.get("p99"),
        error_rate=run.total.error_rate or 0.0,
        in_flight_max=int(max((s.in_flight or 0 for s in run.timeline), default=0)),
        requests=run.total.requests, growing=growing(load),
        generator_bound=run.run.limited_by == "generator", results=str(path),
        cpu_pct=cpu_pct, memory_pct=_memory_pct(pids))


def growing(rows: Sequence[Any]) -> bool:
    """In flight (per arrival) or the median latency still rising in the step's last third."""
    from opskit.loadtest.health import queue_growing

    if queue_growing([s.in_flight or 0 for s in rows], [s.scheduled or 0 for s in rows]):
        return True
    p50 = [s.p50 for s in rows if s.p50 is not None]
    n = len(p50) // 3
    if n < 2:
        return False
    middle, last = sum(p50[n:2 * n]) / n, sum(p50[-n:]) / n
    return last > 2 * middle and last - middle >= 50


def _procs(pids: Sequence[int]) -> list[Any]:
    import psutil

    out = []
    for pid in pids:
        try:
            p = psutil.Process(pid)
            out += [p, *p.children(recursive=True)]
        except psutil.Error:
            continue
    return out


class _CpuWatch:
    """The service's CPU, one sample a second in a thread while a step runs; the step's figure is its busiest
    second (the runner's start-up and drain, when the service idles, would dilute a mean)."""

    def __init__(self, pids: Sequence[int], workers: int) -> None:
        import threading

        self.pids, self.workers = list(pids), max(workers, 1)
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="probe-cpu", daemon=True)

    def __enter__(self) -> _CpuWatch:
        if self.pids:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        import psutil

        seen: dict[int, Any] = {}
        while not self._stop.is_set():
            total = 0.0
            for p in _procs(self.pids):
                try:
                    if p.pid not in seen:
                        seen[p.pid] = p
                        p.cpu_percent(None)  # the first call only starts the counter
                    else:
                        total += seen[p.pid].cpu_percent(None)
                except psutil.Error:
                    continue
            self.samples.append(total / self.workers)
            self._stop.wait(1.0)

    @property
    def busiest(self) -> float | None:
        return round(max(self.samples[1:]), 1) if len(self.samples) > 1 else None


def _memory_pct(pids: Sequence[int]) -> float | None:
    import psutil

    if not pids:
        return None
    rss = 0
    for p in _procs(pids):
        try:
            rss += p.memory_info().rss
        except psutil.Error:
            continue
    return round(100.0 * rss / psutil.virtual_memory().total, 2)


def sweep_users(run_step: Callable[[int], StepMeasure], *, slo: Sequence[Criterion], error_budget: float,
                max_users: int, start: int = 1, reporter: Any = None) -> ProbeResult:
    """The closed model's simpler loop: users doubling from `start` until throughput stops rising (two
    steps under +5%), a step fails, or `max_users`; the points then span the knee for a USL fit."""
    steps: list[ProbeStep] = []
    users, flat, best = start, 0, 0.0
    within: float | None = None
    limited_by = "max_rate"
    while users <= max_users:
        m = dataclasses.replace(run_step(users), users=users)
        verdict, why = judge(dataclasses.replace(m, rate=0.0), slo, error_budget)  # no offered rate to miss
        st = ProbeStep(m, verdict, "ramp", why)
        steps.append(st)
        if reporter is not None:
            reporter.step(len(steps), st)
        if verdict == PASS:
            within = max(within or 0.0, m.achieved)
        elif limited_by == "max_rate":
            limited_by = verdict
        flat = flat + 1 if m.achieved < best * 1.05 else 0
        best = max(best, m.achieved)
        if flat >= 2 or verdict == "generator":
            limited_by = "generator" if verdict == "generator" else limited_by if limited_by != "max_rate" \
                else "throughput"
            break
        users *= 2
    notes = [] if flat >= 2 else ["throughput was still rising at the last step: raise --max-rate (users)"]
    return ProbeResult(within, best, limited_by, (within or 0.0, None), steps, notes)


def from_block(block: Probe) -> ProbeResult:
    """A probe block read back from results.json as the search's answer (for recommend)."""
    steps = [ProbeStep(StepMeasure(r.rate, r.achieved or 0.0, r.p50, r.p95, r.p99, r.error_rate or 0.0,
                                   r.in_flight_max or 0, 0, cpu_pct=r.cpu_pct, memory_pct=r.memory_pct),
                       r.verdict, "ramp", r.why or "") for r in block.steps]
    return ProbeResult(block.max_rate_within_slo, block.saturation_rate or 0.0, block.limited_by,
                       (block.interval[0] or 0.0, block.interval[1]), steps, list(block.notes))


def step_rows(result: ProbeResult, base: Path | None = None,
              users_of: dict[str, int] | None = None) -> tuple[ProbeStepRow, ...]:
    users_of = users_of or {}
    rows = []
    for s in result.steps:
        m = s.measure
        rel = m.results
        if rel and base is not None:
            with suppress(ValueError):
                rel = str(Path(rel).relative_to(base))
        rows.append(ProbeStepRow(
            rate=m.rate, achieved=m.achieved, latency_ms={"p50": m.p50_ms, "p95": m.p95_ms, "p99": m.p99_ms},
            error_rate=m.error_rate,
            in_flight_max=m.in_flight_max, verdict=s.verdict, phase=s.phase, why=s.why or None,
            users=users_of.get(m.results or ""), results=rel, cpu_pct=m.cpu_pct, memory_pct=m.memory_pct))
    return tuple(rows)


def write_results(req: ProbeRequest, result: ProbeResult, service: _Service, host_facts: HostFacts,
                  runs: Sequence[Path], users_of: dict[str, int] | None = None) -> Path:
    """The probe's results.json: the run at the answer (the highest passing step, else the first) with every
    step in `steps` (so `capacity fit` reads them) and the `probe` block; read back through the run model."""
    import json

    from opskit import atomicio
    from opskit import output as out
    from opskit.runmodel import read

    if not runs:
        raise RuntimeFailure("the probe ran no step")
    answer = result.max_rate_within_slo
    chosen = next((Path(s.measure.results) for s in reversed(result.steps)
                   if s.verdict == PASS and s.measure.rate == answer and s.measure.results), Path(runs[0]))
    doc = json.loads(chosen.read_text(encoding="utf-8"))
    steps = []
    for i, path in enumerate(runs):
        one = json.loads(Path(path).read_text(encoding="utf-8")).get("steps") or []
        steps += [{**s, "index": i, "name": f"probe-{i + 1}"} for s in one[:1]]
    block = Probe(model=req.model, max_rate_within_slo=answer, saturation_rate=result.saturation_rate,
                  limited_by=result.limited_by, interval=(result.interval[0], result.interval[1]),
                  steps=step_rows(result, req.out_dir, users_of), slo=req.slo_text, error_budget=req.error_budget,
                  step_s=req.step_s, notes=tuple(result.notes))
    first = json.loads(Path(runs[0]).read_text(encoding="utf-8"))["run"]
    run = doc["run"]
    run.update(scenario=f"probe-{req.scenario}", run_id=f"{host_facts.now.strftime('%Y%m%dT%H%M%SZ')}-probe",
               target=service.url, target_name=service.name, started_at=first.get("started_at"))
    doc.update(steps=steps, probe=dataclasses.asdict(block))
    doc.pop("histograms", None)  # the chosen step's own; the steps' are in their folders
    text = out.dumps_figures(doc) + "\n"
    read(json.loads(text), "probe results")  # the file is readable through the model before it is written
    path = atomicio.write_atomic(req.out_dir / "results.json", text)
    atomicio.write_atomic(req.out_dir / "probe.html", probe_html(block))
    return path


def probe_html(block: Probe) -> str:
    """A self-contained page beside the probe's results.json: latency vs throughput with the knee and the
    SLO line, and the steps."""
    from html import escape

    from opskit.capacity import charts
    from opskit.capacity.probeview import p95_limit_ms

    slo_ms = p95_limit_ms(block.slo)
    svg = charts.latency_chart([(r.achieved or 0.0, r.p95, r.verdict == PASS) for r in block.steps if r.p95],
                               block.max_rate_within_slo, slo_ms, block.saturation_rate)
    knee = "none" if block.max_rate_within_slo is None else f"{block.max_rate_within_slo:,.1f} req/s"

    def cell(v: float | None, fmt: str = "{:,.1f}") -> str:
        return "-" if v is None else fmt.format(v)

    rows = "".join(
        f"<tr><td>{i}</td><td>{escape(r.phase or '')}</td><td>{cell(r.rate)}</td><td>{cell(r.achieved)}</td>"
        f"<td>{cell(r.p50)}</td><td>{cell(r.p95)}</td><td>{cell(r.p99)}</td><td>{cell(r.error_rate, '{:.2%}')}</td>"
        f"<td>{r.in_flight_max if r.in_flight_max is not None else '-'}</td><td>{escape(r.verdict)}</td></tr>"
        for i, r in enumerate(block.steps, 1))
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Capacity probe</title>"
            "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:2px 8px;"
            "text-align:right}</style></head><body><h1>Capacity probe</h1>"
            f"<p>Knee: <b>{knee}</b> within {escape(', '.join(block.slo) or 'no SLO')} (limited by "
            f"{escape(block.limited_by)}); saturation {cell(block.saturation_rate)} req/s completed.</p>"
            f"<figure>{svg}</figure><table><tr><th>#</th><th>phase</th><th>offered req/s</th><th>completed</th>"
            "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>errors</th><th>in flight</th><th>verdict</th></tr>"
            f"{rows}</table></body></html>\n")

