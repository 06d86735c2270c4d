"""The capacity review as a self-contained HTML page (inline CSS and SVG, no external asset) and a
Markdown twin with the same sections and tables (the charts are only in the HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

from opskit import output as out
from opskit.capacity.forecast import Forecast
from opskit.capacity.plan import CapacityPlan, Fleet
from opskit.capacity.review import Review

# the report's sections, in order: (id, heading); tests check both twins carry every one
SECTIONS = (
    ("summary", "Summary"),
    ("scalability", "Scalability (USL fit)"),
    ("forecast", "Forecast"),
    ("crossings", "Threshold crossings"),
    ("horizons", "Instances and cost per horizon"),
    ("costs", "Plan costs"),
    ("playbooks", "Recommended playbooks"),
    ("assumptions", "Assumptions"),
    ("provenance", "Data provenance"),
)

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2rem auto;max-width:60rem;color:#222;
line-height:1.45;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#666;font-size:.9rem}table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .55rem;text-align:left;vertical-align:top}th{background:#f5f7fa}
td.n{text-align:right;font-variant-numeric:tabular-nums}.headline{display:grid;grid-template-columns:14rem 1fr;
gap:.4rem 1rem;background:#f5f7fa;padding:1rem;border-radius:6px}.headline b{color:#1f5fa8}
.warn{background:#fff4e5;border-left:4px solid #e67e22;padding:.4rem .8rem;margin:.3rem 0}
figure{margin:1rem 0}.scroll{overflow-x:auto}td{white-space:nowrap}td.wrap{white-space:normal}
figure svg{max-width:100%;height:auto}.note{color:#555}
"""


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _money(v: float | None) -> str:
    return "-" if v is None else f"${v:,.2f}"


def _tables(r: Review) -> dict[str, list[tuple[Sequence[str], list[Sequence[Any]]]]]:
    """Every table of the report, by section: shared by the HTML and the Markdown twin."""
    t: dict[str, list[tuple[Sequence[str], list[Sequence[Any]]]]] = {k: [] for k, _ in SECTIONS}
    fit = r.fit
    if fit is not None:
        iv = fit.intervals
        coefficients: list[Sequence[Any]] = [
            (name, f"{val:.6g}", "-" if iv[key].low is None else f"{iv[key].low:.4g} .. {iv[key].high:.4g}")
            for name, key, val in (("sigma (contention)", "sigma", fit.sigma),
                                   ("kappa (coherency)", "kappa", fit.kappa),
                                   ("lambda (req/s at N=1)", "lambda", fit.lambda_))]
        undetermined = "not determined (the fit is not usable)"
        coefficients += [("peak concurrency", undetermined if fit.unusable else
                          _fmt(fit.peak_concurrency) if fit.peak_concurrency else "none", ""),
                         ("peak throughput" if fit.peak_concurrency else "throughput ceiling (lambda/sigma)",
                          undetermined if fit.unusable else _fmt(fit.peak_throughput), ""),
                         ("R²", f"{fit.r_squared:.4f}", ""), ("points", str(fit.points), "")]
        t["scalability"].append((("coefficient", "value", "95% interval"), coefficients))
    if r.slo is not None:
        s = r.slo
        t["scalability"].append((("SLO capacity per instance", "value"), [
            ("SLO", f"{r.slo_name or ''} p95 <= {s.p95_limit_ms:g} ms, errors <= {s.max_error_rate:.1%}"),
            ("highest step within the SLO", _fmt(s.measured_rps)),
            ("estimated at the SLO limit", _fmt(s.estimated_rps)),
            ("limited by", s.limited_by)]))
    t["forecast"].append(forecast_table(r.forecast))
    t["crossings"].append(crossing_table(r.forecast))
    t["horizons"].append((("month", "date", "peak req/s", "instances needed", "plan", "plan provisions",
                            "plan vs need", "plan cost/month"), [
        (h.month, h.label, _fmt(h.peak_rps), "-" if h.instances is None else
         (f"{h.instances}" + ("" if h.needed is None or h.needed == h.instances else f" (needs {h.needed})")),
         h.plan or "-", _fmt(h.plan_instances), h.verdict or "-", _money(h.plan_monthly)) for h in r.horizons]))
    if r.capacity_plan is not None:
        t["horizons"].append(plan_table(r.capacity_plan))
    cost_rows: list[Sequence[Any]] = []
    for e in r.estimates:
        ue = e.unit_economics
        cost_rows.append((e.plan, _money(e.total_monthly), _money(e.stated_monthly),
                          _money(ue.per_million_requests) if ue else "-",
                          f"${ue.per_mau:,.3f}" if ue and ue.per_mau is not None else "-"))
    t["costs"].append((("plan", "catalog monthly", "stated in spec", "per million requests", "per MAU"), cost_rows))
    for e in r.estimates:
        t["costs"].append((("plan " + e.plan + ": resource", "monthly"),
                           [(f"{x.name} ({x.kind}{', ' + x.instance if x.instance else ''})", _money(x.monthly_cost))
                            for x in e.resources]))
    t["playbooks"].append((("playbook", "why", "needed by"), [(p.playbook, p.why, p.by) for p in r.playbooks]))
    t["provenance"].append((("what", "source"), list(r.provenance)))
    return t


def forecast_table(fc: Forecast) -> tuple[list[str], list[Sequence[Any]]]:
    """Month by month: growth metrics, peak req/s, instances, threshold drivers, covering plan."""
    cols = ["month", "date", *fc.metrics]
    if fc.sizing:
        cols.append(f"{fc.sizing.resource} instances")
    cols += [d.key for d in fc.drivers] + ["plan"]
    rows: list[Sequence[Any]] = []
    for m in fc.months:
        row: list[Any] = [m, fc.labels[m], *(_fmt(v[m]) for v in fc.metrics.values())]
        if fc.sizing:
            row.append(f"{fc.sizing.instances[m]}" + ("" if fc.sizing.needed[m] <= fc.sizing.max
                                                       else f" (needs {fc.sizing.needed[m]})"))
        row += [_fmt(d.values[m]) for d in fc.drivers] + [fc.plan_by_month[m] or "-"]
        rows.append(row)
    return cols, rows


def _fleet(f: Fleet | None) -> str:
    return "-" if f is None else f"{f.count} x {f.instance_type}"


def plan_caption(p: CapacityPlan | None) -> str:
    if p is None:
        return ""
    m = p.measured
    return (f"The second table is the cheapest fleet at measured capacity: {m.rps:,.1f} req/s per "
            f"{m.instance_type} ({m.source}), other types scaled by vCPU, run at {p.utilization_target_pct:g}% "
            f"with N+{p.redundancy}, beside the plan for the month (instances only).")


def plan_table(p: CapacityPlan, *, compact: bool = False) -> tuple[list[str], list[Sequence[Any]]]:
    """Per horizon: the cheapest fleet at the measured capacity beside the spec's plan for that month.
    The reserved columns only when the catalog has a reserved rate for a fleet shown; compact (a terminal)
    leaves out the per-instance capacity, the peak utilization and the saving."""
    fleets = [f for h in p.horizons for f in (h.cheapest, h.planned.fleet if h.planned else None) if f]
    reserved = any(f.reserved_1yr_monthly_usd is not None or f.reserved_3yr_monthly_usd is not None for f in fleets)
    cols = ["month", "date", "peak req/s", "cheapest"]
    cols += [] if compact else ["req/s per instance", "peak utilization"]
    cols += ["monthly"] + (["1-yr reserved", "3-yr reserved"] if reserved else [])
    cols += ["per million requests", "plan", "plan monthly", "plan vs need (vCPU-scaled)"]
    cols += [] if compact else ["saving/month"]
    rows: list[Sequence[Any]] = []
    for h in p.horizons:
        c, pl = h.cheapest, h.planned
        row: list[Any] = [h.month, h.label, _fmt(h.peak_rps), _fleet(c) if c else h.note or "-"]
        if not compact:
            row += [_fmt(c.capacity_rps) if c else "-", f"{c.peak_utilization_pct:.0f}%" if c else "-"]
        row += [_money(c.monthly_usd) if c else "-"]
        if reserved:
            row += [_money(c.reserved_1yr_monthly_usd) if c else "-", _money(c.reserved_3yr_monthly_usd) if c else "-"]
        row += [_money(c.per_million_requests_usd) if c else "-", f"{pl.plan}: {_fleet(pl.fleet)}" if pl else "-",
                _money(pl.fleet.monthly_usd) if pl and pl.fleet else "-", pl.verdict if pl else "-"]
        if not compact:
            row += [_money(h.saving_usd)]
        rows.append(row)
    return cols, rows


CROSSING_COLUMNS = ("month", "date", "what", "playbook / action", "covering plan", "plan cost/month", "note")


def crossing_table(fc: Forecast) -> tuple[Sequence[str], list[Sequence[Any]]]:
    return CROSSING_COLUMNS, [(c.month, c.label, c.what, c.playbook or c.action or "-", c.plan or "none",
                               _money(c.plan_monthly), c.plan_note or "") for c in fc.crossings]


def plain(rows: list[Sequence[Any]]) -> list[list[str]]:
    """Cells as text, for tables printed outside the report."""
    return [[_fmt(v) if not isinstance(v, str) else v for v in row] for row in rows]


def _html_table(cols: Sequence[str], rows: list[Sequence[Any]]) -> str:
    head = "".join(f"<th>{escape(str(c))}</th>" for c in cols)
    body = []
    for row in rows:
        cells = []
        for v in row:
            text = _fmt(v) if not isinstance(v, str) else v
            num = isinstance(v, int | float) or (isinstance(v, str) and v[:1] in "$0123456789" and " " not in v)
            attr = ' class="n"' if num else (' class="wrap"' if len(text) > 40 else "")
            cells.append(f"<td{attr}>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{len(cols)}" class="note">none</td></tr>')
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def render_html(r: Review, charts: dict[str, list[str]]) -> str:
    tables = _tables(r)
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(r.title)}</title>"
             f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><style>{_CSS}</style>"
             f"</head><body><h1>{escape(r.title)}</h1><p class=\"meta\">Generated {escape(r.generated_at)} from "
             f"{escape(r.spec_path)} by opskit capacity report</p>"]
    for sid, heading in SECTIONS:
        parts.append(f'<section id="{sid}"><h2>{escape(heading)}</h2>')
        if sid == "summary":
            parts.append('<div class="headline">' + "".join(
                f"<b>{escape(h.question)}</b><span>{escape(h.answer)}</span>" for h in r.headlines) + "</div>")
            parts += [f'<div class="warn">{escape(w)}</div>' for w in r.warnings]
        if sid == "scalability" and r.fit_note:
            parts.append(f'<p class="note">{escape(r.fit_note)}</p>')
        if sid == "horizons" and (r.capacity_plan_note or r.capacity_plan):
            parts.append(f'<p class="note">{escape(r.capacity_plan_note or plan_caption(r.capacity_plan))}</p>')
        if sid == "assumptions":
            parts.append("<ul>" + "".join(f"<li>{escape(a)}</li>" for a in r.assumptions) + "</ul>")
        parts += [f'<figure class="chart">{svg}</figure>' for svg in charts.get(sid, [])]
        parts += [_html_table(cols, rows) for cols, rows in tables[sid]]
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "".join(parts)


def render_markdown(r: Review) -> str:
    tables = _tables(r)
    lines = [f"# {r.title}", "", f"Generated {r.generated_at} from `{r.spec_path}` by `opskit capacity report`. "
             "Charts are in the HTML twin.", ""]
    for sid, heading in SECTIONS:
        lines += [f"## {heading}", ""]
        if sid == "summary":
            lines += [f"- **{h.question}:** {h.answer}" for h in r.headlines] + [""]
            lines += [f"> **Check:** {w}" for w in r.warnings] + ([""] if r.warnings else [])
        if sid == "scalability" and r.fit_note:
            lines += [r.fit_note, ""]
        if sid == "horizons" and (r.capacity_plan_note or r.capacity_plan):
            lines += [r.capacity_plan_note or plan_caption(r.capacity_plan), ""]
        if sid == "assumptions":
            lines += [f"- {a}" for a in r.assumptions] + [""]
        for cols, rows in tables[sid]:
            shown = plain(rows)
            lines.append(out.markdown_table(cols, shown) if shown else "_none_\n")
    return "\n".join(lines).rstrip() + "\n"
