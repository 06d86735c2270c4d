"""One daemon of a running stack at a time, for the failure scenarios: stop it, kill it, start it again on
its ports, and keep the state file true (a stopped part is not listed as running, a restarted one is
listed with its new pid and start time), so `stack status` and `stack down` stay right at every moment."""

from __future__ import annotations

import os
import signal
from dataclasses import replace
from pathlib import Path

from opskit import children
from opskit.errors import UsageError
from opskit.stack import config as cfg
from opskit.stack import daemons, runtime


def _state(state_dir: Path) -> cfg.StackState:
    state = runtime.read_state(runtime.home(state_dir))
    if state is None or not state.running:
        raise UsageError(f"no stack is running in {runtime.home(state_dir)}: run `opskit stack up` first")
    return state


def _record(state_dir: Path, name: str) -> cfg.Running | None:
    return next((r for r in _state(state_dir).running if r.name == name), None)


def _save(state_dir: Path, state: cfg.StackState) -> None:
    daemons.write_private(runtime.home(state_dir) / "state.json", state.to_json())


def _forget(state_dir: Path, name: str) -> None:
    state = _state(state_dir)
    _save(state_dir, replace(state, running=[r for r in state.running if r.name != name]))


def pid(state_dir: Path, name: str) -> int | None:
    """The pid of the recorded part while it is the process `up` started, else None."""
    r = _record(state_dir, name)
    return r.pid if r is not None and daemons.alive(r) else None


def stop(state_dir: Path, name: str) -> bool:
    """Stop one part the clean way (PostgreSQL: fast shutdown); False when it was not running."""
    r = _record(state_dir, name)
    if r is None:
        return False
    stopped = daemons.stop_part(r)
    _forget(state_dir, name)
    return stopped


def kill(state_dir: Path, name: str) -> bool:
    """kill -9 one part (a crash, not a shutdown); False when it was not running."""
    r = _record(state_dir, name)
    if r is None:
        return False
    proc = children.Identity(r.pid, r.create_time).process(daemons.runs(r.binary))
    if proc is not None:
        os.kill(r.pid, signal.SIGKILL)
        children.stop_identity(children.Identity(r.pid, r.create_time), matches=daemons.runs(r.binary),
                               timeout_s=5)  # waits until it is gone
    _forget(state_dir, name)
    return proc is not None


def start(state_dir: Path, name: str) -> int:
    """Start one part again on its recorded port (no-op when it runs); returns its pid."""
    if name not in cfg.COMPONENTS:
        raise UsageError(f"unknown stack part {name!r} (one of {', '.join(cfg.COMPONENTS)})")
    state = _state(state_dir)
    current = next((r for r in state.running if r.name == name), None)
    if current is not None and daemons.alive(current):
        return current.pid
    root = runtime.home(state_dir)
    bins = runtime._binaries()
    user = runtime._service_user()
    password = (root / "password").read_text().strip()
    child = daemons.start_part(name, root, bins, state.ports, password, user)
    binary = bins[runtime._binary_key(name)]
    fresh = cfg.Running(name, child.pid, child.identity.create_time, binary, state.ports[name])
    state = _state(state_dir)  # read again: only this part's line changes
    others = [r for r in state.running if r.name != name]
    order = {n: i for i, n in enumerate(cfg.COMPONENTS)}
    _save(state_dir, replace(state, running=sorted([*others, fresh], key=lambda r: order[r.name])))
    return child.pid
