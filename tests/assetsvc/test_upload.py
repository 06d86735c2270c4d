"""Uploads: the streamed parsers on their own (chunk boundaries), then over HTTP."""

from __future__ import annotations

import json
import sqlite3

import pytest

from opskit.assetsvc import upload
from opskit.assetsvc.upload import BATCH, PipelinedWriter, UploadError, parse_csv, parse_json


class RecordingWriter:
    """Stands in for the store's BulkWriter: the parsers only call add() with flat batches."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []
        self.batches: list[int] = []

    def add(self, flat):
        assert len(flat) % 3 == 0
        self.batches.append(len(flat) // 3)
        self.rows.extend(zip(flat[0::3], flat[1::3], flat[2::3], strict=True))

    def commit(self) -> int:
        return len(self.rows)

    def rollback(self) -> None:
        self.rows.clear()


def chunks(data: bytes, size: int):
    return iter([data[i:i + size] for i in range(0, len(data), size)])


CSV = (
    'address,latitude,longitude\n'
    '"12 Main St, Springfield",39.78,-89.65\n'
    'bad lat,abc,3\n'
    '"multi\nline",1,2\r\n'
    'out of range,91,0\n'
    '\n'
    'too,many,fields,here\n'
    ',1,2\n'
    '"Ünïcödé straße",-1.5,179.9\n'
).encode()


@pytest.mark.parametrize("size", [1, 2, 7, 64, 1 << 20])
def test_csv_rows_survive_any_chunking_and_bad_rows_are_reported(size):
    writer = RecordingWriter()
    result = parse_csv(chunks(CSV, size), "c1", writer)
    assert writer.rows == [("12 Main St, Springfield", 39.78, -89.65), ("multi\nline", 1.0, 2.0),
                           ("Ünïcödé straße", -1.5, 179.9)]
    assert (result.inserted, result.rejected) == (3, 4)
    assert [e["row"] for e in result.errors] == [2, 4, 5, 6]
    messages = [e["error"] for e in result.errors]
    assert "latitude: 'abc' is not a number" in messages[0]
    assert "latitude: 91 is outside [-90, 90]" in messages[1]
    assert "has 4 fields, the header has 3" in messages[2]
    assert "address: must not be empty" in messages[3]


def test_csv_company_column_must_match_the_key():
    data = b"company_id,address,latitude,longitude\nc1,a,1,2\nc2,b,1,2\n,c,3,4\n"
    writer = RecordingWriter()
    result = parse_csv(iter([data]), "c1", writer)
    assert [r[0] for r in writer.rows] == ["a", "c"]
    assert result.errors == [{"row": 2, "error": "line 3: company_id: 'c2' does not match the API key's company"}]


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"address,lat,longitude\n", "unknown CSV column 'lat'"),
    (b"address,latitude\n", "lacks column(s) longitude"),
    (b"address,latitude,latitude,longitude\n", "twice"),
    (b"address,latitude,longitude\n\xff\xfe\x01binary", "not UTF-8"),
    (b"address,latitude,longitude\na\x00b,1,2\n", "NUL"),
])
def test_unusable_csv_files_are_upload_errors(data, message):
    with pytest.raises(UploadError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_csv(iter([data]), "c1", RecordingWriter())


def big_csv(rows: int, bad: set[int], newline: str = "\n") -> tuple[bytes, list[tuple[str, float, float]]]:
    """`rows` data rows, the ones numbered in `bad` with a non-numeric latitude; every address is quoted and
    holds a comma, every 7th also a quoted quote and a line break (so a row spans two lines)."""
    lines, good = ["address,latitude,longitude"], []
    for i in range(1, rows + 1):
        address = f"{i} Main St, Springfield" + (f' ""{i}""{newline}rear' if i % 7 == 0 else "")
        lat, lon = round((i % 180) - 89.5, 4), round((i % 360) - 179.5, 4)
        lines.append(f'"{address}",{"north" if i in bad else lat},{lon}')
        if i not in bad:
            good.append((address.replace('""', '"'), lat, lon))
    return (newline.join(lines)).encode(), good  # no line end after the last row


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
@pytest.mark.parametrize("size", [4093, 65536])
def test_multi_batch_csv_keeps_rows_across_chunk_and_batch_boundaries(newline, size):
    rows = 2 * BATCH + 321
    bad = {1, BATCH, BATCH + 1, rows}  # first row, both sides of a batch boundary, the last row (last chunk)
    data, good = big_csv(rows, bad, newline)
    writer = RecordingWriter()
    result = parse_csv(chunks(data, size), "c1", writer)
    assert writer.rows == good
    assert sum(writer.batches) == rows - len(bad) and max(writer.batches) == BATCH
    assert (result.inserted, result.rejected) == (rows - len(bad), len(bad))
    assert [e["row"] for e in result.errors] == sorted(bad)
    # the file line: one header line, plus one extra line for every 7th (two-line) row before it
    assert result.errors[-1]["error"] == f"line {1 + rows + rows // 7}: latitude: 'north' is not a number"


def test_csv_quoting_crlf_bom_and_number_forms():
    data = ("\ufeffAddress, Latitude ,LONGITUDE\r\n"
            '"1 A St, ""Annex""",1e1, -2.5 \r\n'
            '"two\r\nlines",+0,-0\r\n'
            "nan,nan,1\r\n"
            "inf,1,-inf\r\n"
            '"unterminated,1,2\r\n').encode()
    writer = RecordingWriter()
    result = parse_csv(chunks(data, 5), "c1", writer)
    assert writer.rows == [('1 A St, "Annex"', 10.0, -2.5), ("two\r\nlines", 0.0, 0.0)]
    assert [(e["row"], e["error"]) for e in result.errors[:2]] == [
        (3, "line 5: latitude: must be a finite number"), (4, "line 6: longitude: must be a finite number")]
    assert result.errors[2]["row"] == 5 and "has 1 fields" in result.errors[2]["error"]
    assert (result.inserted, result.rejected) == (2, 3)


def test_errors_list_stops_at_100_but_counts_every_bad_row():
    data, good = big_csv(500, set(range(2, 500, 2)))
    writer = RecordingWriter()
    result = parse_csv(chunks(data, 1000), "c1", writer)
    assert (result.inserted, result.rejected, len(result.errors)) == (251, 249, 100)
    assert result.errors[-1]["row"] == 200 and writer.rows == good


def test_a_line_without_end_is_refused_before_it_fills_memory(monkeypatch):
    monkeypatch.setattr(upload, "MAX_LINE", 10_000)
    ok = b"address,latitude,longitude\n" + b"x,1,2\n" * 5_000  # long file, short lines: fine
    assert parse_csv(chunks(ok, 1000), "c1", RecordingWriter()).inserted == 5_000
    with pytest.raises(UploadError, match="a line is longer than 10000 bytes"):
        parse_csv(chunks(b"address,latitude,longitude\n" + b"x" * 20_000, 1000), "c1", RecordingWriter())


class FailingWriter(RecordingWriter):
    def __init__(self) -> None:
        super().__init__()
        self.rolled_back = False

    def add(self, flat):
        if self.batches:
            raise sqlite3.OperationalError("database is locked")
        super().add(flat)

    def rollback(self) -> None:
        self.rolled_back = True


def test_a_failing_writer_thread_stops_the_upload_and_rolls_back():
    data, _ = big_csv(4 * BATCH, set())
    inner = FailingWriter()
    writer = PipelinedWriter(inner)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        parse_csv(chunks(data, 65536), "c1", writer)
        writer.commit()
    writer.rollback()
    assert inner.rolled_back and inner.batches == [BATCH]


@pytest.mark.parametrize("size", [1, 3, 50, 1 << 20])
def test_json_elements_are_decoded_across_chunks(size):
    items = [{"address": "a", "latitude": 12.5, "longitude": 123456.0},
             {"address": "b", "latitude": 1, "longitude": 2, "extra": 1},
             {"address": "c", "latitude": -12.25, "longitude": 100.125},
             "not an object"]
    writer = RecordingWriter()
    result = parse_json(chunks(json.dumps(items, indent=1).encode(), size), "c1", writer)
    assert writer.rows == [("c", -12.25, 100.125)]
    assert [e["row"] for e in result.errors] == [1, 2, 4]
    assert "longitude: 123456 is outside [-180, 180]" in result.errors[0]["error"]
    assert "extra: unknown field" in result.errors[1]["error"]


@pytest.mark.parametrize("data, message", [
    (b"", "empty"), (b'{"address": "a"}', "must be an array"), (b'[{"a": 1}', "not closed"),
    (b'[{"a": 1} {"b": 2}]', "expected ',' or ']'"), (b'[{"a": tru}]', "malformed JSON"),
    (b'[] []', "after the JSON array"),
])
def test_malformed_json_uploads_are_upload_errors(data, message):
    with pytest.raises(UploadError, match=message):
        parse_json(chunks(data, 3), "c1", RecordingWriter())


# over HTTP ------------------------------------------------------------------------------------------

def _count(api) -> int:
    return api.get("/api/companies/company-3/stats").json()["assets"]


@pytest.mark.slow
def test_csv_upload_keeps_good_rows_and_reports_bad_ones(api_c):
    before = _count(api_c)
    r = api_c.post("/api/assets/upload", content=CSV, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200
    body = r.json()
    assert (body["inserted"], body["rejected"]) == (3, 4)
    assert body["errors"][0] == {"row": 2, "error": "line 3: latitude: 'abc' is not a number"}
    assert _count(api_c) == before + 3


@pytest.mark.slow
def test_multipart_and_json_uploads(api_c):
    before = _count(api_c)
    r = api_c.post("/api/assets/upload", files={"file": ("assets.csv", CSV, "text/csv")},
                   data={"note": "ignored"})
    assert r.status_code == 200 and r.json()["inserted"] == 3
    items = [{"address": f"{i} Oak Ave", "latitude": 10, "longitude": 20} for i in range(5)] + [{"address": 1}]
    r = api_c.post("/api/assets/upload", files={"file": ("assets.json", json.dumps(items).encode(),
                                                         "application/octet-stream")})
    assert r.status_code == 200
    assert (r.json()["inserted"], r.json()["rejected"], r.json()["file_type"]) == (5, 1, "json")
    r = api_c.post("/api/assets/upload", content=json.dumps(items), headers={"Content-Type": "application/json"})
    assert r.json()["inserted"] == 5
    assert _count(api_c) == before + 13


@pytest.mark.slow
@pytest.mark.parametrize("body, ctype, status, word", [
    (b"address,latitude,longitude\n" + b"x" * 1200 + b",1,2\n" * 1, "text/csv", 200, "inserted"),
    (b"address,latitude,longitude\n" + b"12 Some Street,1,2\n" * 60_000, "text/csv", 413, "limit"),
    (b"[" + b'{"address":"a","latitude":1,"longitude":2},' * 7000 + b"{}]", "application/json", 413, "limit"),
    (b"address,lat,lon\n1,2,3\n", "text/csv", 400, "unknown CSV column 'lat'"),
    (bytes(range(1, 256)) * 50, "text/csv", 400, "UTF-8"),
    (b"address,latitude,longitude\n" + bytes(256), "text/csv", 400, "NUL bytes"),
    (b'[{"address": "a", "latitude": 1, "longitude": 2}, {"add', "application/json", 400, "malformed JSON"),
    (b"address,latitude,longitude\n", "image/png", 415, "unsupported content type"),
])
def test_bad_uploads_are_4xx_and_keep_nothing(api_c, body, ctype, status, word):
    before = _count(api_c)
    r = api_c.post("/api/assets/upload", content=body, headers={"Content-Type": ctype})
    assert r.status_code == status, r.text
    if status == 200:  # an over-long address is one rejected row, not a failed upload
        assert r.json()["rejected"] == 1 and "address" in r.json()["errors"][0]["error"]
    else:
        assert word in r.json()["error"]
    assert _count(api_c) == before
    assert api_c.get("/health").status_code == 200


@pytest.mark.slow
def test_streamed_body_over_the_limit_without_content_length_is_413(api_c):
    before = _count(api_c)

    def gen():
        yield b"address,latitude,longitude\n"
        for _ in range(200):
            yield b"12 Some Street,1,2\n" * 400

    r = api_c.post("/api/assets/upload", content=gen(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 413
    assert _count(api_c) == before


@pytest.mark.slow
def test_multipart_without_a_file_part_is_400(api_c):
    r = api_c.post("/api/assets/upload", data={"other": "x"}, files={"attachment": ("a.csv", b"a", "text/csv")})
    assert r.status_code == 400 and "'file' part" in r.json()["error"]
    r = api_c.post("/api/assets/upload", files={"file": ("a.png", b"\x89PNG", "image/png")})
    assert r.status_code == 415 and "neither CSV nor JSON" in r.json()["error"]


@pytest.mark.slow
def test_streamed_multi_batch_csv_over_http_keeps_every_good_row(api_c):
    rows = 2 * BATCH + 17
    data, good = big_csv(rows, {BATCH + 1, rows}, "\r\n")
    sizes = [1, 2, 3, 4093, 65536]  # odd pieces: rows, CRLFs and quoted line breaks cut everywhere

    def gen():
        pos, i = 0, 0
        while pos < len(data):
            yield data[pos:pos + sizes[i % len(sizes)]]
            pos += sizes[i % len(sizes)]
            i += 1

    before = _count(api_c)
    r = api_c.post("/api/assets/upload", content=gen(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["inserted"], body["rejected"], body["bytes"]) == (rows - 2, 2, len(data))
    assert [e["row"] for e in body["errors"]] == [BATCH + 1, rows]
    assert _count(api_c) == before + rows - 2
    stored, cursor = [], None
    while len(stored) < before + rows - 2:
        page = api_c.get("/api/assets", params={"limit": 500, **({"cursor": cursor} if cursor else {})}).json()
        stored += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    mine = stored[-(rows - 2):]
    assert [(a["address"], a["latitude"], a["longitude"]) for a in mine] == good
    assert len({a["created_at"] for a in mine}) == 1 and all(a["updated_at"] == a["created_at"] for a in mine)
