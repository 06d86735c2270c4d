"""Hardening against stalled clients, odd input and revoked keys, over real HTTP (a two-worker service)."""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from click.testing import CliRunner

from opskit.cli import cli
from opskit.localservice import LocalService

pytestmark = pytest.mark.slow

BODY_TIMEOUT = 8  # long enough for the stall test's writes, short enough for the timeout test
KEY_TTL = 1.0
ARGS = ["--body-timeout", str(BODY_TIMEOUT), "--key-cache-ttl", str(KEY_TTL), "--max-uploads", "2",
        "--upload-queue", "2", "--rate-limits", "free=1000/h"]


@pytest.fixture(scope="module")
def svc() -> Iterator[LocalService]:
    with LocalService(workers=2, tenants=2, extra_args=ARGS) as s:
        yield s


def create_key(db: str, company: str, tier: str) -> str:
    made = CliRunner().invoke(cli, ["service", "keys", "create", "--company", company, "--tier", tier,
                                    "--db", db, "--output", "json"])
    assert made.exit_code == 0, made.output
    return str(json.loads(made.stdout)["key"])


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _stats(svc: LocalService, key: str, company: str) -> int:
    r = httpx.get(f"{svc.url}/api/companies/{company}/stats", headers=_auth(key), timeout=10)
    assert r.status_code == 200, r.text
    return int(r.json()["assets"])


def _stalled_upload(svc: LocalService, key: str, rows: int) -> socket.socket:
    """A raw connection that sends an upload's head and `rows` CSV rows of a body it says is larger,
    then sends nothing more."""
    url = urlsplit(svc.url)
    body = b"address,latitude,longitude\n" + b"x,1,1\n" * rows
    sock = socket.create_connection((url.hostname, url.port))
    head = (f"POST /api/assets/upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: text/csv\r\nContent-Length: {len(body) * 4}\r\n\r\n").encode()
    sock.sendall(head + body)
    return sock


def _no_answer_yet(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(1)  # an answer, or the end of the connection
    except BlockingIOError:
        return True
    finally:
        sock.setblocking(True)
    return False


def test_a_stalled_upload_does_not_hold_other_tenants_writes(svc):
    key_a, key_b = svc.keys[0]["key"], svc.keys[1]["key"]
    before = _stats(svc, key_a, "company-1")
    sock = _stalled_upload(svc, key_a, 30_000)  # three whole batches, then a stall mid-body
    try:
        deadline = time.monotonic() + 10
        while _stats(svc, key_a, "company-1") < before + 30_000 and time.monotonic() < deadline:
            pass  # the server has taken what arrived (each batch is committed as it is parsed)
        with httpx.Client(base_url=svc.url, headers=_auth(key_b), timeout=30) as b:
            t0 = time.monotonic()
            created = b.post("/api/assets", json={"address": "1 Side St", "latitude": 1, "longitude": 2})
            post_s = time.monotonic() - t0
            assert created.status_code == 201, created.text
            t0 = time.monotonic()
            deleted = b.request("DELETE", "/api/assets/delete", json={"ids": [created.json()["id"]]})
            delete_s = time.monotonic() - t0
            assert deleted.json() == {"deleted": 1}
        assert post_s < 1.0 and delete_s < 1.0, (post_s, delete_s)
        # the writes went through while the upload, three batches in, was still stalled
        assert _no_answer_yet(sock)
        assert _stats(svc, key_a, "company-1") == before + 30_000
    finally:
        sock.close()
    # the client went away mid-body: the upload keeps nothing
    deadline = time.monotonic() + 10
    while _stats(svc, key_a, "company-1") != before and time.monotonic() < deadline:
        pass
    assert _stats(svc, key_a, "company-1") == before


def test_a_body_that_stops_arriving_is_408_and_rolled_back(svc):
    key_a = svc.keys[0]["key"]
    before = _stats(svc, key_a, "company-1")
    sock = _stalled_upload(svc, key_a, 12_000)
    try:
        sock.settimeout(BODY_TIMEOUT + 20)
        t0 = time.monotonic()
        answer = sock.recv(65536)
        waited = time.monotonic() - t0
        while chunk := sock.recv(65536):  # the answer may come in several reads; then the service closes
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b"no body bytes arrived" in answer and b"connection: close" in answer.lower()
    assert BODY_TIMEOUT - 1 < waited < BODY_TIMEOUT + 15
    assert _stats(svc, key_a, "company-1") == before


def test_stalled_uploads_do_not_starve_metrics_or_stats(svc):
    key_a = svc.keys[0]["key"]
    socks = [_stalled_upload(svc, key_a, 10) for _ in range(20)]
    try:
        for _ in range(6):  # fresh connections: both workers answer some
            t0 = time.monotonic()
            metrics = httpx.get(f"{svc.url}/metrics", timeout=5, headers={"Connection": "close"})
            stats = httpx.get(f"{svc.url}/api/companies/company-1/stats", timeout=5,
                              headers={**_auth(key_a), "Connection": "close"})
            assert metrics.status_code == 200 and stats.status_code == 200
            assert time.monotonic() - t0 < 5
        # past the per-worker upload limit and its queue, an upload is refused at once
        refused = httpx.post(f"{svc.url}/api/assets/upload", headers={**_auth(key_a), "Content-Type": "text/csv"},
                             content=b"address,latitude,longitude\nx,1,1\n", timeout=5)
        assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
        assert "2 uploads are in progress on this worker and 2 waiting" in refused.json()["error"]
    finally:
        for s in socks:
            s.close()


def test_headers_beyond_the_count_or_size_limits_are_431(svc):
    ok = httpx.get(f"{svc.url}/health", headers={f"x-h{i}": "v" for i in range(90)})
    assert ok.status_code == 200
    for headers in ({f"x-h{i}": "v" for i in range(101)}, {"x-big": "v" * 17_000},
                    {f"x-h{i}": "v" * 8000 for i in range(3)}):
        r = httpx.get(f"{svc.url}/health", headers=headers)
        assert r.status_code == 431, r.text
        assert "request header" in r.json()["error"]
    # an endless header is cut off by size before the parser ever reports it
    url = urlsplit(svc.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.settimeout(10)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # closed while we send
            for _ in range(64):
                sock.sendall(b"v" * 16384)  # 1 MiB, far past the limit
        try:  # the service has ended the connection (a wait here would mean it still collects the header)
            answer = sock.recv(100)
        except ConnectionResetError:  # unread bytes turn the close into a reset, which may drop the 431
            answer = b""
        assert answer.startswith(b"HTTP/1.1 431 ") or answer == b""


@pytest.mark.parametrize(("method", "path", "body", "status"), [
    ("GET", "/api/assets/%C2%B2", None, 404),  # '²': str.isdigit() but not int()
    ("GET", "/api/assets?limit=%C2%B2", None, 400),
    ("GET", "/api/assets?cursor=YTo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", None, 400),  # a:99999999999999999999999
    ("POST", "/api/assets", b"[" * 200_000, 400),  # nesting
    ("POST", "/api/assets", b"1" * 5000, 400),  # more digits than Python reads
    ("POST", "/api/assets", b'{"address": "a", "latitude": 1' + b"0" * 400 + b', "longitude": 1}', 422),
    ("POST", "/api/assets", b'{"": 1}', 422),
    ("POST", "/api/assets", b'{"address": "\\ud800", "latitude": 1, "longitude": 1}', 422),  # not UTF-8-able
])
def test_malformed_input_found_by_trying_is_a_4xx_json_error(svc, method, path, body, status):
    headers = {**_auth(svc.keys[1]["key"]), "Content-Type": "application/json"}
    r = httpx.request(method, svc.url + path, content=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    assert r.json()["error"]


def test_json_uploads_nested_too_deep_or_with_huge_numbers_are_4xx(svc):
    headers = {**_auth(svc.keys[1]["key"]), "Content-Type": "application/json"}
    deep = httpx.post(f"{svc.url}/api/assets/upload", content=b"[" + b"[" * 100_000, headers=headers, timeout=30)
    assert deep.status_code == 400 and "nested too deeply" in deep.json()["error"]
    big = b'[{"address": "a", "latitude": 1' + b"0" * 400 + b', "longitude": 1}]'
    r = httpx.post(f"{svc.url}/api/assets/upload", content=big, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["rejected"] == 1 and "latitude" in r.json()["errors"][0]["error"]
    odd = b'[{"address": "\\udc00 x", "latitude": 1, "longitude": 1}]'
    r = httpx.post(f"{svc.url}/api/assets/upload", content=odd, headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["rejected"] == 1 and "surrogate" in r.json()["errors"][0]["error"]


def test_a_request_the_http_parser_refuses_is_a_400_json_error(svc):
    url = urlsplit(svc.url)
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(b"POST /api/assets HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n")
        sock.settimeout(10)
        head, _, body = sock.recv(65536).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ") and b"application/json" in head
    assert json.loads(body) == {"error": "invalid HTTP request"}


def test_every_authenticated_response_of_a_limited_key_has_rate_limit_headers(svc):
    key = create_key(str(svc.db_path), "company-9", "free")
    with httpx.Client(base_url=svc.url, headers=_auth(key), timeout=30) as c:
        answers = [
            c.get("/api/assets"), c.get("/api/assets/1"), c.get("/api/assets?limit=0"),
            c.post("/api/assets", json={"address": "r", "latitude": 1, "longitude": 1}),
            c.post("/api/assets", json={"address": "r"}),
            c.request("DELETE", "/api/assets/delete", json={"ids": [1]}),
            c.get("/api/companies/company-9/stats"),
            c.post("/api/assets/upload", content=b"address,latitude,longitude\nx,1,1\n",
                   headers={"Content-Type": "text/csv"}),
        ]
    assert {r.status_code for r in answers} == {200, 201, 400, 404, 422}
    remaining = [int(r.headers["x-ratelimit-remaining"]) for r in answers]
    assert remaining == list(range(999, 999 - len(answers), -1))
    for r in answers:
        assert r.headers["x-ratelimit-limit"] == "1000"
        assert 0 < int(r.headers["x-ratelimit-reset"]) <= 3600
    unauthenticated = httpx.get(f"{svc.url}/api/assets")
    assert unauthenticated.status_code == 401 and "x-ratelimit-limit" not in unauthenticated.headers


def test_a_revoked_key_is_refused_by_every_worker_within_the_key_cache_ttl(svc):
    key = create_key(str(svc.db_path), "company-1", "internal")
    fresh = {**_auth(key), "Connection": "close"}  # new connections: both workers cache the key
    assert all(httpx.get(f"{svc.url}/api/assets?limit=1", headers=fresh).status_code == 200 for _ in range(10))
    created = CliRunner().invoke(cli, ["service", "keys", "revoke", "-", "--db", str(svc.db_path)],
                                 input=key + "\n")
    assert created.exit_code == 0, created.output
    assert "revoked key k_" in created.output and key not in created.output
    revoked_at = time.monotonic()
    refused, streak_from = 0, revoked_at
    while refused < 20 and time.monotonic() - revoked_at < 10:
        sent = time.monotonic()
        r = httpx.get(f"{svc.url}/api/assets?limit=1", headers=fresh)
        if r.status_code == 401:
            streak_from = sent if refused == 0 else streak_from
            refused += 1
        else:
            refused = 0
    assert refused == 20
    # from the first request of the final run of 20 refusals (new connections, so both workers answered),
    # every worker refused: that run began within the TTL (plus a second of scheduling on a busy machine)
    assert streak_from - revoked_at < KEY_TTL + 1


def test_keys_revoke_by_id_and_its_errors(tmp_path):
    db = str(tmp_path / "a.db")
    runner = CliRunner()
    made = json.loads(runner.invoke(cli, ["service", "keys", "create", "--company", "acme", "--db", db,
                                          "--output", "json"]).stdout)
    assert made["key_id"].startswith("k_")
    r = runner.invoke(cli, ["service", "keys", "revoke", made["key_id"], "--db", db])
    assert r.exit_code == 0 and made["key_id"] in r.output
    again = runner.invoke(cli, ["service", "keys", "revoke", made["key_id"], "--db", db])
    assert again.exit_code == 2 and "no key with that id" in again.stderr
    secret = runner.invoke(cli, ["service", "keys", "revoke", made["key"], "--db", db])
    assert secret.exit_code == 2 and "stdin" in secret.stderr
    unknown = runner.invoke(cli, ["service", "keys", "revoke", "-", "--db", db], input="ak_nope\n")
    assert unknown.exit_code == 2 and "not a key of this store" in unknown.stderr


def test_rows_of_an_upload_whose_worker_is_killed_are_removed():
    import os
    import signal

    with LocalService(workers=1, tenants=1) as one:
        key = one.key
        sock = _stalled_upload(one, key, 20_000)
        try:
            deadline = time.monotonic() + 10
            while _stats(one, key, "company-1") < 20_000 and time.monotonic() < deadline:
                pass
            assert _stats(one, key, "company-1") == 20_000  # two batches committed, then the stall
            worker = httpx.get(f"{one.url}/health").json()["worker_pid"]
            os.kill(worker, signal.SIGKILL)
        finally:
            sock.close()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                health = httpx.get(f"{one.url}/health", timeout=2).json()
                if health["worker_pid"] != worker and _stats(one, key, "company-1") == 0:
                    break
        assert _stats(one, key, "company-1") == 0  # the supervisor deleted them when it reaped the worker
