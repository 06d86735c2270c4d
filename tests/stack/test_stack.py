"""`opskit stack up | status | down` with Debian's real PostgreSQL, Redis and exporters on loopback."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import psutil
import pytest

from opskit.exitcodes import ExitCode
from opskit.stack import config as cfg
from opskit.stack import daemons, runtime

from .conftest import needs_stack, searchable_tmpdir

pytestmark = pytest.mark.slow


def _psql(state_dir: Path, sql: str) -> str:
    info = runtime.status(state_dir)
    assert info.endpoints is not None
    port = info.endpoints.postgresql.rsplit(":", 1)[1].split("/")[0]
    password = (runtime.home(state_dir) / "password").read_text().strip()
    done = subprocess.run([f"{cfg.PG_BINDIR}/psql", "-h", "127.0.0.1", "-p", port, "-U", cfg.DB_USER, "-d",
                           cfg.DATABASE, "-tAc", sql], env={**os.environ, "PGPASSWORD": password},
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout.strip()


def _redis(url: str, password: str, command: str) -> bytes:
    host, port = url.removeprefix("redis://").split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(f"AUTH {password}\r\n{command}\r\n".encode())
        data = b""
        while data.count(b"\r\n") < 2:
            data += s.recv(4096)
    return data


def test_up_reports_urls_without_passwords_and_every_part_answers(stack_dir: Path, invoke) -> None:
    result = invoke("stack", "status", "--state-dir", str(stack_dir), "--output", "json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    password = (runtime.home(stack_dir) / "password").read_text().strip()
    assert password not in result.stdout
    assert body["postgresql"].startswith(f"postgresql://{cfg.DB_USER}@127.0.0.1:")
    assert body["redis"].startswith("redis://127.0.0.1:")
    assert set(body["exporters"]) == {"postgres", "redis", "node", "process"}
    for url in body["exporters"].values():
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url, timeout=10, trust_env=False).status_code == 200
    redis_metrics = httpx.get(body["exporters"]["redis"], timeout=10, trust_env=False).text
    assert "redis_memory_max_bytes 2.68435456e+08" in redis_metrics  # maxmemory 256mb
    assert _redis(body["redis"], password, "CONFIG GET maxmemory-policy").count(b"allkeys-lru") == 1
    assert "pg_up 1" in httpx.get(body["exporters"]["postgres"], timeout=10, trust_env=False).text
    for secret_file in ("state.json", "password"):
        mode = stat.S_IMODE((runtime.home(stack_dir) / secret_file).stat().st_mode)
        assert mode == 0o600, secret_file


def test_daemons_listen_on_loopback_only_and_never_as_root(stack_dir: Path) -> None:
    info = runtime.status(stack_dir)
    for part in info.parts:
        assert part.pid is not None
        proc = psutil.Process(part.pid)
        if os.geteuid() == 0:
            assert proc.uids().real != 0, part.name
        addrs = {c.laddr.ip for c in proc.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}
        assert addrs == {"127.0.0.1"}, (part.name, addrs)
        env_secret = (runtime.home(stack_dir) / "password").read_text().strip()
        assert not any(env_secret in arg for arg in proc.cmdline()), part.name


def test_up_again_reports_the_running_stack(stack_dir: Path, invoke) -> None:
    before = {p.name: p.pid for p in runtime.status(stack_dir).parts}
    result = invoke("stack", "up", "--state-dir", str(stack_dir), "--output", "json")
    assert result.exit_code == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["started"] is False
    assert {p["name"]: p["pid"] for p in body["parts"]} == before


def test_data_survives_down_and_up_and_down_stops_exactly_those_pids(stack_dir: Path, invoke) -> None:
    _psql(stack_dir, "CREATE TABLE IF NOT EXISTS kept (v text); INSERT INTO kept VALUES ('still here')")
    before = runtime.status(stack_dir)
    pids = {p.pid for p in before.parts}
    result = invoke("stack", "down", "--state-dir", str(stack_dir), "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert sorted(json.loads(result.stdout)["stopped"]) == sorted(cfg.COMPONENTS)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids
                   if p is not None)
    status = invoke("stack", "status", "--state-dir", str(stack_dir))
    assert status.exit_code == ExitCode.NO
    again = runtime.up(stack_dir)
    assert again.running and again.started
    assert again.endpoints == before.endpoints  # the same ports: clients keep their URLs
    assert "still here" in _psql(stack_dir, "SELECT v FROM kept")


def test_down_leaves_a_process_alone_whose_start_time_differs(invoke) -> None:
    state_dir = searchable_tmpdir("opskit-stack-reuse-")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        root = runtime.home(state_dir)
        root.mkdir(parents=True)
        fake = cfg.StackState(ports={"redis": 1}, user="x", running=[
            cfg.Running("redis", sleeper.pid, psutil.Process(sleeper.pid).create_time() - 100, "/usr/bin/sleep", 1)])
        (root / "state.json").write_text(fake.to_json())
        result = invoke("stack", "down", "--state-dir", str(state_dir), "--output", "json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout) == {"stopped": [], "already_gone": ["redis"]}
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_port_taken_is_a_usage_error_naming_the_port(invoke) -> None:
    if needs_stack():
        pytest.skip(needs_stack())
    state_dir = searchable_tmpdir("opskit-stack-port-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        result = invoke("stack", "up", "--state-dir", str(state_dir), "--port", f"postgresql={port}")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.count("\n") == 1
    assert f"127.0.0.1:{port} (postgresql) is in use" in result.stderr
    assert "--port postgresql=PORT" in result.stderr


def test_missing_package_is_a_runtime_error_naming_the_fix(invoke) -> None:
    state_dir = searchable_tmpdir("opskit-stack-pkg-")
    result = invoke("stack", "up", "--state-dir", str(state_dir), env={cfg.PG_BINDIR_ENV: str(state_dir / "none")})
    assert result.exit_code == ExitCode.RUNTIME
    assert result.stderr.count("\n") == 1
    assert "PostgreSQL 15 not found" in result.stderr and "scripts/setup.sh" in result.stderr
    assert not runtime.home(state_dir).exists()  # nothing half-made


@pytest.mark.parametrize("damage", ["state", "data"])
def test_damaged_state_dir_is_a_config_error_pointing_at_fresh(invoke, damage: str) -> None:
    if needs_stack():
        pytest.skip(needs_stack())
    state_dir = searchable_tmpdir("opskit-stack-damaged-")
    root = runtime.home(state_dir)
    if damage == "state":
        root.mkdir(parents=True)
        (root / "state.json").write_text("{not json")
    else:
        (root / "postgres" / "data").mkdir(parents=True)
        (root / "postgres" / "data" / "base").mkdir()
    result = invoke("stack", "up", "--state-dir", str(state_dir))
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.count("\n") == 1
    assert "--fresh" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("bad", ["postgres=5432", "redis=0", "redis=x", "redis"])
def test_bad_port_option(invoke, bad: str) -> None:
    result = invoke("stack", "up", "--state-dir", "/nonexistent", "--port", bad)
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.startswith("opskit: error: --port")


@pytest.mark.skipif(os.geteuid() != 0, reason="the service user exists only when opskit runs as root")
def test_a_state_dir_the_service_user_cannot_reach_is_refused(invoke, tmp_path: Path) -> None:
    if needs_stack():
        pytest.skip(needs_stack())
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    result = invoke("stack", "up", "--state-dir", str(private / "state"))
    assert result.exit_code == ExitCode.USAGE
    assert "cannot reach" in result.stderr and "chmod o+x" in result.stderr
    assert not (runtime.home(private / "state") / "state.json").exists()


def test_fresh_starts_over_with_empty_data_and_a_new_password(stack_dir: Path, invoke) -> None:
    _psql(stack_dir, "CREATE TABLE IF NOT EXISTS gone (v text)")
    old_password = (runtime.home(stack_dir) / "password").read_text()
    old_pids = {p.pid for p in runtime.status(stack_dir).parts}
    result = invoke("stack", "up", "--state-dir", str(stack_dir), "--fresh", "--output", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["started"] is True
    assert not old_pids & {p.pid for p in runtime.status(stack_dir).parts}
    assert (runtime.home(stack_dir) / "password").read_text() != old_password
    assert _psql(stack_dir, "SELECT count(*) FROM pg_tables WHERE tablename = 'gone'") == "0"


def test_a_part_that_dies_shows_in_status_and_up_starts_the_stack_again(stack_dir: Path, invoke) -> None:
    node = next(r for r in runtime.read_state(runtime.home(stack_dir)).running  # type: ignore[union-attr]
                if r.name == "node-exporter")
    assert daemons.stop_part(node)
    result = invoke("stack", "status", "--state-dir", str(stack_dir), "--output", "json")
    assert result.exit_code == ExitCode.NO
    running = {p["name"]: p["running"] for p in json.loads(result.stdout)["parts"]}
    assert running == {name: name != "node-exporter" for name in cfg.COMPONENTS}
    healed = runtime.up(stack_dir)
    assert healed.running and healed.started


def test_a_part_that_cannot_start_stops_the_others_and_says_why(invoke, tmp_path: Path) -> None:
    if needs_stack():
        pytest.skip(needs_stack())
    state_dir = searchable_tmpdir("opskit-stack-broken-")
    fake_bin = state_dir / "bin"
    fake_bin.mkdir(mode=0o755)
    fake = fake_bin / "prometheus-node-exporter"
    fake.write_text("#!/bin/sh\necho 'node_exporter: listen failed: simulated' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = invoke("stack", "up", "--state-dir", str(state_dir), "--output", "json",
                    env={"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert result.exit_code == ExitCode.RUNTIME
    assert result.stderr.count("\n") == 1
    assert "node-exporter exited with status 1 while starting" in result.stderr and "simulated" in result.stderr
    root = str(runtime.home(state_dir))
    leftovers = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        cwd, argv = proc.info["cwd"] or "", " ".join(proc.info["cmdline"] or [])
        if cwd.startswith(root) or root in argv:
            leftovers.append(argv)
    assert leftovers == []
