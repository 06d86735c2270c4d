"""One lock file per `lock:` key under STATE_DIR/locks/, holding who has it. It appears atomically with
its whole content: written and fsynced under a temporary name, then hard-linked to its real name
(link fails if the name exists, like O_EXCL), so no one ever reads a half-written lock. A holder on
this host whose process is gone (or whose pid now belongs to another process) is stale and the lock is
taken over; a holder on another host cannot be checked and is refused; a lock file that cannot be read
or is not a holder record was not written by opskit this way, so its holder is unknown: refused, with
how to clear it."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import RuntimeFailure


class LockHeld(RuntimeFailure):
    pass


class UnknownHolder(LockHeld):
    pass


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: the lock file's content."""

    token: str  # unique per acquisition: release and take-over check it
    run_id: str = "?"
    playbook: str = "?"
    key: str = ""
    pid: int | None = None
    pid_started: float | None = None  # the process's start time, to tell a reused pid
    host: str = "?"
    started: str = "?"

    @staticmethod
    def parse(text: str) -> Holder | None:
        """None when the text is not a holder record (no token)."""
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return None

        def s(name: str) -> str:
            value = data.get(name)
            return value if isinstance(value, str) else "?"

        pid, began = data.get("pid"), data.get("pid_started")
        return Holder(data["token"], s("run_id"), s("playbook"), s("key"),
                      pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                      float(began) if isinstance(began, int | float) and not isinstance(began, bool) else None,
                      s("host"), s("started"))


@dataclass
class Lock:
    path: Path
    holder: Holder
    taken_over: Holder | None = None  # the stale holder replaced, if any

    def release(self) -> None:
        try:
            current = Holder.parse(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if current is not None and current.token == self.holder.token:
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


def holder_alive(holder: Holder) -> bool | None:
    """True/False on this host; None when the holder is on another host (cannot tell)."""
    if holder.host != socket.gethostname():
        return None
    if holder.pid is None:
        return False
    started = _process_start(holder.pid)
    if started is None:
        return False
    # the pid may have been reused by an unrelated process since
    return not (holder.pid_started is not None and abs(started - holder.pid_started) > 1.0)


def acquire(state_dir: Path, key: str, *, run_id: str, playbook: str, started: str) -> Lock:
    locks = state_dir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = locks / f"{key}.lock"
    holder = Holder(os.urandom(8).hex(), run_id, playbook, key, os.getpid(), _process_start(os.getpid()),
                    socket.gethostname(), started)
    taken_over = None
    tmp = _write_temp(locks, key, holder)
    try:
        for _ in range(3):
            try:
                os.link(tmp, path)  # atomic, and fails if the lock exists: the content arrives with the name
            except FileExistsError:
                current = _read(path)
                if current is None:
                    continue  # released between our calls: try again
                alive = holder_alive(current)
                if alive is False:
                    taken_over = current
                    _remove_if_same(path, current)
                    continue
                raise LockHeld(
                    f"lock {key!r} is held by run {current.run_id} ({current.playbook}, "
                    f"pid {current.pid} on {current.host}, since {current.started})"
                    + ("" if alive else "; it is on another host, so opskit cannot tell whether it is stale: "
                       f"remove {path} once you are sure it is not running")) from None
            return Lock(path, holder, taken_over)
        raise LockHeld(f"lock {key!r}: could not take {path} (it keeps changing)")
    finally:
        tmp.unlink(missing_ok=True)


def _write_temp(locks: Path, key: str, holder: Holder) -> Path:
    tmp = locks / f".{key}.{holder.token}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(dataclasses.asdict(holder), fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)  # a disk that fills up mid-write leaves nothing behind
        raise
    return tmp


def _read(path: Path) -> Holder | None:
    """The holder; None when the lock is gone. A lock that cannot be read, is empty or is not a holder
    record is never taken for a dead holder: locks appear whole, so something else made it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        # not something a crash leaves: a person put it there; never delete a folder to take a lock
        raise RuntimeFailure(f"{path} is a folder, not a lock file; remove it if no run is using it") from None
    except (OSError, ValueError) as exc:
        raise UnknownHolder(_unknown(path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})")) from None
    holder = Holder.parse(text)
    if holder is None:
        raise UnknownHolder(_unknown(path, "is empty" if not text.strip() else "is not an opskit lock record"))
    return holder


def _unknown(path: Path, what: str) -> str:
    return (f"lock {path} {what}: held by an unknown holder; if no run is using it, "
            f"clear it with: rm {path}")


def _remove_if_same(path: Path, holder: Holder) -> None:
    """Take over a stale lock: move it aside (atomic, only one taker wins), then check that what was moved
    is the stale holder's and not a lock someone else took meanwhile (that one is put back)."""
    aside = path.with_name(f".{path.name}.{os.urandom(4).hex()}.stale")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    try:
        try:
            moved = _read(aside)
        except LockHeld:
            moved = None
        if moved is None or moved.token != holder.token:
            with contextlib.suppress(FileExistsError):
                os.link(aside, path)
    finally:
        aside.unlink(missing_ok=True)
