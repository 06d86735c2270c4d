"""Uploads: the streamed parsers on their own (chunk boundaries), then over HTTP."""

from __future__ import annotations

import json

import pytest

from opskit.assetsvc.upload import UploadError, parse_csv, parse_json


class RecordingWriter:
    """Stands in for the store's BulkWriter: the parsers only call add()."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, float, float]] = []

    def add(self, rows):
        self.rows.extend(rows)

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
