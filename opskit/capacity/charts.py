"""Charts for the report as inline SVG strings (matplotlib, Agg backend, text kept as text, no dates or
random ids in the output so the same data gives the same bytes)."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.capacity.forecast import Forecast
    from opskit.capacity.steps import Step
    from opskit.capacity.usl import USLFit

_COLORS = {"main": "#1f5fa8", "threshold": "#c0392b", "measured": "#222222", "fill": "#dbe7f5", "ok": "#2e7d32"}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "opskit", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100})
    return plt


def _svg(fig: Any, name: str) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    _plt().close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # inline: drop the XML declaration and doctype
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    # several SVGs share one HTML document, and so one id namespace: give each chart's ids its own prefix
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    for old in sorted(ids, key=len, reverse=True):
        text = text.replace(f'id="{old}"', f'id="{name}-{old}"').replace(f"#{old})", f"#{name}-{old})")
        text = text.replace(f'href="#{old}"', f'href="#{name}-{old}"')
    return text


def usl_chart(fit: USLFit, steps: list[Step]) -> str:
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    n_max = max(s.concurrency for s in steps)
    top = max(n_max, fit.peak_concurrency or 0) * 1.25 if fit.peak_concurrency and \
        fit.peak_concurrency < 4 * n_max else n_max * 1.25
    n = np.linspace(1 if n_max > 2 else 0.1, top, 200)
    ax.plot(n, [fit.throughput(v) for v in n], color=_COLORS["main"], label="USL fit")
    ax.plot(n, fit.lambda_ * n, color="#999999", linestyle=":", label="linear scaling (lambda N)")
    ax.scatter([s.concurrency for s in steps], [s.throughput for s in steps], color=_COLORS["measured"],
               zorder=3, label="measured steps")
    if fit.peak_concurrency is not None and fit.peak_concurrency <= top and not fit.unusable:
        ax.axvline(fit.peak_concurrency, color=_COLORS["threshold"], linestyle="--", linewidth=1)
        ax.annotate(f"peak N={fit.peak_concurrency:,.0f}, X={fit.peak_throughput:,.0f}",
                    (fit.peak_concurrency, fit.peak_throughput), textcoords="offset points", xytext=(6, -14))
    ax.set_ylim(0, max(max(s.throughput for s in steps), fit.peak_throughput if fit.peak_concurrency else 0) * 1.3)
    ax.set_xlabel("concurrency N (requests in flight)")
    ax.set_ylabel("throughput X (req/s)")
    ax.set_title(f"Universal Scalability Law: sigma={fit.sigma:.4g}, kappa={fit.kappa:.3g}, "
                 f"lambda={fit.lambda_:.4g}, R²={fit.r_squared:.3f}")
    ax.legend(loc="lower right", frameon=False)
    return _svg(fig, "usl")


def _plan_bands(ax: Any, fc: Forecast) -> None:
    start, band = 0, 0
    for m in range(1, len(fc.months) + 1):
        if m == len(fc.months) or fc.plan_by_month[m] != fc.plan_by_month[start]:
            if fc.plan_by_month[start]:
                shade = "#eef2f7" if band % 2 == 0 else "#fbfbfb"  # alternate so neighbouring plans show apart
                band += 1
                ax.axvspan(start, m - 1 if m == len(fc.months) else m, color=shade, zorder=0)
                ax.text((start + m - 1) / 2, 1.01, fc.plan_by_month[start], transform=ax.get_xaxis_transform(),
                        ha="center", va="bottom", fontsize=8, color="#555555")
            start = m


def peak_chart(fc: Forecast) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    _plan_bands(ax, fc)
    ax.plot(fc.months, fc.metrics["peak_rps"], color=_COLORS["main"], label="forecast peak req/s")
    if fc.sizing:
        s = fc.sizing
        serving = [(i - s.redundancy) * s.capacity_rps * s.utilization_target_pct / 100 for i in s.instances]
        ax.step(fc.months, serving, where="post", color=_COLORS["ok"],
                label=f"fleet capacity at {s.utilization_target_pct:g}% (N+{s.redundancy} spare excluded)")
        ax2 = ax.twinx()
        ax2.step(fc.months, s.instances, where="post", color="#888888", linestyle="--", linewidth=1)
        ax2.set_ylabel(f"{s.resource} instances", color="#666666")
        ax2.set_ylim(0, s.max + 1)
    ax.set_xlabel("month")
    ax.set_ylabel("req/s")
    ax.set_title("Peak traffic and the fleet that serves it", pad=14)
    ax.legend(loc="upper left", frameon=False)
    return _svg(fig, "peak")


def driver_chart(fc: Forecast, index: int) -> str:
    """A threshold driver in its own unit: demand (GB, connections) against the level where the threshold
    fires, for today's capacity and for what each month's plan provisions. A percent of capacity is never
    plotted past 100% on a percent axis."""
    d = fc.drivers[index]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 2.8))
    _plan_bands(ax, fc)
    demand = d.demand or d.values
    unit = d.demand_unit or d.unit
    shown = {"percent": "%", "count": ""}.get(unit, f" {unit}")
    ax.plot(fc.months, demand, color=_COLORS["main"], label=f"{d.key}: {d.growth_metric}")
    limits = d.limit_now or [d.threshold] * len(fc.months)
    pct = f"{d.threshold:g}% of " if d.unit == "percent" else ""
    ax.plot(fc.months, limits, color=_COLORS["threshold"], linestyle="--", linewidth=1,
            label=f"threshold: {pct}today's capacity" if pct else f"threshold {d.threshold:g}{shown}")
    planned = [v if v is not None else float("nan") for v in d.limit_planned]
    if any(v is not None for v in d.limit_planned):
        ax.step(fc.months, planned, where="post", color=_COLORS["ok"], linewidth=1.2,
                label=f"threshold: {pct}what the plan provisions")
    if d.crossing_month is not None:
        m = d.crossing_month
        ax.plot([m], [demand[m]], marker="o", color=_COLORS["threshold"])
        ax.annotate(f"crossed {fc.labels[m]}", (m, demand[m]), textcoords="offset points", xytext=(6, 6))
    every = [v for v in demand + limits + [v for v in d.limit_planned if v is not None] if v > 0]
    ax.set_yscale("log" if every and max(every) / min(every) > 50 else "linear")
    ax.set_xlabel("month")
    ax.set_ylabel(unit if unit not in ("percent", "count") else d.growth_metric)
    ax.set_title(d.key, pad=14)
    ax.legend(loc="upper left", frameon=False)
    return _svg(fig, f"driver{index}")


def timeline_chart(fc: Forecast) -> str:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 1.2 + 0.35 * max(len(fc.crossings), 1)))
    _plan_bands(ax, fc)
    for i, c in enumerate(fc.crossings):
        ax.plot([c.month], [i], marker="D", color=_COLORS["threshold"])
        ax.annotate(f"{c.label}: {c.key}" + (f" -> {c.playbook}" if c.playbook else ""), (c.month, i),
                    textcoords="offset points", xytext=(8, -3), fontsize=8)
    ax.set_xlim(0, fc.months[-1])
    ax.set_ylim(-0.8, max(len(fc.crossings), 1) - 0.2)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    ax.set_xlabel("month")
    ax.set_title("When each threshold is crossed", pad=14)
    return _svg(fig, "timeline")


def latency_chart(points: list[tuple[float, float, bool]], knee_rps: float | None, slo_ms: float | None,
                  saturation_rps: float | None) -> str:
    """Latency (p95) against completed throughput, one point per probe step (passing or not), with the knee
    (the highest rate held within the SLO) and the SLO line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ok = sorted((x, y) for x, y, passed in points if passed)
    bad = sorted((x, y) for x, y, passed in points if not passed)
    if ok:
        ax.scatter([x for x, _ in ok], [y for _, y in ok], color=_COLORS["ok"], zorder=3, label="step passed")
    if bad:
        ax.scatter([x for x, _ in bad], [y for _, y in bad], color=_COLORS["threshold"], marker="x", zorder=3,
                   label="step failed")
    if slo_ms is not None:
        ax.axhline(slo_ms, color=_COLORS["threshold"], linestyle="--", linewidth=1, label=f"SLO p95 {slo_ms:g} ms")
    if knee_rps is not None:
        ax.axvline(knee_rps, color=_COLORS["main"], linestyle="--", linewidth=1,
                   label=f"knee: {knee_rps:,.1f} req/s within the SLO")
    if saturation_rps:
        ax.axvline(saturation_rps, color="#999999", linestyle=":", linewidth=1,
                   label=f"saturation: {saturation_rps:,.1f} req/s completed")
    ax.set_yscale("log")
    ax.set_xlabel("throughput (completed req/s)")
    ax.set_ylabel("p95 latency (ms, log)")
    ax.set_title("Latency vs throughput (capacity probe)")
    ax.legend(loc="upper left", frameon=False)
    return _svg(fig, "knee")
