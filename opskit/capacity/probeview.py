"""The capacity probe's options read into the core's terms, and its answer in words (pure)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opskit.errors import UsageError

if TYPE_CHECKING:
    from opskit.capacity.probe import ProbeResult
    from opskit.spec.schema import Spec


def answer_text(result: ProbeResult, slo: tuple[str, ...]) -> str:
    within = f" within {', '.join(slo)}" if slo else ""
    if result.max_rate_within_slo is None:
        return f"no rate held{within} (limited by {result.limited_by})"
    rate = f"{result.max_rate_within_slo:,.1f} req/s"
    if result.limited_by == "generator":
        return f"capacity >= {rate}{within} (generator-bound: a lower bound, not the knee)"
    if result.limited_by == "max_rate":
        return f"capacity >= {rate}{within} (every step passed up to --max-rate)"
    hi = result.interval[1]
    upper = f" (fails at {hi:,.1f} req/s: {result.limited_by})" if hi else ""
    return (f"max rate{within}: {rate}{upper}; saturation (most completed): "
            f"{result.saturation_rate:,.1f} req/s")


def probe_slo(spec: Spec, texts: tuple[str, ...]) -> tuple[tuple[Any, ...], tuple[str, ...]]:
    """--slo criteria (or the spec's SLOs' latency limits, endpoint dropped: the probe sends one request kind)."""
    import dataclasses

    from opskit.gate.criteria import CriterionError, parse
    from opskit.gate.sources import slo_criteria

    known = ("p50", "p95", "p99", "error_rate", "rps")  # what a step measures (capacity/probe.StepMeasure)
    if texts:
        out_c = []
        for text in texts:
            try:
                c = parse(text)
            except CriterionError as exc:
                raise UsageError(f"--slo {text!r}: column {exc.column}: {exc.message}") from None
            if c.metric not in known:
                raise UsageError(f"--slo {text!r}: the probe measures {', '.join(known)}, not {c.metric}")
            if c.endpoint or c.for_s:
                raise UsageError(f"--slo {text!r}: the probe judges each whole step: no endpoint, no 'for'")
            out_c.append(c)
        return tuple(out_c), texts
    # the latency limits only: --error-budget stands for the availability part
    derived = [s.criterion for slo in spec.slos for s in slo_criteria(slo) if s.criterion.metric in known
               and s.criterion.metric != "error_rate"]
    chosen: dict[str, Any] = {}
    for c in derived:  # the first SLO's limit per metric
        chosen.setdefault(c.metric, dataclasses.replace(c, endpoint=None))
    crit = tuple(chosen.values())
    return crit, tuple(c.text for c in crit)


def fraction(option: str, value: str) -> float:
    from opskit.units import parse_percent

    try:
        pct = parse_percent(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if not 0 <= pct <= 100:
        raise UsageError(f"{option}: expected 0% to 100%, got {value}")
    return pct / 100


def step_seconds(option: str, value: str) -> float:
    from opskit.units import parse_duration

    try:
        seconds = parse_duration(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None
    if seconds < 1:
        raise UsageError(f"{option}: a step needs at least 1s, got {value}")
    return seconds


def p95_limit_ms(slo: tuple[str, ...]) -> float | None:
    """The p95 limit among a probe's SLO texts ("p95 < 200ms"), for the chart's SLO line."""
    from opskit.gate.criteria import CriterionError, parse

    for text in slo:
        try:
            c = parse(text)
        except CriterionError:
            continue
        if c.metric == "p95":
            return c.value
    return None
