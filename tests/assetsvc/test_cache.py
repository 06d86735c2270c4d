"""Seed 000's Redis cache and the shared rate limits, against the real Redis `opskit stack up` starts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from opskit.assetsvc import cache
from opskit.assetsvc.cache import PREFIX, Circuit, RedisLink
from opskit.assetsvc.ratelimit import RateLimiter
from opskit.assetsvc.sharedlimit import SharedRateLimiter
from opskit.cli import cli
from opskit.localservice import LocalService

pytestmark = pytest.mark.slow


@dataclass
class Stack:
    state_dir: Path
    url: str
    password: str
    postgresql: str

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_PASSWORD": self.password, "PGPASSWORD": self.password}

    def client(self):  # a test's own view of Redis
        import redis

        return redis.Redis.from_url(self.url, password=self.password, socket_timeout=5)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A stack of this module's own (the kill test restarts its Redis): its Redis URL and password."""
    from opskit.stack import config as stack_config
    from opskit.stack import runtime

    if not os.access(Path(stack_config.PG_BINDIR) / "postgres", os.X_OK) or shutil.which("redis-server") is None:
        pytest.skip("the stack packages are not installed: run scripts/setup.sh")
    state_dir = Path(tempfile.mkdtemp(prefix="opskit-assetsvc-redis-"))
    os.chmod(state_dir, 0o711)  # the stack's unprivileged user must reach it
    try:
        info = runtime.up(state_dir)
        assert info.endpoints is not None
        password = (runtime.home(state_dir) / "password").read_text().strip()
        yield Stack(state_dir, info.endpoints.redis, password, info.endpoints.postgresql)
    finally:
        runtime.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


def create_key(db: str, company: str, tier: str) -> str:
    result = CliRunner().invoke(cli, ["service", "keys", "create", "--company", company, "--tier", tier,
                                      "--db", db, "--output", "json"])
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["key"])


def _service(stack: Stack, **kw) -> LocalService:
    # no per-worker page cache: every list request reaches the Redis layer under test
    args = ["--no-page-cache", *kw.pop("extra_args", [])]
    return LocalService(workers=2, tenants=2, tier="pro", cache=stack.url, extra_env=stack.env,
                        extra_args=args, **kw)


def _fresh(url: str, key: str) -> httpx.Client:
    # no keep-alive: requests spread over both workers
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30,
                        limits=httpx.Limits(max_keepalive_connections=0))


def _entries(r, kind: str, company: str) -> list[bytes]:
    return [k for k in r.scan_iter(f"{PREFIX}{kind}:*") if k.decode().endswith(f":{company}")]


# ---- pure parts -----------------------------------------------------------------------------------------

def test_the_circuit_opens_on_a_failure_and_retries_after_its_time():
    now = [100.0]
    circuit = Circuit(retry_s=3.0, clock=lambda: now[0])
    assert circuit.allows()
    circuit.failed(ConnectionError("refused"))
    assert not circuit.allows() and circuit.is_open
    now[0] = 102.9
    assert not circuit.allows()
    now[0] = 103.0
    assert circuit.allows()  # half open: the next call tries Redis
    circuit.succeeded()
    assert not circuit.is_open and circuit.allows()


@pytest.mark.parametrize("url", ["http://127.0.0.1:6379", "redis://", "redis://127.0.0.1:port/0"])
def test_bad_cache_urls_are_usage_errors(url, tmp_path):
    result = CliRunner().invoke(cli, ["service", "run", "--db", str(tmp_path / "a.db"), "--cache", url])
    assert result.exit_code == 2
    assert result.stderr.startswith("opskit: error: --cache: ") and "Traceback" not in result.stderr


def test_a_password_on_the_command_line_is_refused(tmp_path):
    result = CliRunner().invoke(cli, ["service", "run", "--db", str(tmp_path / "a.db"),
                                      "--cache", "redis://:secret@127.0.0.1:6379/0"])
    assert result.exit_code == 2 and "REDIS_PASSWORD" in result.stderr


def test_an_unreachable_redis_leaves_the_limits_to_the_local_limiter(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    now = [0.0]
    link = RedisLink(f"redis://127.0.0.1:{port}/0", clock=lambda: now[0])
    shared = SharedRateLimiter(link, RateLimiter(str(tmp_path / "rl.db"), {"free": 2}, 3600.0))
    decisions = [shared.check("k1", "free", 1000.0) for _ in range(3)]
    assert [d.allowed for d in decisions if d] == [True, True, False]
    assert link.circuit.is_open


# ---- against the stack's Redis ------------------------------------------------------------------------

def test_the_shared_limiter_decides_exactly_as_the_local_one(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", stack.password)
    limits: dict[str, int | None] = {"free": 5, "pro": 1000, "internal": None}
    shared = SharedRateLimiter(RedisLink(stack.url), RateLimiter(str(tmp_path / "a.db"), limits, 3600.0))
    local = RateLimiter(str(tmp_path / "b.db"), limits, 3600.0)
    key = f"k-{time.time_ns()}"
    # bursts, refills of a fraction of a token, a clock step back, a full refill
    times = [1000.0] * 7 + [1700.0, 1720.5, 1720.6, 2500.0, 2400.0, 2400.0, 90000.0, 90000.1]
    for tier in ("free", "pro", "internal"):
        for now in times:
            assert shared.check(key + tier, tier, now) == local.check(key + tier, tier, now), (tier, now)
    ttl = stack.client().pttl(f"{PREFIX}rl:{key}free")
    assert 0 < ttl <= 3_600_000  # an idle bucket leaves Redis when it would be full again


def test_pages_and_stats_are_cached_per_company_and_dropped_on_its_writes(stack):
    r = stack.client()
    with _service(stack) as svc:
        a, b = (_fresh(svc.url, k["key"]) for k in svc.keys)
        for client, name, company in ((a, "a", "company-1"), (b, "b", "company-2")):
            assert client.post("/api/assets", json={"address": name, "latitude": 1, "longitude": 2}).status_code == 201
            assert len(client.get("/api/assets").json()["data"]) == 1  # a miss, stored
            assert client.get(f"/api/companies/{company}/stats").status_code == 200

        pages_a, stats_a = _entries(r, "page", "company-1"), _entries(r, "stats", "company-1")
        assert len(pages_a) == 1 and len(stats_a) == 1
        assert 0 < r.ttl(pages_a[0]) <= 300 and 300 < r.ttl(stats_a[0]) <= 3600
        # hits: a doctored entry is what both workers answer from then on
        for company in ("company-1", "company-2"):
            r.set(_entries(r, "page", company)[0], '\n[{"doctored":true}]', keepttl=True)
            stats_key = _entries(r, "stats", company)[0]
            r.set(stats_key, json.dumps({**json.loads(r.get(stats_key)), "assets": 12345}), keepttl=True)
        for _ in range(6):
            assert a.get("/api/assets").json() == {"data": [{"doctored": True}], "next_cursor": None}
            assert a.get("/api/companies/company-1/stats").json()["assets"] == 12345

        # a write of company-1 drops company-1's entries, not company-2's
        created = a.post("/api/assets", json={"address": "a2", "latitude": 1, "longitude": 2}).json()
        assert [x["address"] for x in a.get("/api/assets").json()["data"]] == ["a", "a2"]
        assert a.get("/api/companies/company-1/stats").json()["assets"] == 2
        assert b.get("/api/assets").json()["data"] == [{"doctored": True}]
        assert b.get("/api/companies/company-2/stats").json()["assets"] == 12345

        # deletes and uploads invalidate too
        assert a.request("DELETE", "/api/assets/delete", json={"ids": [created["id"]]}).json() == {"deleted": 1}
        assert [x["address"] for x in a.get("/api/assets").json()["data"]] == ["a"]
        up = b.post("/api/assets/upload", content=b"address,latitude,longitude\nb2,1,2\n",
                    headers={"Content-Type": "text/csv"})
        assert up.status_code == 200, up.text
        assert [x["address"] for x in b.get("/api/assets").json()["data"]] == ["b", "b2"]
        assert b.get("/api/companies/company-2/stats").json()["assets"] == 2
        a.close()
        b.close()


def test_two_instances_share_one_limit(stack, tmp_path):
    db = tmp_path / "shared.db"
    with _service(stack, db=db, extra_args=["--rate-limits", "free=6/h"]) as one, \
            _service(stack, db=db, extra_args=["--rate-limits", "free=6/h"]) as two:
        key = create_key(str(db), "company-limited", "free")
        clients = [_fresh(one.url, key), _fresh(two.url, key)]
        answers = [clients[i % 2].get("/api/assets") for i in range(10)]
        # each instance alone would allow 6: together they allow 6
        assert [x.status_code for x in answers] == [200] * 6 + [429] * 4
        assert [x.headers["x-ratelimit-remaining"] for x in answers[:6]] == ["5", "4", "3", "2", "1", "0"]
        for c in clients:
            c.close()


def test_on_postgresql_workers_see_each_others_writes_at_once_with_their_page_caches_on(stack):
    # the workers ask PostgreSQL for changes only every STORE_CHECK_S: a sibling's write must still
    # reach a worker's page cache before the next request
    with LocalService(workers=2, tenants=1, tier="internal", db=stack.postgresql, cache=stack.url,
                      extra_env=stack.env) as svc, _fresh(svc.url, svc.key) as c:
        pids: set[int] = set()
        i = 0
        # at least 12 rounds, and on until both workers have answered: which worker accepts a new
        # connection is the kernel's choice, and a quiet machine can hand a few dozen in a row to one
        while i < 12 or len(pids) < 2:
            assert i < 300, f"all of {6 * i} connections went to one worker"
            assert c.post("/api/assets", json={"address": f"w{i}", "latitude": 1, "longitude": 1}).status_code == 201
            for _ in range(4):
                page = c.get("/api/assets?limit=500").json()["data"]
                assert [x["address"] for x in page][-1] == f"w{i}"
            pids.add(c.get("/health").json()["worker_pid"])
            i += 1


def _kill_redis(stack: Stack) -> None:
    from opskit.stack import daemons, runtime

    state = runtime.read_state(runtime.home(stack.state_dir))
    assert state is not None
    (part,) = [p for p in state.running if p.name == "redis"]
    assert daemons.alive(part)
    os.kill(part.pid, signal.SIGKILL)


def _until(what, timeout_s: float = 30.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("not within the deadline")


def test_redis_killed_mid_load_fails_no_request_and_limits_stay_local_until_it_is_back(stack):
    from opskit.stack import runtime

    with _service(stack, extra_args=["--rate-limits", "free=3/h,pro=1000000/h"]) as svc:
        pro = svc.keys[0]["key"]
        statuses: list[int | str] = []
        stop = threading.Event()

        def load() -> None:
            with _fresh(svc.url, pro) as c:
                while not stop.is_set():
                    try:
                        statuses.append(c.get("/api/assets?limit=5").status_code)
                        statuses.append(c.post("/api/assets", json={"address": "x", "latitude": 1,
                                                                   "longitude": 1}).status_code)
                        statuses.append(c.get("/api/companies/company-1/stats").status_code)
                    except httpx.HTTPError as exc:
                        statuses.append(repr(exc))

        worker = threading.Thread(target=load)
        worker.start()
        try:
            _until(lambda: len(statuses) >= 30)
            _kill_redis(stack)
            seen = len(statuses)
            _until(lambda: len(statuses) >= seen + 60)  # served while Redis is gone
            # local limits: a free key that Redis never saw gets the local bucket of 3
            with _fresh(svc.url, create_key(svc.db, "company-free", "free")) as free:
                answers = [free.get("/api/assets") for _ in range(4)]
            assert [x.status_code for x in answers] == [200, 200, 200, 429]
            assert answers[0].headers["x-ratelimit-limit"] == "3"

            runtime.up(stack.state_dir)  # Redis back on its port (the stack restarts what died)
            r = stack.client()
            r.flushdb()  # what its last snapshot held is not the proof
            seen = len(statuses)
            # used again: within the circuit's retry time the workers write limits and entries back
            _until(lambda: r.exists(f"{PREFIX}rl:" + _key_id(svc, pro)) and _entries(r, "page", "company-1"))
            _until(lambda: len(statuses) >= seen + 30)
        finally:
            stop.set()
            worker.join(timeout=60)
    assert statuses and all(s in (200, 201) for s in statuses), sorted({str(s) for s in statuses})


def _key_id(svc: LocalService, key: str) -> str:
    from opskit.assetsvc.stores import open_storage

    store = open_storage(svc.db)
    try:
        record = store.lookup_key(key)
    finally:
        store.close()
    assert record is not None
    return record.key_id


def test_the_link_is_shared_per_process(stack, monkeypatch):
    monkeypatch.setenv("REDIS_PASSWORD", stack.password)
    monkeypatch.setattr(cache, "_links", {})
    assert cache.link_for(stack.url) is cache.link_for(stack.url)
