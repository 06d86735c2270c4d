"""stack up / down / status: start the daemons, find them again, stop exactly them.

Everything lives under <state-dir>/stack/ (see docs/guide/stack.md). When opskit runs as root the
daemons run as the unprivileged system user `opskit` (created if missing): PostgreSQL refuses root, and
nothing here needs it."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from opskit.errors import ConfigError, RuntimeFailure, UsageError
from opskit.stack import config as cfg
from opskit.stack import daemons

SERVICE_USER = "opskit"
SETUP_HINT = "run scripts/setup.sh as root (apt-get install --no-install-recommends {pkg})"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PartStatus:
    name: str
    port: int
    pid: int | None
    running: bool


@dataclass(frozen=True)
class StackStatus:
    running: bool  # every part is up
    started: bool  # this call started it (up only)
    state_dir: str
    endpoints: cfg.Endpoints | None
    parts: list[PartStatus]


def home(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "stack"


def read_state(root: Path) -> cfg.StackState | None:
    path = root / "state.json"
    try:
        return cfg.StackState.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ConfigError(f"{path} is damaged ({type(exc).__name__}: {exc}): check `ps` for daemons started "
                          f"from {root}, stop them, then remove the file, or run `opskit stack up --fresh` "
                          "(deletes the stack's data)") from None


# ---- status and down ---------------------------------------------------------------------------------

def status(state_dir: Path) -> StackStatus:
    root = home(state_dir)
    state = read_state(root)
    if state is None:
        return StackStatus(False, False, str(root), None, [])
    by_name = {r.name: r for r in state.running}
    parts = [PartStatus(name, state.ports.get(name, 0), by_name[name].pid if name in by_name else None,
                        name in by_name and daemons.alive(by_name[name])) for name in cfg.COMPONENTS]
    running = bool(state.running) and all(p.running for p in parts)
    return StackStatus(running, False, str(root), cfg.endpoints(state.ports, root / "password"), parts)


def scrape_jobs(state_dir: Path) -> dict[str, str]:
    """Prometheus job name -> exporter URL of a running stack (nothing when it is not fully up), for
    `monitor up`. The job names are the ones the default database and Redis queries read."""
    try:
        info = status(state_dir)
    except ConfigError:
        return {}
    if not info.running or info.endpoints is None:
        return {}
    return dict(info.endpoints.exporters)


def down(state_dir: Path) -> list[PartStatus]:
    """Stop what `up` recorded, exporters first; returns what was stopped (running=False: already gone)."""
    root = home(state_dir)
    state = read_state(root)
    if state is None:
        return []
    stopped = [PartStatus(r.name, r.port, r.pid, daemons.stop_part(r)) for r in reversed(state.running)]
    # the ports stay: the next `up` reuses them when free, so URLs survive a restart
    daemons.write_private(root / "state.json", replace(state, running=[], started_at=None).to_json())
    return stopped


# ---- up ------------------------------------------------------------------------------------------------

def up(state_dir: Path, *, ports: Mapping[str, int] | None = None, fresh: bool = False,
       progress: Progress = lambda _: None) -> StackStatus:
    root = home(state_dir)
    wanted = dict(ports or {})
    if fresh:
        if _state_readable(root):
            down(state_dir)
        shutil.rmtree(root, ignore_errors=True)
    state = read_state(root)
    if state is not None and state.running:
        current = status(state_dir)
        if current.running:
            moved = {k: v for k, v in wanted.items() if state.ports.get(k) != v}
            if moved:
                name = next(iter(moved))
                raise UsageError(f"the stack is running with {name} on port {state.ports.get(name)}: run "
                                 "`opskit stack down` first to change its ports")
            return current
        down(state_dir)  # part of it died: stop the rest and start all again
    bins = _binaries()
    user = _service_user()
    _check_data(root)
    chosen = _choose_ports(wanted, state.ports if state else {})
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o711)  # the service user must reach its directories; only root lists this one
    _check_reachable(root, user)
    password = _password(root)
    record = cfg.StackState(ports=chosen, user=user[0])
    started: list[tuple[daemons.Child, str]] = []
    try:
        for name in cfg.COMPONENTS:
            progress(f"starting {name} on 127.0.0.1:{chosen[name]}")
            child = daemons.start_part(name, root, bins, chosen, password, user)
            started.append((child, bins[_binary_key(name)]))
        record = replace(record, started_at=time.time(), running=[
            cfg.Running(name, c.pid, c.identity.create_time, binary, chosen[name])
            for name, (c, binary) in zip(cfg.COMPONENTS, started, strict=True)])
    except BaseException:
        for child, _ in reversed(started):
            child.stop()
        if (root / "state.json").exists() or state is not None:
            daemons.write_private(root / "state.json", record.to_json())
        raise
    daemons.write_private(root / "state.json", record.to_json())
    result = status(state_dir)
    return replace(result, started=True)


def _state_readable(root: Path) -> bool:
    try:
        read_state(root)
    except ConfigError:
        return False
    return True


def _binary_key(name: str) -> str:
    return {"postgresql": "postgres", "redis": "redis-server"}.get(name) or cfg.EXPORTER_BINARIES[name]


def _binaries() -> dict[str, str]:
    bindir = os.environ.get(cfg.PG_BINDIR_ENV) or cfg.PG_BINDIR
    found: dict[str, str] = {}
    for name in ("postgres", "initdb"):
        path = Path(bindir) / name
        if not os.access(path, os.X_OK):
            raise RuntimeFailure(f"PostgreSQL {cfg.PG_MAJOR} not found ({path} missing): "
                                 + SETUP_HINT.format(pkg=cfg.PACKAGES[name]))
        found[name] = str(path)
    for name in ("redis-server", *cfg.EXPORTER_BINARIES.values()):
        which = shutil.which(name)
        if which is None:
            raise RuntimeFailure(f"{name} not found on PATH: " + SETUP_HINT.format(pkg=cfg.PACKAGES[name]))
        found[name] = which
    return found


def _service_user() -> daemons.User:
    """(name, uid, gid) the daemons run as: `opskit` when we are root (created if missing), else ourselves."""
    import pwd

    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_uid, me.pw_gid
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        from opskit.proc import run_argv

        done = run_argv(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                         "--shell", "/usr/sbin/nologin", "--user-group", SERVICE_USER], timeout=30)
        if not done.ok:
            raise RuntimeFailure(f"cannot create the system user {SERVICE_USER!r}: {done.output}") from None
        entry = pwd.getpwnam(SERVICE_USER)
    return entry.pw_name, entry.pw_uid, entry.pw_gid


def _check_data(root: Path) -> None:
    data = root / "postgres" / "data"
    if data.exists() and any(data.iterdir()):
        version = data / "PG_VERSION"
        text = version.read_text().strip() if version.is_file() else None
        if text != cfg.PG_MAJOR:
            what = "has no PG_VERSION" if text is None else f"is PostgreSQL {text}"
            raise ConfigError(f"{data} {what}, not a PostgreSQL {cfg.PG_MAJOR} data directory: run "
                              "`opskit stack up --fresh` to recreate it (deletes the stack's data)")
        if not (root / "password").is_file():
            raise ConfigError(f"{root / 'password'} is missing but the database exists: restore it, or run "
                              "`opskit stack up --fresh` (deletes the stack's data)")


def _check_reachable(root: Path, user: daemons.User) -> None:
    if os.geteuid() != 0:
        return
    from opskit.proc import run_argv

    done = run_argv(daemons.as_user(user, ["test", "-x", str(root)]), timeout=10)
    if not done.ok:
        raise UsageError(f"the {user[0]!r} user cannot reach {root} (a parent directory is not searchable by "
                         "others): choose a --state-dir under a searchable path, or `chmod o+x` its parents")


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # as the daemons bind: a port left in TIME_WAIT by the last run is free to them
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port(taken: set[int]) -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in taken:
            return port


def _choose_ports(wanted: Mapping[str, int], previous: Mapping[str, int]) -> dict[str, int]:
    """Configured ports must be free (else exit 2); the last run's are reused when free; the rest are free."""
    chosen: dict[str, int] = {}
    for name, port in wanted.items():
        if not port_free(port):
            raise UsageError(f"127.0.0.1:{port} ({name}) is in use: free it, or choose another with "
                             f"--port {name}=PORT")
        chosen[name] = port
    for name in cfg.COMPONENTS:
        if name in chosen:
            continue
        old = previous.get(name)
        if old and old not in chosen.values() and port_free(old):
            chosen[name] = old
        else:
            chosen[name] = _free_port(set(chosen.values()))
    return chosen


def _password(root: Path) -> str:
    path = root / "password"
    if path.is_file():
        return path.read_text().strip()
    password = secrets.token_urlsafe(24)  # URL-safe: no quoting in a DSN or redis.conf
    daemons.write_private(path, password + "\n")
    return password

