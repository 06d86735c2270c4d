"""The alert receiver's core (pure): what to do with each alert of a notification, given the requests
made earlier and the clock. (The parameters come from the scaling core: opskit.scaling.act.params_at_level.)

Deduplication: one alert (fingerprint) starts at most one run while that run is pending approval,
approved, running, or ended less than the cooldown ago; the same holds for the playbook + resource it
targets (two alerts about the same resource, or a group holding both, make one run). The run lock still
applies when the run starts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from opskit.playbooks.alertmsg import Alert, Notification
from opskit.spec.schema import Threshold

ApproveMode = Literal["auto", "manual"]
IntentKind = Literal["run", "queue", "skip", "resolved", "ignore"]
ACTIVE = frozenset({"pending", "approved", "running"})


@dataclass(frozen=True)
class Tracked:
    """A request the receiver made earlier (opskit.playbooks.requests), as the core needs it."""

    run_id: str
    fingerprint: str
    playbook: str
    resource: str
    state: str  # pending | approved | running | finished | rejected
    updated: dt.datetime


@dataclass(frozen=True)
class Policy:
    approve: ApproveMode = "manual"
    cooldown_s: float = 300.0


@dataclass(frozen=True)
class Intent:
    kind: IntentKind  # run: start now (auto-approved); queue: wait for `playbook approve`
    alert: Alert
    why: str
    related: str | None = None  # the run id a skip or a resolution refers to


def decide(notification: Notification, tracked: Sequence[Tracked], *, now: dt.datetime, policy: Policy,
           auto_ok: Callable[[str], bool]) -> list[Intent]:
    """One intent per alert. `auto_ok(playbook)`: the playbook declares itself safe to apply unattended."""
    out: list[Intent] = []
    taken: dict[tuple[str, str], Alert] = {}  # playbook + resource already given a run by this notification
    for alert in notification.alerts:
        if alert.status == "resolved":
            earlier = [t for t in tracked if t.fingerprint == alert.fingerprint]
            last = max(earlier, key=lambda t: t.updated).run_id if earlier else None
            out.append(Intent("resolved", alert, "resolved", last))
            continue
        playbook, resource = alert.playbook, alert.labels.get("resource", "")
        if not playbook:
            out.append(Intent("ignore", alert, "no playbook label"))
            continue
        if not resource:
            out.append(Intent("ignore", alert, "no resource label: cannot tell what to scale"))
            continue
        if (playbook, resource) in taken:
            out.append(Intent("skip", alert, f"same group: alert {taken[playbook, resource].fingerprint} "
                                             f"already asks {playbook} for {resource}"))
            continue
        blocker = _blocker(alert, playbook, resource, tracked, now, policy.cooldown_s)
        if blocker is not None:
            out.append(blocker)
            continue
        taken[playbook, resource] = alert
        if policy.approve == "auto" and auto_ok(playbook):
            out.append(Intent("run", alert, "auto-approved: the playbook declares auto_apply"))
        elif policy.approve == "auto":
            out.append(Intent("queue", alert, f"{playbook} does not declare auto_apply: waits for approval"))
        else:
            out.append(Intent("queue", alert, "waits for approval (--approve manual)"))
    return out


def _blocker(alert: Alert, playbook: str, resource: str, tracked: Sequence[Tracked], now: dt.datetime,
             cooldown_s: float) -> Intent | None:
    same = [t for t in tracked if t.fingerprint == alert.fingerprint
            or (t.playbook == playbook and t.resource == resource)]
    for t in sorted(same, key=lambda t: t.updated, reverse=True):
        if t.state in ACTIVE:
            return Intent("skip", alert, f"run {t.run_id} for this alert or resource is {t.state}", t.run_id)
        left = cooldown_s - (now - t.updated).total_seconds()
        if left > 0:
            return Intent("skip", alert, f"cooldown: run {t.run_id} {t.state} at {t.updated:%H:%M:%SZ}; "
                                         f"{left:.0f}s left", t.run_id)
    return None


def find_row(thresholds: Sequence[Threshold], alert: Alert) -> Threshold | None:
    """The thresholds row the alert was rendered from (resource, metric and playbook labels)."""
    for row in thresholds:
        if (row.resource, row.metric, row.playbook) == (alert.labels.get("resource"), alert.labels.get("metric"),
                                                       alert.playbook):
            return row
    return None


def reason(alert: Alert) -> str:
    """The run's reason: the alert's name and summary (the playbook keeps it in the journal)."""
    return f"{alert.name}: {alert.summary}" if alert.summary else alert.name
