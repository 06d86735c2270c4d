"""The Storage contract, run against SQLiteStorage directly (a PostgreSQL backend would run the same)."""

from __future__ import annotations

import json

import pytest

from opskit.assetsvc.sqlite import SQLiteStorage
from opskit.assetsvc.storage import Storage


@pytest.fixture
def store(tmp_path):
    s: Storage = SQLiteStorage(str(tmp_path / "db" / "a.db"))
    yield s
    s.close()


def test_create_list_get_delete_are_scoped_by_company(store):
    a = store.create("acme", [("1 A St", 1.0, 2.0), ("2 B St", -3.5, 4.25)])
    b = store.create("other", [("3 C St", 5.0, 6.0)])
    assert [x["company_id"] for x in a] == ["acme", "acme"] and a[0]["id"] < a[1]["id"]
    page, last = store.list_json("acme", 0, 1)
    assert json.loads(page)[0]["address"] == "1 A St" and last == a[0]["id"]
    page, last = store.list_json("acme", a[0]["id"], 5)
    assert [x["id"] for x in json.loads(page)] == [a[1]["id"]] and last is None
    assert json.loads(store.get_json("acme", a[1]["id"]))["longitude"] == 4.25
    assert store.get_json("acme", b[0]["id"]) is None
    assert store.delete("acme", [b[0]["id"], a[0]["id"], 999]) == 1
    assert store.stats("acme").assets == 1 and store.stats("other").assets == 1
    assert store.totals()[0] == 2


def test_bulk_writes_are_one_transaction(store):
    w = store.bulk("acme")
    w.add(["x", 1.0, 1.0] * 10)
    w.rollback()
    assert store.stats("acme").assets == 0
    w = store.bulk("acme")
    w.add(["x", 1.0, 1.0] * 10)
    w.add(["y", 2.0, 2.0] * 5)
    assert w.commit() == 15
    assert store.stats("acme").assets == 15


@pytest.mark.parametrize("per_insert", [4, 20, 10_000])
def test_bulk_batches_of_any_size_keep_every_row_in_order(store, monkeypatch, per_insert):
    from opskit.assetsvc import sqlitebulk

    monkeypatch.setattr(sqlitebulk, "ROWS_PER_INSERT", per_insert)
    rows = [(f"{i} Bulk Rd, 'quoted'", i / 1000, -i / 1000) for i in range(23)]
    flat = [v for row in rows for v in row]
    w = store.bulk("acme")
    for piece in (flat[:3], flat[3:30], flat[30:]):  # 1, 9 and 13 rows: whole statements and remainders
        w.add(piece)
    with pytest.raises(ValueError, match="3 values per asset"):
        w.add(flat[:4])
    assert w.commit() == 23
    page = json.loads(store.list_json("acme", 0, 100)[0])
    assert [(a["address"], a["latitude"], a["longitude"]) for a in page] == rows
    assert len({(a["created_at"], a["updated_at"]) for a in page}) == 1  # one timestamp per upload
    # the next upload reuses the pooled connection and its statements: its own company and rows
    w = store.bulk("beta")
    w.add(flat[3:30])
    assert w.commit() == 9
    page = json.loads(store.list_json("beta", 0, 100)[0])
    assert [(a["company_id"], a["address"]) for a in page] == [("beta", r[0]) for r in rows[1:10]]
    assert store.stats("acme").assets == 23


def test_keys_are_stored_hashed_and_resolve_to_company_and_tier(store):
    key = store.create_key("acme", "pro")
    record = store.lookup_key(key)
    assert record is not None and (record.company_id, record.tier) == ("acme", "pro")
    assert store.lookup_key(key + "x") is None


def test_changed_names_the_companies_every_kind_of_write_touched(store, tmp_path):
    other = SQLiteStorage(str(tmp_path / "db" / "a.db"))
    try:
        store.changed()
        (made,) = other.create("acme", [("z", 0.0, 0.0)])
        assert store.changed() == {"acme"}
        assert store.changed() is False
        other.create("beta", [("y", 1.0, 1.0)])
        other.create("gamma", [("x", 1.0, 1.0)])
        assert store.changed() == {"beta", "gamma"}  # both commits since the last look
        assert other.delete("beta", [made["id"]]) == 0  # acme's asset: nothing deleted, nothing changed
        assert store.changed() is False
        assert other.delete("acme", [made["id"]]) == 1
        assert store.changed() == {"acme"}
        writer = other.bulk("delta")
        writer.add(["1 Up St", 1.0, 2.0])
        assert store.changed() == {"delta"}  # a committed batch is visible to its company
        writer.commit()
        assert store.changed() == {"delta"}
        failed = other.bulk("eps")
        failed.add(["2 Up St", 1.0, 2.0])
        assert store.changed() == {"eps"}
        failed.rollback()
        assert store.changed() == {"eps"}  # its rows are gone again
        other.seed([("zeta", "3 Seed St", 1.0, 1.0, "2026-01-01T00:00:00.000Z")])
        assert store.changed() == {"zeta"}
        other.create_key("acme", "pro")  # a commit that names no company: every cached page may be stale
        assert store.changed() is True
    finally:
        other.close()


def test_changed_sees_every_commit_and_costs_no_statement_when_nothing_changed(store, tmp_path):
    import sqlite3

    path = str(tmp_path / "db" / "a.db")
    store.changed()
    statements: list[str] = []
    store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    other = sqlite3.connect(path, isolation_level=None)
    try:
        for i in range(30):
            assert store.changed() is False
            other.execute("INSERT INTO assets (company_id, address, latitude, longitude, created_at, updated_at) "
                          "VALUES ('acme', ?, 0, 0, '', '')", (f"{i} Main St",))
            if i % 7 == 0:  # a WAL restart rewrites the header from scratch: still seen as a change
                other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            assert store.changed() is True
    finally:
        other.close()
    # a look with nothing committed is one read of the WAL-index header, not a statement
    # (the trace also shows the pragma function's own inner statement, as a "--" comment line)
    assert len([text for text in statements if not text.startswith("--")]) == 30


def test_run_dirs_of_dead_supervisors_are_removed(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys
    import tempfile

    from opskit.assetsvc.supervisor import remove_stale_run_dirs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()  # its pid now belongs to no process
    for name, pid in (("assetsvc-dead", finished.pid), ("assetsvc-live", os.getpid())):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pids").write_text(f"{pid} 123")
    (tmp_path / "assetsvc-starting").mkdir()  # no pids file yet: left alone
    remove_stale_run_dirs()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assetsvc-live", "assetsvc-starting"]


def test_an_upload_between_batches_leaves_the_write_lock_free_and_rollback_removes_its_batches(store, tmp_path):
    other = SQLiteStorage(store.path, busy_timeout_s=0.2)  # another worker: 200 ms for the lock, no more
    try:
        other.create("acme", [("kept", 1.0, 1.0)])
        w = store.bulk("acme")
        w.add(["x", 1.0, 1.0] * 10)
        w.add(["y", 2.0, 2.0] * 5)
        # the upload is waiting for its next bytes: another tenant writes without waiting for it
        created = other.create("beta", [("b", 3.0, 3.0)])
        assert other.delete("beta", [created[0]["id"]]) == 1
        assert other.stats("acme").assets == 16  # the uploader's own rows are visible meanwhile
        other.create("acme", [("during", 1.0, 1.0)])  # an id between two batches of the upload
        w.add(["z", 1.0, 1.0] * 3)
        w.rollback()
        page = json.loads(other.list_json("acme", 0, 100)[0])
        assert [a["address"] for a in page] == ["kept", "during"]
    finally:
        other.close()


def test_unfinished_uploads_of_a_dead_worker_are_discarded(store):
    import os

    w = store.bulk("acme")
    w.add(["x", 1.0, 1.0] * 7)  # the worker dies here: neither commit nor rollback
    done = store.bulk("acme")
    done.add(["y", 1.0, 1.0] * 2)
    assert done.commit() == 2
    assert store.discard_unfinished_uploads(os.getpid() + 1) == 0  # another worker's: not these
    assert store.discard_unfinished_uploads(os.getpid()) == 7
    assert store.stats("acme").assets == 2
    w.add(["x", 1.0, 1.0] * 3)
    assert store.discard_unfinished_uploads() == 3  # at start: every unfinished upload


def test_a_revoked_key_no_longer_resolves(store):
    key = store.create_key("acme", "pro")
    record = store.lookup_key(key)
    assert record is not None
    assert store.revoke_key(record.key_id) == record
    assert store.lookup_key(key) is None
    assert store.revoke_key(record.key_id) is None


def _wal_frames(path: str) -> tuple[int, int]:
    """(frames in the WAL, frames already copied into the database) from the WAL-index header."""
    import struct

    with open(path + "-shm", "rb") as f:
        head = f.read(136)
    return struct.unpack_from("=I", head, 16)[0], struct.unpack_from("=I", head, 96)[0]


def test_uploads_checkpoint_the_wal_when_the_last_one_of_a_burst_ends(store, tmp_path):
    import threading
    import time

    path = str(tmp_path / "db" / "a.db")
    first, second = store.bulk("acme"), store.bulk("beta")
    first.add(["1 Wal St", 1.0, 1.0] * 2000)
    second.add(["2 Wal St", 1.0, 1.0] * 2000)
    first.commit()
    frames, copied = _wal_frames(path)
    assert frames > copied  # another upload is still writing: no checkpoint yet
    assert not any(t.name == "wal-checkpoint" for t in threading.enumerate())
    second.commit()
    deadline = time.monotonic() + 20
    while _wal_frames(path)[1] < _wal_frames(path)[0]:  # the last one's end copies everything
        assert time.monotonic() < deadline, _wal_frames(path)
    assert store.stats("acme").assets == 2000 and store.stats("beta").assets == 2000
