"""stack up / down / status: start the daemons, find them again, stop exactly them.

Everything lives under <state-dir>/stack/ (see docs/guide/stack.md). When opskit runs as root the
daemons run as the unprivileged system user `opskit` (created if missing): PostgreSQL refuses root, and
nothing here needs it."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from opskit.errors import ConfigError, RuntimeFailure, UsageError
from opskit.stack import config as cfg
from opskit.stack import lifecycle as children

if TYPE_CHECKING:
    import psutil

SERVICE_USER = "opskit"
READY_TIMEOUT_S = 30.0
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


def _write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write a file only its owner can read (state, passwords), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def _runs(binary: str) -> Callable[[psutil.Process], bool]:
    """Matches a process running `binary`; redis-server rewrites its title ("redis-server 127.0.0.1:6379")."""
    def matches(proc: psutil.Process) -> bool:
        argv = proc.cmdline()
        return bool(argv) and bool(argv[0].split()) and argv[0].split()[0] == binary
    return matches


def _alive(r: cfg.Running) -> bool:
    return children.Identity(r.pid, r.create_time).alive(_runs(r.binary))


# ---- status and down ---------------------------------------------------------------------------------

def status(state_dir: Path) -> StackStatus:
    root = home(state_dir)
    state = read_state(root)
    if state is None:
        return StackStatus(False, False, str(root), None, [])
    by_name = {r.name: r for r in state.running}
    parts = [PartStatus(name, state.ports.get(name, 0), by_name[name].pid if name in by_name else None,
                        name in by_name and _alive(by_name[name])) for name in cfg.COMPONENTS]
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


def stop_part(r: cfg.Running) -> bool:
    """Stop one recorded daemon if it is still the one `up` started; False when it was gone already."""
    ident = children.Identity(r.pid, r.create_time)
    proc = ident.process(_runs(r.binary))
    if proc is not None and r.name == "postgresql":
        # SIGINT is PostgreSQL's fast shutdown: it ends client sessions (a service's pool) and stops
        # cleanly; SIGTERM would wait for every client to disconnect
        with contextlib.suppress(Exception):
            proc.send_signal(signal.SIGINT)
    return children.stop_identity(ident, matches=_runs(r.binary)) or proc is not None


def down(state_dir: Path) -> list[PartStatus]:
    """Stop what `up` recorded, exporters first; returns what was stopped (running=False: already gone)."""
    root = home(state_dir)
    state = read_state(root)
    if state is None:
        return []
    stopped = [PartStatus(r.name, r.port, r.pid, stop_part(r)) for r in reversed(state.running)]
    # the ports stay: the next `up` reuses them when free, so URLs survive a restart
    _write_private(root / "state.json", replace(state, running=[], started_at=None).to_json())
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
    started: list[tuple[children.Child, str]] = []
    try:
        for name in cfg.COMPONENTS:
            progress(f"starting {name} on 127.0.0.1:{chosen[name]}")
            child = _start(name, root, bins, chosen, password, user)
            started.append((child, bins[_binary_key(name)]))
        record = replace(record, started_at=time.time(), running=[
            cfg.Running(name, c.pid, c.identity.create_time, binary, chosen[name])
            for name, (c, binary) in zip(cfg.COMPONENTS, started, strict=True)])
    except BaseException:
        for child, _ in reversed(started):
            child.stop()
        if (root / "state.json").exists() or state is not None:
            _write_private(root / "state.json", record.to_json())
        raise
    _write_private(root / "state.json", record.to_json())
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


def _service_user() -> tuple[str, int, int]:
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


def _as_user(user: tuple[str, int, int], argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    # setpriv execs the daemon: the pid we record is the daemon's own
    return ["setpriv", f"--reuid={user[1]}", f"--regid={user[2]}", "--clear-groups", "--", *argv]


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


def _check_reachable(root: Path, user: tuple[str, int, int]) -> None:
    if os.geteuid() != 0:
        return
    from opskit.proc import run_argv

    done = run_argv(_as_user(user, ["test", "-x", str(root)]), timeout=10)
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
    _write_private(path, password + "\n")
    return password


def _private_dir(path: Path, user: tuple[str, int, int]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    if os.geteuid() == 0:
        os.chown(path, user[1], user[2])
    return path


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    env.update(extra or {})
    return env


def _start(name: str, root: Path, bins: Mapping[str, str], ports: Mapping[str, int], password: str,
           user: tuple[str, int, int]) -> children.Child:
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{name}.log"
    owner = (user[1], user[2]) if os.geteuid() == 0 else None
    if name == "postgresql":
        pg = _private_dir(root / "postgres", user)
        data = pg / "data"
        created = _initdb(bins, data, password, user, owner)
        child = children.start(_as_user(user, cfg.postgres_argv(str(Path(bins["postgres"]).parent), data,
                                                                ports[name])), env=_env(), log=log, cwd=pg)
        child.wait_ready(lambda: _pg_ready(bins, ports[name], password), timeout_s=READY_TIMEOUT_S,
                         what="postgresql")
        if created:
            _create_database(bins, ports[name], password)
        return child
    if name == "redis":
        rd = _private_dir(root / "redis", user)
        conf = rd / "redis.conf"
        _write_private(conf, cfg.redis_conf(port=ports[name], password=password, data_dir=rd), owner)
        child = children.start(_as_user(user, [bins["redis-server"], str(conf)]), env=_env(), log=log, cwd=rd)
        child.wait_ready(lambda: _redis_ready(ports[name], password), timeout_s=READY_TIMEOUT_S, what="redis")
        return child
    process_conf = root / "process-exporter.yml"
    if name == "process-exporter":
        process_conf.write_text(cfg.process_exporter_conf())
        os.chmod(process_conf, 0o644)
    binary = bins[cfg.EXPORTER_BINARIES[name]]
    extra = {}
    if name == "postgres-exporter":
        extra["DATA_SOURCE_NAME"] = (f"postgresql://{cfg.DB_USER}:{password}@127.0.0.1:{ports['postgresql']}/"
                                     f"{cfg.DATABASE}?sslmode=disable")
    elif name == "redis-exporter":
        extra["REDIS_PASSWORD"] = password
    argv = cfg.exporter_argv(name, binary, ports, redis_port=ports["redis"], process_conf=process_conf)
    child = children.start(_as_user(user, argv), env=_env(extra), log=log, cwd=root)
    url = f"http://127.0.0.1:{ports[name]}/metrics"
    child.wait_ready(lambda: _metrics_show(url, cfg.EXPORTER_READY[name]), timeout_s=READY_TIMEOUT_S, what=name)
    return child


def _initdb(bins: Mapping[str, str], data: Path, password: str, user: tuple[str, int, int],
            owner: tuple[int, int] | None) -> bool:
    """Create the cluster unless it exists; True if it was created now."""
    from opskit.proc import run_argv

    if (data / "PG_VERSION").is_file():
        return False
    pwfile = data.parent / "initdb.pw"
    _write_private(pwfile, password + "\n", owner)
    try:
        done = run_argv(_as_user(user, cfg.initdb_argv(str(Path(bins["initdb"]).parent), data, pwfile)),
                        timeout=120, env={"LC_ALL": "C.UTF-8"}, cwd=data.parent)
    finally:
        pwfile.unlink(missing_ok=True)
    if not done.ok:
        shutil.rmtree(data, ignore_errors=True)  # a half-made cluster would read as damaged next time
        tail = done.output.strip().splitlines()[-1:] or ["no output"]
        raise RuntimeFailure(f"initdb failed in {data}: {tail[0]}")
    return True


def _pg_env(password: str) -> dict[str, str]:
    return {"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "2"}  # the password through the environment


def _pg_ready(bins: Mapping[str, str], port: int, password: str) -> bool:
    from opskit.proc import run_argv

    done = run_argv([str(Path(bins["postgres"]).parent / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port),
                     "-U", cfg.DB_USER, "-d", "postgres"], timeout=5, env=_pg_env(password))
    return done.ok


def _create_database(bins: Mapping[str, str], port: int, password: str) -> None:
    from opskit.proc import run_argv

    done = run_argv([str(Path(bins["postgres"]).parent / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                     "-U", cfg.DB_USER, cfg.DATABASE], timeout=30, env=_pg_env(password))
    if not done.ok:
        raise RuntimeFailure(f"createdb {cfg.DATABASE} failed: {done.output}")


def _redis_ready(port: int, password: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(f"AUTH {password}\r\nPING\r\n".encode())
            reply = b""
            with contextlib.suppress(TimeoutError):
                while b"PONG" not in reply and b"-" not in reply and len(reply) < 512:
                    chunk = s.recv(512)
                    if not chunk:
                        break
                    reply += chunk
    except OSError:
        return False
    return reply.startswith(b"+OK\r\n+PONG")


def _metrics_show(url: str, line: str) -> bool:
    import httpx

    try:
        resp = httpx.get(url, timeout=5, trust_env=False)
    except httpx.HTTPError:
        return False
    return resp.status_code == 200 and line in resp.text
