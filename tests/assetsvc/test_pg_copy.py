"""The PostgreSQL upload path (one COPY per upload, timestamps from the columns' defaults), against the
PostgreSQL that conftest's `postgresql` fixture starts with the stack's code."""

from __future__ import annotations

import datetime as dt
import json

import pytest

pytestmark = pytest.mark.slow


def _utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_an_uploads_rows_share_the_transactions_start_as_created_and_updated_at(pg_store):
    company = "copy-ts"
    before = dt.datetime.now(dt.UTC)
    writer = pg_store.bulk(company)
    writer.add(["1 Tab\tStreet", 39.5, -104.25, "2 Back\\slash Rd", -12.125, 77.0])
    writer.add(["3 Line\nBreak Ave", 0.0, 0.0])
    assert writer.commit() == 3
    after = dt.datetime.now(dt.UTC)
    data, _ = pg_store.list_json(company, 0, 10)
    rows = json.loads(data)
    assert [r["address"] for r in rows] == ["1 Tab\tStreet", "2 Back\\slash Rd", "3 Line\nBreak Ave"]
    assert [(r["latitude"], r["longitude"]) for r in rows] == [(39.5, -104.25), (-12.125, 77.0), (0.0, 0.0)]
    stamps = {r["created_at"] for r in rows} | {r["updated_at"] for r in rows}
    assert len(stamps) == 1  # one upload, one time: its transaction's start
    stamp = _utc(stamps.pop())
    assert before - dt.timedelta(seconds=1) <= stamp <= after


def test_a_rolled_back_upload_leaves_no_row(pg_store):
    writer = pg_store.bulk("copy-rollback")
    writer.add(["kept? no", 1.0, 2.0])
    writer.rollback()
    assert pg_store.list_json("copy-rollback", 0, 10)[0] == "[]"
