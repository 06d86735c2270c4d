"""The upload limit's queue and the tenant-scoped page cache, over real HTTP (one-worker services, so every
request meets the same slots and the same cache)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import pytest

from opskit.assetsvc.uploadgate import UploadGate, UploadsBusy
from opskit.localservice import LocalService

pytestmark = pytest.mark.slow

CSV_HEAD = b"address,latitude,longitude\n"


def test_the_gate_hands_freed_slots_to_waiters_in_arrival_order_and_forgets_cancelled_ones():
    async def run() -> None:
        gate = UploadGate(slots=1, queue=3, wait_s=60)
        first = await gate.enter()
        order: list[str] = []

        async def upload(name: str) -> None:
            with await gate.enter():
                order.append(name)

        tasks = {n: asyncio.create_task(upload(n)) for n in ("a", "b", "c")}
        while gate.waiting < 3:
            await asyncio.sleep(0)
        with pytest.raises(UploadsBusy) as full:
            await gate.enter()  # three wait already: the queue is full
        assert full.value.reason == "queue_full" and full.value.retry_after_s >= 1
        tasks["b"].cancel()  # a client that went away leaves the queue without taking a slot
        with first:
            pass  # the slot goes to "a" without ever being free
        assert gate.free == 0
        await asyncio.gather(tasks["a"], tasks["c"])
        assert order == ["a", "c"] and gate.free == 1 and gate.waiting == 0

    asyncio.run(run())


def test_the_gate_refuses_after_the_wait_and_estimates_retry_after_from_recent_uploads():
    async def run() -> None:
        now = [0.0]
        gate = UploadGate(slots=2, queue=10, wait_s=0.01, clock=lambda: now[0])
        for _ in range(20):  # uploads lately held their slot 4 s each
            slot = await gate.enter()
            now[0] += 4.0
            with slot:
                pass
        held = [await gate.enter(), await gate.enter()]
        with pytest.raises(UploadsBusy) as waited:
            await gate.enter()
        assert waited.value.reason == "wait_timeout"
        assert waited.value.retry_after_s == 2  # 4 s x (nobody ahead + itself) / 2 slots
        assert gate.waiting == 0 and gate.in_progress == 2
        for slot in held:
            with slot:
                pass
        assert gate.free == 2

    asyncio.run(run())


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _gauge(svc: LocalService, name: str) -> float:
    text = httpx.get(f"{svc.url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " "))


def _until(check, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the service never got there"


class _HeldUpload:
    """An upload over a raw connection that sends part of its body, then waits to be told to finish."""

    def __init__(self, svc: LocalService, key: str, rows: int = 3) -> None:
        import socket

        self.body = CSV_HEAD + b"".join(b"%d Held St,1,1\n" % i for i in range(rows))
        url = urlsplit(svc.url)
        self.sock = socket.create_connection((url.hostname, url.port))
        self.sock.sendall(f"POST /api/assets/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
                          f"Content-Type: text/csv\r\nContent-Length: {len(self.body)}\r\n\r\n".encode()
                          + self.body[:len(CSV_HEAD)])

    def finish(self) -> bytes:
        self.sock.sendall(self.body[len(CSV_HEAD):])
        self.sock.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer

    def close(self) -> None:
        self.sock.close()


def _upload(svc: LocalService, key: str, body: bytes = CSV_HEAD + b"1 Queue St,1,1\n") -> httpx.Response:
    return httpx.post(f"{svc.url}/api/assets/upload", content=body, timeout=60,
                      headers={**_auth(key), "Content-Type": "text/csv"})


@pytest.fixture(scope="module")
def queued() -> Iterator[LocalService]:
    args = ["--max-uploads", "1", "--upload-queue", "1", "--upload-queue-wait", "60"]
    with LocalService(workers=1, tenants=2, extra_args=args) as svc:
        yield svc


def test_an_upload_that_finds_every_slot_taken_waits_and_succeeds_when_one_frees(queued):
    key = queued.key
    held = _HeldUpload(queued, key)
    try:
        _until(lambda: _gauge(queued, "asset_uploads_in_progress") == 1)
        with ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(_upload, queued, key)
            _until(lambda: _gauge(queued, "asset_uploads_waiting") == 1)
            # the queue (1) is full: the next is refused at once, told when a retry should find room
            t0 = time.monotonic()
            refused = _upload(queued, key)
            assert time.monotonic() - t0 < 30  # not after the 60 s wait
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert "1 uploads are in progress on this worker and 1 waiting" in refused.json()["error"]
            assert not waiting.done()
            answer = held.finish()
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
            r = waiting.result(timeout=60)
        assert r.status_code == 200, r.text
        assert r.json()["inserted"] == 1
    finally:
        held.close()
    assert _gauge(queued, "asset_uploads_waiting") == 0 and _gauge(queued, "asset_uploads_in_progress") == 0
    metrics = httpx.get(f"{queued.url}/metrics", timeout=10).text
    assert 'asset_uploads_refused_total{reason="queue_full"} 1.0' in metrics


def test_an_upload_that_waits_past_the_limit_is_503_with_retry_after():
    args = ["--max-uploads", "1", "--upload-queue-wait", "1"]
    with LocalService(workers=1, tenants=1, extra_args=args) as svc:
        held = _HeldUpload(svc, svc.key)
        try:
            _until(lambda: _gauge(svc, "asset_uploads_in_progress") == 1)
            t0 = time.monotonic()
            r = _upload(svc, svc.key)
            waited = time.monotonic() - t0
            assert r.status_code == 503, r.text
            assert waited >= 1.0  # it waited its turn for the whole second first
            assert int(r.headers["retry-after"]) >= 1
            assert "none freed a slot within 1 s" in r.json()["error"]
            # the slot is still the held upload's, and it completes normally
            assert held.finish().startswith(b"HTTP/1.1 200 ")
        finally:
            held.close()
        assert _upload(svc, svc.key).status_code == 200  # the freed slot serves the next upload at once
        metrics = httpx.get(f"{svc.url}/metrics", timeout=10).text
        assert 'asset_uploads_refused_total{reason="wait_timeout"} 1.0' in metrics


def test_a_write_by_one_tenant_keeps_another_tenants_cached_page():
    with LocalService(workers=1, tenants=2) as svc:
        a = httpx.Client(base_url=svc.url, headers=_auth(svc.keys[0]["key"]), timeout=30)
        b = httpx.Client(base_url=svc.url, headers=_auth(svc.keys[1]["key"]), timeout=30)
        try:
            mine = b.post("/api/assets", json={"address": "1 B St", "latitude": 1, "longitude": 1}).json()
            assert b.get("/api/assets").json()["data"][0]["address"] == "1 B St"  # now cached in the worker
            a_before = a.get("/api/assets").json()["data"]
            # a change to B's row behind the service's back (it names no company): only a page read again
            # from the store shows it, so it tells a cached page from a fresh one
            with sqlite3.connect(svc.db_path) as direct:
                direct.execute("UPDATE assets SET address = 'changed behind' WHERE id = ?", (mine["id"],))
            made = a.post("/api/assets", json={"address": "2 A St", "latitude": 2, "longitude": 2})
            assert made.status_code == 201
            # A's own page was dropped and shows its write ...
            assert [x["id"] for x in a.get("/api/assets").json()["data"]] == [
                *[x["id"] for x in a_before], made.json()["id"]]
            # ... while B's page stayed cached through A's write
            assert b.get("/api/assets").json()["data"][0]["address"] == "1 B St"
            # B's own write drops B's page: read again, it shows the store as it is
            assert b.post("/api/assets", json={"address": "3 B St", "latitude": 3, "longitude": 3}).status_code == 201
            assert [x["address"] for x in b.get("/api/assets").json()["data"]] == ["changed behind", "3 B St"]
        finally:
            a.close()
            b.close()
