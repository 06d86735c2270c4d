"""The scale check as a use case: evaluate every threshold, keep the stabilization history, hand each new
decision to its playbook (--act), and again every `watch_s` seconds. It prints nothing: every round,
and every line a hand-over produces, goes to the Reporter the command supplies; the last round comes back."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

from opskit.metrics.base import MetricsSource
from opskit.scaling import collect
from opskit.scaling.act import Handoff, hand_over, handoffs
from opskit.scaling.collect import Readings
from opskit.scaling.model import Capacity, Evaluation, Recommendation
from opskit.spec.schema import Spec


@dataclass(frozen=True)
class Round:
    number: int  # 1 for the first evaluation
    readings: Readings
    evaluation: Evaluation
    previous: Evaluation | None
    handed: tuple[Handoff, ...] = ()


class Reporter(Protocol):
    def round(self, done: Round) -> None:
        """One evaluation, after its hand-overs."""
        ...

    def line(self, text: str) -> None:
        """A line of a playbook's plan or progress while it is handed over."""
        ...


@dataclass(frozen=True)
class Act:
    """--act: hand decisions over, planning (apply False) or applying them."""

    apply: bool
    state_dir: Path
    service_url: str | None = None  # the local service a local playbook scales


@dataclass
class _Acted:
    # resource -> (decision, replicas, round) already handed over: --watch hands one decision over once
    seen: dict[str, tuple[str | None, object, int]] = field(default_factory=dict)


def run(spec: Spec, source: MetricsSource, reporter: Reporter, *, history: Sequence[Recommendation],
        save_history: Callable[[list[Recommendation]], None] | None = None, act: Act | None = None,
        watch_s: float | None = None, count: int | None = None,
        sleep: Callable[[float], None] | None = None, clock: Callable[[], dt.datetime] | None = None,
        capacities: Mapping[str, Capacity] | None = None) -> Round:
    """Evaluate once, or every watch_s seconds until `count` rounds (or Ctrl-C). `save_history` keeps
    the recommendations for the next invocation (live sources); `sleep` waits between rounds; `clock`
    gives the time of each round (default: the source's recorded time, else the wall clock). Each
    round keeps the samples of the rounds before it, so watching a live source fills `for:` windows.
    `capacities`: per-instance req/s by resource, for the instance math from demand."""
    if watch_s is not None and sleep is None:
        raise ValueError("watching needs a sleep function")
    kept = list(history)
    acted = _Acted()
    previous: Evaluation | None = None
    seen: Readings | None = None
    n = 0
    while True:
        n += 1
        readings, ev = collect.check(spec, source, kept, now=clock() if clock is not None else None,
                                     earlier=seen, capacities=capacities)
        seen = readings
        kept = collect.prune([*kept, *ev.recommendations], ev.now, collect.keep_seconds(spec))
        if save_history is not None:
            save_history(kept)
        handed = _hand_over(ev, act, acted, reporter, n) if act is not None else ()
        done = Round(n, readings, ev, previous, handed)
        reporter.round(done)
        if watch_s is None or (count is not None and n >= count):
            return done
        previous = ev
        assert sleep is not None
        sleep(watch_s)


def _hand_over(ev: Evaluation, act: Act, acted: _Acted, reporter: Reporter, number: int) -> tuple[Handoff, ...]:
    done = []
    for plan in handoffs(ev, service_url=act.service_url):
        if plan.status != "planned":
            done.append(plan)  # not handed over, and the plan says why
            continue
        key = (plan.decision, plan.params.get("replicas"))
        if acted.seen.get(plan.resource, (None, None, 0))[:2] == key:
            earlier = acted.seen[plan.resource][2]
            done.append(replace(plan, status="not handed over", params={},
                                note=f"{plan.decision} to {key[1]} was handed over in round {earlier}"))
            continue
        acted.seen[plan.resource] = (*key, number)
        done.append(hand_over(plan, apply=act.apply, state_dir=act.state_dir, say=reporter.line))
    return tuple(done)
