"""--act: which playbook each scaling decision hands over to, with which parameters (pure), and the
hand-over itself through opskit.playbooks.handoff."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from opskit.scaling.model import Evaluation, ResourceDecision

HandoffStatus = Literal["planned", "handed over", "refused", "failed", "not handed over"]

if TYPE_CHECKING:
    from opskit.spec.schema import Resource, Threshold


@dataclass(frozen=True)
class Handoff:
    """What --act did for one resource: a hand-over to its playbook, or why there was none (`note`)."""

    resource: str
    playbook: str | None
    decision: str
    params: dict[str, object]
    status: HandoffStatus = "planned"
    exit_code: int | None = None
    note: str = ""


def handoffs(ev: Evaluation, *, service_url: str | None) -> list[Handoff]:
    """One entry per resource: "planned" for a resource that should scale to a new count and has a playbook
    bound to a threshold that voted so, else "not handed over" with the reason in `note` (holding, no data,
    no playbook bound, replicas unknown, or a count that cannot move). `service_url` is the local service's
    base URL when the metrics came from it (local playbooks scale its workers)."""
    out = []
    for name, r in ev.resources.items():
        why = _why_not(name, r)
        if why is not None:
            out.append(Handoff(resource=name, playbook=r.playbook, decision=r.decision, params={},
                               status="not handed over", note=why))
            continue
        params: dict[str, object] = {"replicas": r.recommended, "reason": f"{r.decision}: {r.reason}"}
        if service_url:
            params["workers"] = r.recommended  # the local asset service scales by worker processes
            params["target"] = service_url
        out.append(Handoff(resource=name, playbook=r.playbook, decision=r.decision, params=params))
    return out


def params_at_level(row: Threshold, *, current: int | None, resources: Mapping[str, Resource],
                    service_url: str | None, now: dt.datetime) -> dict[str, object]:
    """The hand-over parameters for `row` at its scale-up level now (what `playbook serve` gives a firing
    alert's playbook: the alert says the direction, not the value, which is only in its summary text).
    The count is what the band math and the resource's min/max allow for that, at least one more; empty
    when it cannot move (unknown, or already at max)."""
    from opskit.metrics.base import Sample, Series
    from opskit.scaling.evaluate import evaluate

    assert row.scale_up is not None  # only rows with a scale_up level are rendered as alerts
    level = row.model_copy(update={"for_": None})  # Alertmanager already waited the row's window
    series = Series(row.resource, row.metric, (Sample(row.scale_up * (1 + 1e-6) + 1e-6, now),))
    ev = evaluate([level], [series], now=now, resources=resources, replicas={row.resource: current})
    plans = [h for h in handoffs(ev, service_url=service_url) if h.status == "planned"]
    return dict(plans[0].params) if plans else {}


def _why_not(name: str, r: ResourceDecision) -> str | None:
    """Why the resource's decision is not handed over, or None when it is."""
    if r.decision == "hold":
        return "hold: nothing to hand over"
    if r.decision == "no_data":
        return "no data: nothing to decide"
    if not r.playbook:
        action = f" (its action: {r.action})" if r.action else ""
        return (f"{r.decision}, but no threshold of {name} that voted {r.decision} names a playbook "
                f"(thresholds[].playbook){action}")
    if r.recommended is None:
        return f"{r.decision}, but the current replica count is unknown: no count to hand over " \
               f"(set resources.{name}.current)"
    if r.recommended == r.current:
        # a count-changing playbook would be a no-op
        bound = {"max": f"already at max {r.max}", "min": f"already at min {r.min}"}.get(
            r.limited_by or "", f"held at {r.current} by {r.limited_by or 'the scaling rules'}")
        return f"{r.decision}, but the count cannot move: {bound}"
    return None


def declared_params(playbook: str) -> set[str]:
    """The parameters the playbook declares (a playbook rejects unknown ones)."""
    from opskit.playbooks.loader import load_playbook

    return set(load_playbook(playbook).playbook.params)


def local_service_url(source: str, location: str, *, spec_url: str, measured_target: str | None) -> str | None:
    """The base URL of the local service a local playbook would scale: the scraped service, or the one a
    recorded load test measured (when it outlives the run); None when the metrics are not from loopback."""
    from urllib.parse import urlsplit

    if source == "scrape":
        first = urlsplit((location or spec_url).split(",")[0])
    elif source == "results" and measured_target is not None:
        first = urlsplit(measured_target)
    else:
        return None
    if first.hostname in ("127.0.0.1", "localhost", "::1"):
        return f"{first.scheme}://{first.netloc}"
    return None


def hand_over(plan: Handoff, *, apply: bool, state_dir: Path, say: Callable[[str], None]) -> Handoff:
    """Plan (or apply) the playbook; its plan and progress go to `say`, one line at a time."""
    from opskit.errors import OpskitError

    book = plan.playbook
    if book is None:
        raise ValueError(f"{plan.resource}: no playbook to hand over to")
    try:
        declared = declared_params(book)
        params = {k: v for k, v in plan.params.items() if k in declared}
        plan = replace(plan, params=params)
        code = _run_playbook(book, params, apply=apply, state_dir=state_dir, say=say)
    except OpskitError as exc:
        note = "; ".join([exc.message, *exc.details])  # e.g. which parameter was wrong, not just how many
        return replace(plan, status="failed", exit_code=int(exc.exit_code), note=note)
    status: HandoffStatus
    if code == 0:
        status, note = "handed over", "applied" if apply else "planned (add --yes to apply)"
    elif code == 1:
        status, note = "refused", "the playbook's dry run, preconditions or verification said no (exit 1)"
    else:
        status, note = "failed", f"the playbook failed (exit {code})"
    return replace(plan, status=status, exit_code=code, note=note)


def _run_playbook(name: str, params: dict[str, object], *, apply: bool, state_dir: Path,
                  say: Callable[[str], None]) -> int:
    """The one call into the playbook hand-over: its plan, progress and closing lines go to `say`."""
    from opskit.playbooks.handoff import run_for_decision
    from opskit.playbooks.outcome import exit_code_for
    from opskit.playbooks.report import LineReporter

    result = run_for_decision(name, dict(params), apply=apply, state_dir=state_dir, reporter=LineReporter(say))
    for line in result.lines():
        say(line)
    return int(exit_code_for(result.status))
