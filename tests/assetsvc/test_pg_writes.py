"""Group commit of POST /api/assets on PostgreSQL (batcher.py + PostgresStorage.create_many), against the
PostgreSQL that conftest's `postgresql` fixture starts with the stack's code: concurrent writes share a
commit and each gets its own answer; a row the store refuses fails alone; a full queue is a 503 with
Retry-After; a 201 is durable."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

from opskit.assetsvc.batcher import WriteBatcher
from opskit.assetsvc.errors import ApiError
from opskit.localservice import LocalService

pytestmark = pytest.mark.slow

NUL = "12 Null\x00Byte Rd"  # valid JSON text that PostgreSQL's text type cannot hold


@pytest.fixture
def sql(postgresql, monkeypatch):
    """A connection of the test's own (autocommit), e.g. to hold a lock on the table."""
    import psycopg

    url, env = postgresql
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with psycopg.connect(url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def writer() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True)


def _asset(i: int) -> tuple[str, float, float]:
    return (f"{i} Batch St", 10.0 + i / 1000, -20.0 - i / 1000)


async def _settle(coros: list[Any]) -> list[Any]:
    return await asyncio.gather(*coros, return_exceptions=True)


def test_concurrent_creates_share_one_commit_and_each_gets_its_own_ids(pg_store, sql, writer):
    company = "batch-many"
    batcher = WriteBatcher(pg_store.create_many, writer)

    async def run() -> list[Any]:
        return await _settle([batcher.create(company, [_asset(i)]) for i in range(50)]
                             + [batcher.create(company, [_asset(100), _asset(101)])])

    results = asyncio.run(run())
    assert batcher.batches == 1  # all 51 were queued before the first batch was taken
    ids = [a["id"] for created in results for a in created]
    assert len(ids) == 52 and len(set(ids)) == 52
    # each request got its own rows back, in its order
    assert [r[0]["address"] for r in results[:50]] == [f"{i} Batch St" for i in range(50)]
    assert [a["address"] for a in results[50]] == ["100 Batch St", "101 Batch St"]
    assert results[7][0]["latitude"] == pytest.approx(10.007) and results[7][0]["company_id"] == company
    rows = sql.execute("SELECT id, address, created_at FROM assets WHERE company_id = %s", (company,)).fetchall()
    assert {r[0]: r[1] for r in rows} == {a["id"]: a["address"] for created in results for a in created}
    assert len({r[2] for r in rows}) == 1  # one transaction: the same now() for every row


def test_a_row_the_store_refuses_fails_alone_among_concurrent_good_ones(pg_store, sql, writer):
    company = "batch-bad"
    batcher = WriteBatcher(pg_store.create_many, writer)

    async def run() -> list[Any]:
        return await _settle([batcher.create(company, [_asset(i)]) for i in range(10)]
                             + [batcher.create(company, [_asset(10), (NUL, 1.0, 2.0)])]
                             + [batcher.create(company, [_asset(i)]) for i in range(11, 20)])

    results = asyncio.run(run())
    bad = results[10]
    assert isinstance(bad, ApiError) and bad.status == 422 and "refused" in bad.message
    good = [r for i, r in enumerate(results) if i != 10]
    assert all(isinstance(r, list) and len(r) == 1 for r in good), results
    stored = sql.execute("SELECT address FROM assets WHERE company_id = %s ORDER BY id", (company,)).fetchall()
    # the refused request's good row went with it (a request is all or nothing); every other row is kept
    assert [a for (a,) in stored] == [f"{i} Batch St" for i in (*range(10), *range(11, 20))]


def _wait_for_lock_wait(sql) -> None:
    """Until a backend waits for the lock on `assets` the test's connection holds (the batch's INSERT).
    pg_locks, not pg_stat_activity: that one is a snapshot taken once per transaction of the reader."""
    deadline = time.monotonic() + 10
    while not sql.execute("SELECT count(*) FROM pg_locks WHERE relation = 'assets'::regclass "
                          "AND NOT granted").fetchone()[0]:
        assert time.monotonic() < deadline, "no INSERT ever waited for the lock"
        time.sleep(0.02)


def test_a_full_queue_answers_503_with_retry_after_and_a_stale_request_is_never_written(pg_store, sql, writer):
    company = "batch-full"
    batcher = WriteBatcher(pg_store.create_many, writer, max_queued_rows=3, queue_wait_s=1.0)

    async def run() -> tuple[Any, list[Any], ApiError]:
        first = asyncio.ensure_future(batcher.create(company, [_asset(0)]))
        # taken, and its batch waits for the test's lock
        await asyncio.get_running_loop().run_in_executor(None, _wait_for_lock_wait, sql)
        queued = [asyncio.ensure_future(batcher.create(company, [_asset(i)])) for i in (1, 2, 3)]
        await asyncio.sleep(0)  # let them queue
        assert batcher.queued_rows == 3
        with pytest.raises(ApiError) as full:
            await batcher.create(company, [_asset(4)])
        stale = await _settle(queued)  # nobody takes them while the batch hangs: 503 after queue_wait_s
        sql.execute("ROLLBACK")  # the lock goes; the first batch commits
        return await first, stale, full.value

    sql.execute("BEGIN")
    sql.execute("LOCK TABLE assets IN SHARE MODE")  # inserts wait; reads do not
    try:
        first, stale, full = asyncio.run(run())
    finally:
        if sql.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            sql.execute("ROLLBACK")  # a failure must not leave the writer thread waiting for the lock
    assert full.status == 503 and full.headers == {"Retry-After": "1"}
    assert all(isinstance(s, ApiError) and s.status == 503 and s.headers["Retry-After"] == "1" for s in stale)
    assert first[0]["address"] == "0 Batch St"  # the taken one waited for its commit, past queue_wait_s
    stored = sql.execute("SELECT address FROM assets WHERE company_id = %s", (company,)).fetchall()
    assert stored == [("0 Batch St",)]  # none of the refused or stale ones
    assert batcher.queued_rows == 0


def test_a_queued_request_that_is_cancelled_is_not_written(pg_store, sql, writer):
    company = "batch-gone"
    batcher = WriteBatcher(pg_store.create_many, writer)

    async def run() -> Any:
        first = asyncio.ensure_future(batcher.create(company, [_asset(0)]))
        await asyncio.get_running_loop().run_in_executor(None, _wait_for_lock_wait, sql)
        gone = asyncio.ensure_future(batcher.create(company, [_asset(1)]))
        await asyncio.sleep(0)
        assert batcher.queued_rows == 1
        gone.cancel()  # the request task is cancelled (a client gone, a worker stopping)
        await _settle([gone])
        assert batcher.queued_rows == 0
        sql.execute("ROLLBACK")
        return await first

    sql.execute("BEGIN")
    sql.execute("LOCK TABLE assets IN SHARE MODE")
    try:
        first = asyncio.run(run())
    finally:
        if sql.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            sql.execute("ROLLBACK")
    assert len(first) == 1
    assert sql.execute("SELECT address FROM assets WHERE company_id = %s", (company,)).fetchall() == [("0 Batch St",)]


def test_over_http_concurrent_posts_get_distinct_ids_one_bad_fails_alone_and_every_201_survives_kill_9(
        postgresql) -> None:
    url, env = postgresql
    with LocalService(workers=2, tenants=1, db=url, extra_env=env) as svc:
        headers = {"Authorization": f"Bearer {svc.key}"}

        def post(i: int) -> httpx.Response:
            body = {"address": NUL if i == 37 else f"{i} Http St", "latitude": 1.5, "longitude": 2.5}
            with httpx.Client(base_url=svc.url, headers=headers, timeout=30, trust_env=False) as c:
                return c.post("/api/assets", json=body)

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(post, range(200)))
        bad = answers.pop(37)
        assert bad.status_code == 422 and "refused" in bad.json()["error"], bad.text
        assert [r.status_code for r in answers] == [201] * 199, {r.status_code for r in answers}
        ids = [r.json()["id"] for r in answers]
        assert len(set(ids)) == 199
        assert sorted(r.json()["address"] for r in answers) == sorted(f"{i} Http St" for i in range(200) if i != 37)
        svc.kill()  # SIGKILL, right after the answers
        svc.restart()
        with httpx.Client(base_url=svc.url, headers=headers, timeout=30, trust_env=False) as c:
            got = [c.get(f"/api/assets/{i}") for i in ids]
        assert [g.status_code for g in got] == [200] * 199
        assert {g.json()["id"] for g in got} == set(ids)
