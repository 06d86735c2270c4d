"""The stack's daemons one by one: start each (as the service user), wait until it answers, and find or
stop exactly it again later.

The process start/stop goes through opskit.children, the one child-process helper."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from opskit import children
from opskit.errors import RuntimeFailure
from opskit.stack import config as cfg

if TYPE_CHECKING:
    import psutil

READY_TIMEOUT_S = 30.0
Child = children.Child
User = tuple[str, int, int]  # name, uid, gid


def write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write a file only its owner can read (state, passwords), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    if owner is not None:
        os.chown(tmp, *owner)
    os.replace(tmp, path)


def runs(binary: str) -> Callable[[psutil.Process], bool]:
    """Matches a process running `binary`; redis-server rewrites its title ("redis-server 127.0.0.1:6379")."""
    def matches(proc: psutil.Process) -> bool:
        argv = proc.cmdline()
        return bool(argv) and bool(argv[0].split()) and argv[0].split()[0] == binary
    return matches


def alive(r: cfg.Running) -> bool:
    return children.Identity(r.pid, r.create_time).alive(runs(r.binary))


def stop_part(r: cfg.Running) -> bool:
    """Stop one recorded daemon if it is still the one `up` started; False when it was gone already."""
    ident = children.Identity(r.pid, r.create_time)
    proc = ident.process(runs(r.binary))
    if proc is not None and r.name == "postgresql":
        # SIGINT is PostgreSQL's fast shutdown: it ends client sessions (a service's pool) and stops
        # cleanly; SIGTERM would wait for every client to disconnect
        with contextlib.suppress(Exception):
            proc.send_signal(signal.SIGINT)
    return children.stop_identity(ident, matches=runs(r.binary)) or proc is not None


def as_user(user: User, argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    # setpriv execs the daemon: the pid we record is the daemon's own
    return ["setpriv", f"--reuid={user[1]}", f"--regid={user[2]}", "--clear-groups", "--", *argv]


def private_dir(path: Path, user: User) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    if os.geteuid() == 0:
        os.chown(path, user[1], user[2])
    return path


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}
    env.update(extra or {})
    return env


def start_part(name: str, root: Path, bins: Mapping[str, str], ports: Mapping[str, int], password: str,
           user: User) -> children.Child:
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    log = logs / f"{name}.log"
    owner = (user[1], user[2]) if os.geteuid() == 0 else None
    if name == "postgresql":
        pg = private_dir(root / "postgres", user)
        data = pg / "data"
        created = _initdb(bins, data, password, user, owner)
        child = children.start(as_user(user, cfg.postgres_argv(str(Path(bins["postgres"]).parent), data,
                                                                ports[name])), env=_env(), log=log, cwd=pg)
        child.wait_ready(lambda: _pg_ready(bins, ports[name], password), timeout_s=READY_TIMEOUT_S,
                         what="postgresql")
        if created:
            _create_database(bins, ports[name], password)
        return child
    if name == "redis":
        rd = private_dir(root / "redis", user)
        conf = rd / "redis.conf"
        write_private(conf, cfg.redis_conf(port=ports[name], password=password, data_dir=rd), owner)
        child = children.start(as_user(user, [bins["redis-server"], str(conf)]), env=_env(), log=log, cwd=rd)
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
    child = children.start(as_user(user, argv), env=_env(extra), log=log, cwd=root)
    url = f"http://127.0.0.1:{ports[name]}/metrics"
    child.wait_ready(lambda: _metrics_show(url, cfg.EXPORTER_READY[name]), timeout_s=READY_TIMEOUT_S, what=name)
    return child


def _initdb(bins: Mapping[str, str], data: Path, password: str, user: User,
            owner: tuple[int, int] | None) -> bool:
    """Create the cluster unless it exists; True if it was created now."""
    from opskit.proc import run_argv

    if (data / "PG_VERSION").is_file():
        return False
    pwfile = data.parent / "initdb.pw"
    write_private(pwfile, password + "\n", owner)
    try:
        done = run_argv(as_user(user, cfg.initdb_argv(str(Path(bins["initdb"]).parent), data, pwfile)),
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
