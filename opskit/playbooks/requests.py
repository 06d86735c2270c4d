"""What the alert receiver asked for, kept on disk so `playbook serve`, `approve`, `reject` and `runs`
(separate processes) share it, and the receiver's token:

    STATE_DIR/receiver/requests/RUN_ID.json   one request: the alert, the playbook, its params and plan
                                              hash, its state, the approval (auto, or who and when)
    STATE_DIR/receiver/journal.jsonl          every notification's alerts and what was done (hash-chained)
    STATE_DIR/receiver/token                  the bearer token (0600), made by `serve` or `monitor up`
                                              (opskit.tokens)

A request's state moves pending -> approved -> running -> finished, or pending -> rejected; auto-approved
ones start at approved. Changes go through update(), under a per-request file lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from opskit.errors import RuntimeFailure, UsageError
from opskit.playbooks.alertmsg import Alert
from opskit.playbooks.receiver import Tracked

State = Literal["pending", "approved", "running", "finished", "rejected"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertRef(_Model):
    name: str
    fingerprint: str
    group_key: str
    summary: str
    starts_at: str
    generator_url: str = ""

    @classmethod
    def of(cls, alert: Alert, group_key: str) -> AlertRef:
        return cls(name=alert.name, fingerprint=alert.fingerprint, group_key=group_key, summary=alert.summary,
                   starts_at=alert.starts_at.isoformat(), generator_url=alert.generator_url)


class Approval(_Model):
    mode: Literal["auto", "manual"]
    by: str  # "opskit playbook serve --approve auto", or the user who approved or rejected
    at: str
    decision: Literal["approved", "rejected"] = "approved"


class Request(_Model):
    run_id: str
    playbook: str
    resource: str
    params: dict[str, str | int | float | bool]
    plan_hash: str
    alert: AlertRef
    state: State
    created: str
    updated: str
    approval: Approval | None = None
    outcome: str | None = None  # the run's status once finished
    message: str = ""

    def tracked(self) -> Tracked:
        return Tracked(self.run_id, self.alert.fingerprint, self.playbook, self.resource, self.state,
                       dt.datetime.fromisoformat(self.updated))


def root(state_dir: Path) -> Path:
    return state_dir / "receiver"


def _path(state_dir: Path, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise UsageError(f"{run_id!r} is not a run id (see `opskit playbook runs`)")
    return root(state_dir) / "requests" / f"{run_id}.json"


def save(state_dir: Path, req: Request) -> None:
    from opskit.atomicio import write_atomic

    write_atomic(_path(state_dir, req.run_id), req.model_dump_json(indent=2) + "\n")


def load(state_dir: Path, run_id: str) -> Request:
    path = _path(state_dir, run_id)
    try:
        return Request.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"no alert request {run_id!r} under {root(state_dir)}/requests "
                         "(see `opskit playbook runs`)") from None
    except (OSError, ValidationError) as exc:
        raise RuntimeFailure(f"{path}: unreadable request ({type(exc).__name__})") from None


def all_requests(state_dir: Path) -> list[Request]:
    """Every readable request, oldest first (an unreadable one is skipped: it blocks nothing)."""
    folder = root(state_dir) / "requests"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(Request.model_validate_json(path.read_text()))
        except (OSError, ValidationError):
            continue
    return sorted(out, key=lambda r: r.created)


@contextlib.contextmanager
def locked(state_dir: Path, run_id: str) -> Iterator[Request]:
    """The request, read under its lock: two `approve`s (or approve and reject) cannot both win."""
    path = _path(state_dir, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield load(state_dir, run_id)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def now_text(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat(timespec="seconds")
