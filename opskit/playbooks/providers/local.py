"""`local.scale`: change the worker count of the reference asset service running on this machine,
for real, through its supervisor (SIGTTIN adds a worker, SIGTTOU removes one, as gunicorn does).

One signal at a time, each confirmed on /health before the next: ordinary signals do not queue, so
three SIGTTINs sent back to back can arrive as one."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from opskit.playbooks.providers.base import Action, Arg, ArgError, Context, DryRun, Snapshot, StepResult, check_args
from opskit.playbooks.refs import Deferred

POLL_S = 0.05
LOOPBACK_HOSTS = ("localhost", "::1")


def is_loopback_url(url: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


class LocalScale(Action):
    name = "local.scale"
    ARGS = {
        "target": Arg("str", required=True, pattern=r"https?://[^\s/]+/?", help="the service's base URL"),
        "workers": Arg("int", required=True, minimum=1),
    }

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        out = check_args(self.ARGS, args)
        if not isinstance(out["target"], Deferred):
            if not is_loopback_url(out["target"]):
                # signals reach processes on this machine only; a remote URL would scale nothing
                raise ArgError(("target",), f"{out['target']!r}: the local provider scales a service on "
                                            "this machine; use a loopback URL (127.0.0.1 or localhost)")
            out["target"] = out["target"].rstrip("/")
        if isinstance(out["workers"], int) and out["workers"] > 64:
            raise ArgError(("workers",), f"must be at most 64, got {out['workers']}")
        return out

    def describe(self, args: Mapping[str, Any]) -> str:
        return (f"set the worker count of {args['target']} to {args['workers']} "
                f"(SIGTTIN/SIGTTOU to its supervisor, one at a time, until {args['target']}/health "
                f"reports {args['workers']})")

    def dry_run(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> DryRun:
        health, err = read_health(str(args["target"]), min(timeout, 5.0))
        command = f"GET {args['target']}/health"
        if health is None:
            return DryRun(True, False, command, err or "no answer")
        now, pid = health.workers, health.supervisor_pid
        want = args["workers"]
        if isinstance(want, Deferred):
            return DryRun(True, True, command, f"{now} worker(s) now; target known once earlier steps run")
        if now == want:
            return DryRun(True, True, command, f"{now} worker(s) now: nothing to change")
        sig = "SIGTTIN" if want > now else "SIGTTOU"
        return DryRun(True, True, command,
                      f"{now} worker(s) now -> {want}: {abs(want - now)} x {sig} to supervisor pid {pid}")

    def snapshot(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        health, err = read_health(str(args["target"]), min(timeout, 5.0))
        if health is None:
            return Snapshot(error=err or "no answer")
        return Snapshot({"previous_workers": health.workers, "supervisor_pid": health.supervisor_pid})

    def run(self, args: Mapping[str, Any], ctx: Context, timeout: float, before: Mapping[str, object]) -> StepResult:
        target, want = str(args["target"]), int(args["workers"])
        deadline = ctx.monotonic() + timeout
        command = f"local.scale {target} workers={want}"
        health, err = read_health(target, min(timeout, 5.0))
        if health is None:
            return StepResult(False, err or "no answer", command, changed=False)  # no signal was sent
        previous, pid = health.workers, health.supervisor_pid
        captures: dict[str, object] = {**before, "supervisor_pid": pid}
        current = previous
        sent = 0
        while current != want:
            sig = signal.SIGTTIN if current < want else signal.SIGTTOU
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return StepResult(False, f"supervisor pid {pid} is not running", command, captures,
                                  changed=False if sent == 0 else None)
            except PermissionError:
                return StepResult(False, f"not allowed to signal supervisor pid {pid}", command, captures,
                                  changed=False if sent == 0 else None)
            sent += 1
            was = current
            while current == was:
                if ctx.cancelled():
                    captures["workers"] = current
                    return StepResult(False, f"stopped by a second interrupt at {current} worker(s)", command,
                                      captures)
                if ctx.monotonic() >= deadline:
                    captures["workers"] = current
                    return StepResult(False, f"timed out after {timeout:g}s: {current} worker(s), wanted {want} "
                                      f"({sent} signal(s) sent)", command, captures, timed_out=True)
                time.sleep(POLL_S)
                health, err = read_health(target, 2.0)
                if health is not None:
                    current = health.workers
        captures["workers"] = current
        what = "no change" if sent == 0 else f"{previous} -> {current} worker(s), {sent} signal(s)"
        return StepResult(True, what, command, captures)


@dataclass(frozen=True)
class Health:
    workers: int
    supervisor_pid: int
    status: object = None


def read_health(target: str, timeout: float) -> tuple[Health | None, str | None]:
    """/health of the service: the worker count and the supervisor's pid, or why not."""
    import httpx

    url = f"{target.rstrip('/')}/health"
    try:
        resp = httpx.get(url, timeout=timeout, trust_env=False)
    except httpx.HTTPError as exc:
        return None, f"GET {url}: {type(exc).__name__}: {exc}"
    try:
        body = resp.json()
    except ValueError:
        return None, f"GET {url}: HTTP {resp.status_code}, not JSON"
    workers, pid = body.get("workers") if isinstance(body, dict) else None, None
    if isinstance(body, dict):
        pid = body.get("supervisor_pid")
    if not isinstance(workers, int) or not isinstance(pid, int) or pid <= 1:
        return None, (f"GET {url}: the service does not report 'workers' and 'supervisor_pid' "
                      "(is it running under its supervisor?)")
    return Health(workers, pid, body.get("status")), None
