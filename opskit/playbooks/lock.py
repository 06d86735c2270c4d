"""One lock file per `lock:` key under STATE_DIR/locks/. Created with O_EXCL (atomic), holding who
has it. A holder on this host whose process is gone (or whose pid now belongs to another process)
is stale and the lock is taken over; a holder on another host cannot be checked and is refused."""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import RuntimeFailure


class LockHeld(RuntimeFailure):
    pass


@dataclass
class Lock:
    path: Path
    holder: dict[str, Any]
    taken_over: dict[str, Any] | None = None  # the stale holder replaced, if any

    def release(self) -> None:
        try:
            current = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        if current.get("token") == self.holder["token"]:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _process_start(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def holder_alive(holder: dict[str, Any]) -> bool | None:
    """True/False on this host; None when the holder is on another host (cannot tell)."""
    if holder.get("host") != socket.gethostname():
        return None
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return False
    started = _process_start(pid)
    if started is None:
        return False
    recorded = holder.get("pid_started")
    # the pid may have been reused by an unrelated process since
    return not (isinstance(recorded, int | float) and abs(started - recorded) > 1.0)


def acquire(state_dir: Path, key: str, *, run_id: str, playbook: str, started: str) -> Lock:
    locks = state_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{key}.lock"
    holder = {"key": key, "run_id": run_id, "playbook": playbook, "pid": os.getpid(),
              "pid_started": _process_start(os.getpid()), "host": socket.gethostname(),
              "started": started, "token": os.urandom(8).hex()}
    taken_over = None
    for _ in range(3):
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            current = _read(path)
            if current is None:
                continue  # removed or half-written between our calls: try again
            alive = holder_alive(current)
            if alive is False:
                taken_over = current
                _remove_if_same(path, current)
                continue
            raise LockHeld(
                f"lock {key!r} is held by run {current.get('run_id')} ({current.get('playbook')}, "
                f"pid {current.get('pid')} on {current.get('host')}, since {current.get('started')})"
                + ("" if alive else "; it is on another host, so opskit cannot tell whether it is stale: "
                   f"remove {path} once you are sure it is not running")) from None
        with os.fdopen(fd, "w") as fh:
            json.dump(holder, fh)
            fh.flush()
            os.fsync(fh.fileno())
        return Lock(path, holder, taken_over)
    raise LockHeld(f"lock {key!r}: could not take {path} (it keeps changing)")


def _read(path: Path) -> dict[str, Any] | None:
    # a lock file that is not a JSON object was left by a crash mid-write: treat as stale, dead holder
    corrupt = {"run_id": "?", "host": socket.gethostname(), "pid": -1, "token": "corrupt"}
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        # not something a crash leaves: a person put it there; never delete a folder to take a lock
        raise RuntimeFailure(f"{path} is a folder, not a lock file; remove it if no run is using it") from None
    except (OSError, ValueError):
        return corrupt
    return data if isinstance(data, dict) else corrupt


def _remove_if_same(path: Path, holder: dict[str, Any]) -> None:
    again = _read(path)
    if again is not None and again.get("token") == holder.get("token"):
        path.unlink(missing_ok=True)
