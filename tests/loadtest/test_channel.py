"""The distributed channel: master and workers prove a shared token to each other (real Locust master,
real workers, real ZeroMQ sockets on loopback standing in for a rogue worker or a rogue master)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from opskit.loadtest.channel import curve_client, derive

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
TOKEN = "a-shared-token-for-this-test-run-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token_file(tmp_path: Path, token: str = TOKEN) -> Path:
    path = tmp_path / "token"
    path.write_text(token + "\n")
    path.chmod(0o600)
    return path


def _worker(port: int, env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "opskit", "loadtest", "worker", "--master", "127.0.0.1",
                             "--master-port", str(port), *extra], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _client_ready(identity: str) -> bytes:
    """Locust's first message from a worker (locust.rpc.protocol.Message, msgpack of type, data, node id)."""
    return msgpack.dumps(("client_ready", "2.47.0", identity))


class Rogue:
    """A worker that speaks Locust's protocol, without the token (NULL) or with a wrong one (CURVE)."""

    def __init__(self, ctx: zmq.Context, port: int, token: str | None, name: str) -> None:
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.linger = 0
        if token is not None:
            curve_client(self.sock, derive(token))
        self.sock.setsockopt(zmq.IDENTITY, name.encode())
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.sock.send(_client_ready(name))  # queued: sent as soon as (if ever) the handshake completes
        self.received: list[bytes] = []

    def drain(self) -> None:
        while self.sock.poll(0):
            self.received.append(self.sock.recv())


def test_only_workers_holding_the_token_join_and_get_the_run(invoke, fast_server, tmp_path: Path) -> None:
    """A worker without the token and one with a wrong token never receive anything (no spawn message: no
    config, locustfile or tenant keys); the worker with the token (from --token-file) joins and loads."""
    port = _free_port()
    ctx = zmq.Context()
    rogues = [Rogue(ctx, port, None, "rogue-plain"), Rogue(ctx, port, "some-other-token-0123456789", "rogue-wrong")]
    env = {k: v for k, v in os.environ.items() if k != "OPSKIT_LOADTEST_TOKEN"}
    honest = _worker(port, env, "--token-file", str(_token_file(tmp_path)))
    try:
        out = tmp_path / "run"
        result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--path", "/", "--rate", "20",
                        "--duration", "2s", "--expect-workers", "1", "--master-port", str(port), "--out", str(out),
                        env={"OPSKIT_LOADTEST_TOKEN": TOKEN})
        assert result.exit_code == 0, result.stderr
        assert honest.wait(timeout=30) == 0
        for rogue in rogues:
            rogue.drain()
    finally:
        if honest.poll() is None:
            honest.kill()
            honest.wait()
        assert honest.stderr is not None
        honest.stderr.close()
        ctx.destroy(linger=0)
    results = json.loads((out / "results.json").read_text())
    assert results["run"]["processes"] == 2  # the local worker and the honest one: no rogue counted
    assert results["aggregate"]["requests"] == 40 == fast_server.requests
    assert [r.received for r in rogues] == [[], []]
    log = (out / "locust.log").read_text()
    assert "refused a worker" in log and TOKEN not in log


def test_a_worker_refuses_a_master_that_cannot_prove_the_token(tmp_path: Path) -> None:
    """A master without the token (plain Locust channel) or with another token: the worker stops at the
    handshake with exit 2 and one line; the master never gets a message from it."""
    ctx = zmq.Context()
    try:
        for other in (None, "the-masters-other-token-0123456789"):
            master = ctx.socket(zmq.ROUTER)
            master.linger = 0
            if other is not None:
                keys = derive(other)
                master.curve_server = True
                master.curve_secretkey = keys.server_secret
                master.curve_publickey = keys.server_public
            port = master.bind_to_random_port("tcp://127.0.0.1")
            worker = _worker(port, {**os.environ, "OPSKIT_LOADTEST_TOKEN": TOKEN})
            try:
                _, err = worker.communicate(timeout=60)
            finally:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            assert worker.returncode == 2, err
            assert "did not prove the token" in err, err
            assert master.poll(200) == 0  # not even client_ready reached it
            master.close()
    finally:
        ctx.destroy(linger=0)


def test_a_worker_without_a_token_is_told_the_master_wants_one() -> None:
    ctx = zmq.Context()
    master = ctx.socket(zmq.ROUTER)
    master.linger = 0
    keys = derive(TOKEN)
    master.curve_server = True
    master.curve_secretkey = keys.server_secret
    master.curve_publickey = keys.server_public
    port = master.bind_to_random_port("tcp://127.0.0.1")
    worker = _worker(port, {k: v for k, v in os.environ.items() if k != "OPSKIT_LOADTEST_TOKEN"})
    try:
        _, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        ctx.destroy(linger=0)
    assert worker.returncode == 2 and "wants a token" in err, err


def test_remote_master_and_worker_need_a_token(invoke, fast_server, tmp_path: Path) -> None:
    env = {"OPSKIT_LOADTEST_TOKEN": ""}
    started = time.monotonic()
    for extra in (["--expect-workers", "1"], ["--processes", "2"]):
        result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--duration", "1s",
                        "--master-bind", "0.0.0.0", *extra, "--out", str(tmp_path / "run"), env=env)
        assert result.exit_code == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "--master-bind 0.0.0.0" in lines[0] and "--token-file" in lines[0], lines
    result = invoke("loadtest", "worker", "--master", "10.255.255.1", env=env)
    assert result.exit_code == 2 and "--token-file" in result.stderr, result.stderr
    short = tmp_path / "short"
    short.write_text("tooshort\n")
    result = invoke("loadtest", "worker", "--master", "10.255.255.1", "--token-file", str(short), env=env)
    assert result.exit_code == 2 and "at least 16 characters" in result.stderr, result.stderr
    assert time.monotonic() - started < 20 and fast_server.requests == 0  # refused before anything started
