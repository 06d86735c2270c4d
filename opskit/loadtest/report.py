"""opskit's own HTML page for one run (report.html in the run folder), built from the typed run model.

Pure: a RunResults (and the gate's lines, when the run was gated) in, one self-contained HTML string out:
inline SVG charts, no scripts, no external assets, so it opens from a CI artifact or an air-gapped box.
It shows what Locust's own report cannot tell about an open-model run: the rate offered against the rate
completed, percentiles of successful requests timed from each arrival's intended start, failures apart,
requests in flight, the steps, the generator's health and the verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from opskit.runmodel import RunResults

W, H = 760, 220  # one chart's size in px
PAD_L, PAD_R, PAD_T, PAD_B = 56, 16, 28, 30
COLORS = {"offered": "#8c8c8c", "completed": "#1f77b4", "failed": "#d62728", "p50": "#2ca02c",
          "p95": "#ff7f0e", "p99": "#9467bd", "in flight": "#17becf", "dropped": "#e377c2"}


@dataclass(frozen=True)
class GateLine:
    """One gate verdict as the page shows it."""

    criterion: str
    status: str  # pass, fail, skipped, error
    measured: str
    limit: str
    detail: str = ""


Series = tuple[str, Sequence[tuple[float, float | None]]]


def render(run: RunResults, gate: Sequence[GateLine] | None = None) -> str:
    info, total, rows = run.run, run.total, run.timeline
    title = f"{info.scenario}: {info.model} model, {info.duration_s or 0:g}s against {info.target or '?'}"
    parts = [f"<h1>{escape(title)}</h1>", _verdicts(run, gate)]
    open_model = info.model == "open"
    rate: list[Series] = []
    if open_model:
        rate.append(("offered", [(s.t, s.scheduled) for s in rows]))
    rate += [("completed", [(s.t, float(s.requests)) for s in rows]),
             ("failed", [(s.t, float(s.errors)) for s in rows])]
    boundaries = [st.start_s for st in run.steps or () if st.start_s]
    parts.append(chart("Requests per second: " + ("offered (scheduled arrivals) vs completed" if open_model
                                                   else "completed"), "req/s", rate, boundaries))
    latency_note = "timed from each arrival's intended start" if open_model else "timed from the send (closed model)"
    parts.append(chart(f"Latency of successful requests per second ({latency_note})", "ms",
                       [(k, [(s.t, getattr(s, k)) for s in rows]) for k in ("p50", "p95", "p99")], boundaries))
    flight: list[Series] = [("in flight", [(s.t, s.in_flight) for s in rows])]
    if open_model:
        flight.append(("dropped", [(s.t, s.dropped) for s in rows]))
    parts.append(chart("Requests in flight (highest each second)" + (" and arrivals dropped" if open_model else ""),
                       "", flight, boundaries))
    parts += [_endpoints(run), _steps(run), _generator(run)]
    body = "\n".join(p for p in parts if p)
    return (f"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{body}\n<p class=\"foot\">run {escape(info.run_id or '-')}, "
            f"{escape(info.started_at or '')} to {escape(info.ended_at or '')}; results.json holds every number "
            f"(total {total.requests} requests).</p></body></html>\n")


CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:24px;max-width:980px;color:#222}"
       "table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;"
       "white-space:nowrap}"
       "th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.pass{color:#1a7f37}"
       ".fail,.error,.invalid{color:#c62828;font-weight:bold}.skipped{color:#777}.foot{color:#777;font-size:12px}"
       "h2{font-size:16px;margin:20px 0 4px}")


def _verdicts(run: RunResults, gate: Sequence[GateLine] | None) -> str:
    info = run.run
    out = ["<h2>Verdicts</h2><ul>"]
    if info.valid:
        out.append("<li class=\"pass\">run: valid (the generator kept its schedule; the numbers can be trusted)</li>")
    else:
        out.append(f"<li class=\"invalid\">run: INVALID: {escape(info.invalid_reason or '?')}</li>")
    if info.interrupted:
        out.append("<li class=\"invalid\">interrupted before the end: partial results</li>")
    if info.aborted:
        out.append(f"<li class=\"fail\">aborted: {escape(info.aborted)}</li>")
    out.append("</ul>")
    if gate is not None:
        status = "fail" if any(g.status in ("fail", "error") for g in gate) else "pass"
        out.append(f"<h2>Gate: <span class=\"{status}\">{status.upper()}</span></h2>")
        out.append(_table(["criterion", "status", "measured", "limit", "detail"],
                          [[g.criterion, f"<span class=\"{escape(g.status)}\">{escape(g.status.upper())}</span>",
                            g.measured, g.limit, g.detail] for g in gate], raw={1}))
    return "".join(out)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} ms" if v < 1000 else f"{v / 1000:.2f} s"


def _endpoints(run: RunResults) -> str:
    rows = []
    for name, ep in [*sorted(run.endpoints.items()), ("(all)", run.total)]:
        lat, failed = ep.latency_ms, ep.failure_latency_ms
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(ep.failures_by_kind.items()))
        rows.append([name, ep.requests, ep.failures, kinds or "-", _ms(lat.get("p50")), _ms(lat.get("p95")),
                     _ms(lat.get("p99")), _ms(lat.get("max")), _ms(failed.get("p95"))])
    return "<h2>Endpoints</h2>" + _table(["endpoint", "requests", "failures", "by kind", "p50", "p95", "p99", "max",
                                          "failed p95"], rows)


def _steps(run: RunResults) -> str:
    steps = run.steps or ()
    if not steps:
        return ""
    rows = [[s.name or s.index, "-" if s.rate is None else f"{s.rate:.4g}", "-" if s.users is None else f"{s.users:g}",
             f"{s.start_s or 0:g}s", f"{s.duration_s or 0:g}s", s.requests, f"{s.rps:.1f}", s.failures or 0,
             _ms(s.latency_ms.get("p95")), _ms(s.latency_ms.get("p99")), f"{s.concurrency:g}"] for s in steps]
    return "<h2>Steps</h2>" + _table(["step", "rate", "users", "start", "length", "requests", "req/s", "failures",
                                      "p95", "p99", "concurrency"], rows)


def _generator(run: RunResults) -> str:
    g = run.generator
    if g is None:
        return ""

    def num(v: float | None, unit: str = "") -> str:
        return "-" if v is None else f"{v:g}{unit}"

    facts = [["intended rate", num(g.intended_rate, " req/s")], ["achieved rate", num(g.achieved_rate, " req/s")],
             ["scheduled / sent / dropped", f"{num(g.scheduled)} / {num(g.sent)} / {num(g.dropped)}"],
             ["latest send (lag max)", num(g.lag_max_ms, " ms")], ["task errors", num(g.task_errors)],
             ["CPU max / mean (% of a core)", f"{num(g.cpu_max)} / {num(g.cpu_mean)}"],
             ["processes", num(g.processes)]]
    out = "<h2>Generator health</h2>" + _table(["measure", "value"], facts)
    if g.workers:
        out += _table(["process", "id", "host", "pid"], [[w.proc, w.id, w.host, w.pid] for w in g.workers])
    if g.cpu_samples:
        out += chart("Generator CPU per process (% of one core; above 90% for 5 s makes the run invalid)", "%",
                     [(f"proc {p}", list(enumerate(v))) for p, v in sorted(g.cpu_samples.items())], [])
    return out


def _table(head: Sequence[str], rows: Sequence[Sequence[object]], raw: set[int] | None = None) -> str:
    keep = raw or set()
    cells = "".join("<tr>" + "".join(f"<td>{v if i in keep else escape(str(v))}</td>" for i, v in enumerate(r))
                    + "</tr>" for r in rows)
    return "<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"


def chart(title: str, unit: str, series: Sequence[Series], boundaries: Sequence[float]) -> str:
    """A line chart as inline SVG: x = seconds since the run's start, one polyline per series (gaps where a
    value is missing), dashed lines at step boundaries."""
    points = [(t, v) for _, pts in series for t, v in pts if v is not None]
    if not points:
        return f"<h2>{escape(title)}</h2><p>no data</p>"
    x_max = max(max(t for t, _ in points), 1.0)
    y_max = _nice(max(v for _, v in points))
    pw, ph = W - PAD_L - PAD_R, H - PAD_T - PAD_B

    def x(t: float) -> float:
        return PAD_L + pw * t / x_max

    def y(v: float) -> float:
        return PAD_T + ph * (1 - v / y_max)

    out = [f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" role=\"img\" "
           f"aria-label=\"{escape(title)}\"><rect width=\"{W}\" height=\"{H}\" fill=\"#fff\"/>"]
    for i in range(5):  # y grid and labels
        v = y_max * i / 4
        out.append(f"<line x1=\"{PAD_L}\" x2=\"{W - PAD_R}\" y1=\"{y(v):.1f}\" y2=\"{y(v):.1f}\" stroke=\"#eee\"/>"
                   f"<text x=\"{PAD_L - 4}\" y=\"{y(v) + 4:.1f}\" font-size=\"10\" text-anchor=\"end\">{v:g}</text>")
    step = _nice(x_max / 6)
    for i in range(int(x_max // step) + 1):
        t = step * i
        out.append(f"<text x=\"{x(t):.1f}\" y=\"{H - PAD_B + 14}\" font-size=\"10\" text-anchor=\"middle\">"
                   f"{t:g}s</text>")
    for b in boundaries:
        out.append(f"<line x1=\"{x(b):.1f}\" x2=\"{x(b):.1f}\" y1=\"{PAD_T}\" y2=\"{H - PAD_B}\" stroke=\"#999\" "
                   "stroke-dasharray=\"4 3\"/>")
    legend_x = PAD_L
    for i, (label, pts) in enumerate(series):
        color = COLORS.get(label, ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][i % 4])
        for run in _runs(pts):
            path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
            out.append(f"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.6\" points=\"{path}\"/>")
        out.append(f"<rect x=\"{legend_x}\" y=\"8\" width=\"10\" height=\"10\" fill=\"{color}\"/>"
                   f"<text x=\"{legend_x + 14}\" y=\"17\" font-size=\"11\">{escape(label)}</text>")
        legend_x += 24 + 7 * len(label)
    out.append(f"<text x=\"{W - PAD_R}\" y=\"17\" font-size=\"11\" text-anchor=\"end\">{escape(unit)}</text></svg>")
    return f"<h2>{escape(title)}</h2>" + "".join(out)


def _runs(pts: Sequence[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Consecutive points with values (a missing value breaks the line instead of drawing it at zero)."""
    out: list[list[tuple[float, float]]] = [[]]
    for t, v in pts:
        if v is None:
            if out[-1]:
                out.append([])
        else:
            out[-1].append((t, v))
    return [r for r in out if r]


def _nice(v: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at or above v."""
    if v <= 0:
        return 1.0
    import math

    base = 10 ** math.floor(math.log10(v))
    return next(m * base for m in (1, 2, 5, 10) if m * base >= v)
