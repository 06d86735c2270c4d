"""The receiver's I/O around its pure core (opskit.playbooks.receiver): record what each alert asked for,
start auto-approved runs on their own threads, and approve or reject queued ones (`playbook approve`,
`reject`, from another process). Prints nothing: lines go to the reporter the command passes in."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from opskit.errors import OpskitError, Refused, UsageError
from opskit.playbooks import requests as store
from opskit.playbooks.alertmsg import Notification
from opskit.playbooks.outcome import RunOutcome
from opskit.playbooks.providers.local import is_loopback_url
from opskit.playbooks.receiver import Intent, Policy, decide, find_row, reason
from opskit.playbooks.report import Reporter

if TYPE_CHECKING:
    from opskit.spec import Spec
    from opskit.spec.schema import Resource, Threshold

Clock = Callable[[], dt.datetime]


class ParamsFor(Protocol):
    """A thresholds row's hand-over parameters at its scale-up level: the command passes the scaling core's
    opskit.scaling.act.params_at_level (the receiver does not import the scaling package: it imports this one)."""

    def __call__(self, row: Threshold, *, current: int | None, resources: Mapping[str, Resource],
                 service_url: str | None, now: dt.datetime) -> dict[str, object]: ...


AUTO_BY = "opskit playbook serve --approve auto"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Receiver:
    """What `playbook serve` does with each notification (one at a time, on its dispatcher thread)."""

    def __init__(self, state_dir: Path, *, spec: Spec | None, policy: Policy, service_url: str | None,
                 params_for: ParamsFor, reporter: Callable[[str], Reporter], say: Callable[[str], None],
                 clock: Clock = _utcnow) -> None:
        from opskit.playbooks.journal import Journal, Masker

        self.state_dir, self.spec, self.policy, self.service_url = state_dir, spec, policy, service_url
        self.params_for, self.reporter, self.say, self.clock = params_for, reporter, say, clock
        self.journal = Journal(store.root(state_dir) / "journal.jsonl", Masker(), clock)
        self.stopping = threading.Event()  # set on shutdown: running playbooks stop at a safe point
        self.threads: list[threading.Thread] = []

    def handle(self, n: Notification) -> list[Intent]:
        now = self.clock()
        tracked = [r.tracked() for r in store.all_requests(self.state_dir)]
        intents = decide(n, tracked, now=now, policy=self.policy, auto_ok=auto_apply_declared)
        for intent in intents:
            try:
                self._act(n, intent, now)
            except OpskitError as exc:  # this alert cannot be acted on; the others still are
                self._note(n, intent, "error", "; ".join([exc.message, *exc.details]))
        return intents

    def _act(self, n: Notification, intent: Intent, now: dt.datetime) -> None:
        if intent.kind not in ("run", "queue"):
            self._note(n, intent, intent.kind, intent.why, intent.related)
            return
        alert = intent.alert
        playbook = alert.playbook
        assert playbook is not None
        row = find_row(self.spec.thresholds, alert) if self.spec else None
        if row is None:
            raise UsageError(f"no thresholds row in the spec for resource {alert.labels.get('resource')!r}, "
                             f"metric {alert.labels.get('metric')!r}, playbook {playbook!r} (start serve with "
                             "the --spec the rules were rendered from)")
        resource = row.resource
        current = current_count(resource, self.spec, self.service_url)
        params = self.params_for(row, current=current, resources=self.spec.resources if self.spec else {},
                                 service_url=self.service_url, now=now)
        if not params:
            self._note(n, intent, "skip", f"{resource} cannot move from {current} replicas (unknown, or at its "
                                          "min/max): nothing to run")
            return
        req = self._request(n, intent, playbook, resource, {**params, "reason": reason(alert)}, now)
        store.save(self.state_dir, req)
        verb = "started" if intent.kind == "run" else "queued: approve with `opskit playbook approve " \
                                                     f"{req.run_id}`"
        self._note(n, intent, intent.kind, intent.why, req.run_id, params=req.params, plan_hash=req.plan_hash)
        self.say(f"{alert.name} ({alert.fingerprint}): {playbook} {verb}")
        if intent.kind == "run":
            t = threading.Thread(target=self._run, args=(req.run_id,), name=f"run-{req.run_id}")
            self.threads.append(t)
            t.start()

    def _request(self, n: Notification, intent: Intent, playbook: str, resource: str,
                 params: dict[str, object], now: dt.datetime) -> store.Request:
        from opskit.playbooks import engine
        from opskit.playbooks.executor import new_run_id
        from opskit.playbooks.loader import load_playbook

        declared = set(load_playbook(playbook).playbook.params)
        given = {k: v for k, v in params.items() if k in declared}
        prep = engine.prepare(playbook, given)  # bad params are refused now, not at approval time
        stamp = store.now_text(now)
        approval = store.Approval(mode="auto", by=AUTO_BY, at=stamp) if intent.kind == "run" else None
        return store.Request(run_id=new_run_id(prep.plan.playbook, now), playbook=playbook, resource=resource,
                             params={k: v for k, v in prep.values.values.items()  # secrets come from env
                                     if k not in prep.values.secret_names and v is not None},
                             plan_hash=prep.plan.hash,
                             alert=store.AlertRef.of(intent.alert, n.group_key),
                             state="approved" if approval else "pending", created=stamp, updated=stamp,
                             approval=approval)

    def _run(self, run_id: str) -> None:
        try:
            outcome = run_request(self.state_dir, run_id, spec=self.spec, reporter=self.reporter(run_id),
                                  interrupt=self.stopping, clock=self.clock)
            self.say(f"run {run_id}: {outcome.status}: {outcome.message}")
        except OpskitError as exc:
            self.say(f"run {run_id}: not run: {exc.message}")
        except Exception as exc:  # a broken run must not take the receiver down with it
            self.say(f"run {run_id}: crashed: {type(exc).__name__}: {exc}")

    def _note(self, n: Notification, intent: Intent, action: str, why: str, run_id: str | None = None,
              **extra: object) -> None:
        a = intent.alert
        self.journal.write("alert", action=action, why=why, alertname=a.name, fingerprint=a.fingerprint,
                           status=a.status, group_key=n.group_key, receiver=n.receiver,
                           playbook=a.playbook, run_id=run_id, starts_at=a.starts_at.isoformat(),
                           ends_at=a.ends_at.isoformat() if a.ends_at else None, **extra)
        if action != "ignore":
            self.say(f"{a.name} ({a.fingerprint}) {a.status}: {action}: {why}")

    def close(self, timeout_s: float = 120.0) -> None:
        """Ask running playbooks to stop at their next safe point (compensating) and wait for them."""
        self.stopping.set()
        for t in self.threads:
            t.join(timeout_s)


def auto_apply_declared(playbook: str) -> bool:
    from opskit.errors import ConfigError
    from opskit.playbooks.loader import load_playbook

    try:
        return load_playbook(playbook).playbook.metadata.auto_apply
    except ConfigError:
        return False  # a playbook that does not load is never applied unattended (its request says why)


def local_service(given: str | None, spec: Spec | None) -> str | None:
    """The asset service local playbooks scale: --service, else the spec's service.url, on loopback only
    (a remote --service is refused, a remote service.url left out)."""
    service = given or (spec.service.url if spec is not None else None)
    if service is not None and not is_loopback_url(service):
        if given:
            raise UsageError(f"--service: local playbooks scale a loopback service only, got {given!r}")
        return None
    return service.rstrip("/") if service else None


def current_count(resource: str, spec: Spec | None, service_url: str | None) -> int | None:
    """Replicas now: the local service's worker count from its /health when it is what local playbooks
    scale, else the spec's resources.<name>.current."""
    if service_url:
        import httpx

        try:
            workers = httpx.get(f"{service_url}/health", timeout=5, trust_env=False).json().get("workers")
            if isinstance(workers, int):
                return workers
        except (httpx.HTTPError, ValueError, AttributeError):
            pass
    res = spec.resources.get(resource) if spec else None
    return res.current if res else None


# ---- approval and running (serve's threads, or `playbook approve` in its own process) --------------

def approve(state_dir: Path, run_id: str, *, by: str, now: dt.datetime) -> store.Request:
    return _decide(state_dir, run_id, by=by, now=now, decision="approved")


def reject(state_dir: Path, run_id: str, *, by: str, now: dt.datetime) -> store.Request:
    return _decide(state_dir, run_id, by=by, now=now, decision="rejected")


def _decide(state_dir: Path, run_id: str, *, by: str, now: dt.datetime, decision: str) -> store.Request:
    with store.locked(state_dir, run_id) as req:
        if req.state != "pending":
            who = f" by {req.approval.by} at {req.approval.at}" if req.approval else ""
            raise UsageError(f"request {run_id} is {req.state}{who}, not pending")
        stamp = store.now_text(now)
        approval = store.Approval(mode="manual", by=by, at=stamp,
                                  decision="approved" if decision == "approved" else "rejected")
        updated = req.model_copy(update={"state": decision, "approval": approval, "updated": stamp})
        store.save(state_dir, updated)
    return updated


def run_request(state_dir: Path, run_id: str, *, spec: Spec | None, reporter: Reporter,
                interrupt: threading.Event | None = None, clock: Clock = _utcnow) -> RunOutcome:
    """Run an approved request: the same plan that was queued (refused if the playbook changed since),
    dry runs, then the run, with the alert and the approval in its journal's run_start."""
    from opskit.playbooks import engine
    from opskit.playbooks.lock import LockHeld

    with store.locked(state_dir, run_id) as req:
        if req.state != "approved":
            raise UsageError(f"request {run_id} is {req.state}, not approved")
        store.save(state_dir, req.model_copy(update={"state": "running", "updated": store.now_text(clock())}))
    outcome: RunOutcome | None = None
    status, message = "error", "did not start"
    try:
        prep = engine.prepare(req.playbook, req.params)
        if prep.plan.hash != req.plan_hash:
            raise Refused(f"the plan is now {prep.plan.hash}, not the queued {req.plan_hash}: the playbook "
                          "changed since the alert; nothing was run")
        dry = engine.dry_runs(prep)
        reporter.plan(prep.plan, dry)
        failed = [sid for sid, d in dry.items() if d.ran and not d.ok]
        if failed:
            raise Refused(f"dry run failed for step(s) {', '.join(failed)}; nothing was run")
        rt = engine.runtime(state_dir, spec, reporter)
        rt.clock = clock
        rt.trigger = {"source": "alertmanager", "alert": req.alert.model_dump(),
                      "approval": req.approval.model_dump() if req.approval else None}
        if interrupt is not None:
            rt.interrupt = interrupt
        outcome = engine.apply(prep, rt, run_id)
        status, message = outcome.status, outcome.message
    except LockHeld as exc:
        status, message = "locked", exc.message
        raise
    except OpskitError as exc:
        status, message = ("refused" if isinstance(exc, Refused) else "error"), exc.message
        raise
    finally:
        with store.locked(state_dir, run_id) as now_req:
            store.save(state_dir, now_req.model_copy(update={
                "state": "finished", "outcome": status, "message": message, "updated": store.now_text(clock())}))
    assert outcome is not None  # every path that leaves it unset raised
    return outcome


def user() -> str:
    return os.environ.get("USER") or os.environ.get("LOGNAME") or f"uid {os.getuid()}"
