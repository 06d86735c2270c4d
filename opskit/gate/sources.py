"""Where a gate's criteria come from: the spec (SLOs, gate.criteria, gate.scenarios, gate.abort_on_fail)
or the command line, which replaces all of the spec's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from opskit.gate.criteria import Criterion, parse
from opskit.gate.evaluate import Sourced

if TYPE_CHECKING:
    from opskit.spec.schema import SLO, GateSpec


def slo_criteria(slo: SLO) -> list[Sourced]:
    """Each latency objective becomes `pNN < X` and availability A becomes `error_rate < (100 - A)%`."""
    out: list[Sourced] = []
    source = f"slo:{slo.name}"
    if slo.latency is not None:
        for metric in ("p50", "p90", "p95", "p99", "p999"):
            limit = getattr(slo.latency, metric)
            if limit is not None:
                out.append(Sourced(Criterion(slo.endpoint, metric, "<", limit, _ms_text(limit)), source, False))
    if slo.availability is not None:
        budget = round(100.0 - slo.availability, 9)  # 100 - 99.9 is 0.0999999..., say 0.1%
        if budget > 0:
            criterion = Criterion(slo.endpoint, "error_rate", "<", budget / 100, f"{budget:g}%")
        else:  # 100% availability leaves no budget: not one error
            criterion = Criterion(slo.endpoint, "error_rate", "==", 0.0, "0%")
        out.append(Sourced(criterion, source, False))
    return out


def spec_criteria(slos: Iterable[SLO], gate: GateSpec, scenario: str) -> list[Sourced]:
    out: list[Sourced] = []
    for slo in slos:
        out += slo_criteria(slo)
    out += [Sourced(parse(text), "gate.criteria") for text in gate.criteria]
    out += [Sourced(parse(text), f"gate.scenarios.{scenario}") for text in gate.scenarios.get(scenario, [])]
    # a criterion that may stop a run must also be judged at the end of it
    out += [Sourced(parse(text), "gate.abort_on_fail") for text in gate.abort_on_fail]
    return dedupe(out)


def cli_criteria(texts: Iterable[str]) -> list[Sourced]:
    return dedupe([Sourced(parse(text), "--criteria") for text in texts])


def dedupe(items: list[Sourced]) -> list[Sourced]:
    """One verdict per criterion text; a written criterion outranks the same one derived from an SLO
    because it must find its endpoint."""
    index: dict[str, int] = {}
    out: list[Sourced] = []
    for item in items:
        at = index.get(item.criterion.text)
        if at is None:
            index[item.criterion.text] = len(out)
            out.append(item)
        elif item.required and not out[at].required:
            out[at] = item
    return out


def _ms_text(ms: float) -> str:
    return f"{ms / 1000:g}s" if ms >= 1000 and ms % 1000 == 0 else f"{ms:g}ms"
