"""Streamed parsing of uploaded CSV and JSON files into batches of valid assets (FlatAssets lists).

Pure of HTTP: the parsers take an iterator of byte chunks (fed from the request body as it arrives)
and a BulkWriter; memory stays bounded by a few batches and chunks whatever the file size. Bad rows are
skipped and reported; a file that cannot be parsed at all (not UTF-8, no header, broken JSON) is an
UploadError and the caller rolls the whole upload back.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain

from opskit.assetsvc.storage import BulkWriter, FlatAssets, NewAsset
from opskit.assetsvc.validation import (
    MAX_ADDRESS,
    FieldError,
    check_company,
    parse_coordinate,
    validate_object,
)

BATCH = 10_000  # rows handed to the writer at once (a few MB of Python objects)
MAX_LINE = 1024 * 1024  # no asset row comes near it; guards memory against a file without line ends
NAN = float("nan")
MAX_ERRORS = 100  # reported in full; the count covers all of them
MAX_JSON_ELEMENT = 1024 * 1024
CSV_COLUMNS = ("address", "latitude", "longitude")

csv.field_size_limit(MAX_ADDRESS * 4)


class UploadError(ValueError):
    """The file as a whole is unusable: 400 and nothing is kept."""


@dataclass
class UploadResult:
    inserted: int = 0
    rejected: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def reject(self, row: int, error: str) -> None:
        self.rejected += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"row": row, "error": error})


def _text(chunks: Iterator[bytes]) -> Iterator[str]:
    decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")
    offset = 0
    for chunk in chunks:
        try:
            text = decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise UploadError(f"the file is not UTF-8 text (bad byte at offset {offset + exc.start})") from None
        offset += len(chunk)
        if "\x00" in text:
            raise UploadError(f"the file contains NUL bytes (binary data?) near offset {offset}")
        yield text
    try:
        tail = decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise UploadError("the file ends in the middle of a UTF-8 character") from None
    if tail:
        yield tail


def _line_blocks(texts: Iterator[str]) -> Iterator[str]:
    """The text cut after its last '\n': every block but the last holds whole lines only."""
    pending = ""
    for text in texts:
        cut = text.rfind("\n") + 1
        if not cut:  # no line ends in this chunk: keep collecting, but not forever
            pending += text
            if len(pending) > MAX_LINE:
                raise UploadError(f"a line is longer than {MAX_LINE} bytes: not a CSV of assets (or its lines "
                                  "end in a bare \\r)")
            continue
        yield pending + text[:cut]
        pending = text[cut:]
    if pending:
        yield pending


def _lines(chunks: Iterator[bytes]) -> Iterator[str]:
    # Lines end at '\n' only (csv handles '\r\n' and newlines inside quotes). StringIO splits each block and
    # chain() joins them, both in C: no Python-level work per line (measured: faster than splitting in a
    # generator or csv.reader over io.TextIOWrapper).
    return chain.from_iterable(map(io.StringIO, _line_blocks(_text(chunks))))


def parse_csv(chunks: Iterator[bytes], company_id: str, writer: BulkWriter) -> UploadResult:
    result = UploadResult()
    reader = csv.reader(_lines(chunks))
    try:
        header = next(reader)
    except StopIteration:
        raise UploadError("the CSV file is empty (expected a header: address,latitude,longitude)") from None
    except csv.Error as exc:
        raise UploadError(f"the CSV header cannot be read: {exc}") from None
    names = [h.strip().lower() for h in header]
    for name in names:
        if name not in (*CSV_COLUMNS, "company_id"):
            raise UploadError(f"unknown CSV column {name!r} (expected address, latitude, longitude[, company_id])")
    if len(set(names)) != len(names):
        raise UploadError("the CSV header names a column twice")
    missing = [c for c in CSV_COLUMNS if c not in names]
    if missing:
        raise UploadError(f"the CSV header lacks column(s) {', '.join(missing)}")
    ia, ila, ilo = (names.index(c) for c in CSV_COLUMNS)
    ico = names.index("company_id") if "company_id" in names else -1
    own = ("", company_id)  # the company cells the fast path accepts as they are
    width = len(names)
    full = 3 * BATCH
    batch: FlatAssets = []
    row = 0
    while True:
        try:
            # this loop is the upload's hot path: the common row costs no function call of ours, no tuple
            # and no exception; anything unusual goes to _csv_row, which names the problem
            for cells in reader:
                row += 1
                if len(cells) == width and (ico < 0 or cells[ico].strip() in own):
                    address = cells[ia].strip()
                    try:
                        lat = float(cells[ila])
                        lon = float(cells[ilo])
                    except ValueError:
                        lat = lon = NAN
                    if -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0 and address and len(address) <= MAX_ADDRESS:
                        batch += (address, lat, lon)
                        if len(batch) >= full:
                            writer.add(batch)
                            batch = []
                        continue
                elif not cells:
                    row -= 1  # a blank line is no row
                    continue
                try:
                    batch += _csv_row(cells, width, ia, ila, ilo, ico, company_id)
                except FieldError as exc:
                    result.reject(row, f"line {reader.line_num}: {exc}")
        except csv.Error as exc:  # the reader resumes on the next line
            row += 1
            result.reject(row, f"line {reader.line_num}: malformed CSV: {exc}")
            continue
        break
    if batch:
        writer.add(batch)
    result.inserted = row - result.rejected
    return result


def _csv_row(cells: list[str], width: int, ia: int, ila: int, ilo: int, ico: int, company_id: str) -> NewAsset:
    if len(cells) != width:
        raise FieldError("row", f"has {len(cells)} fields, the header has {width}")
    if ico >= 0:
        check_company(cells[ico].strip(), company_id)
    address = cells[ia].strip()
    if not address:
        raise FieldError("address", "must not be empty")
    if len(address) > MAX_ADDRESS:
        raise FieldError("address", f"longer than {MAX_ADDRESS} characters")
    return address, parse_coordinate("latitude", cells[ila], 90.0), parse_coordinate("longitude", cells[ilo], 180.0)


def parse_json(chunks: Iterator[bytes], company_id: str, writer: BulkWriter) -> UploadResult:
    result = UploadResult()
    batch: FlatAssets = []
    for index, obj in enumerate(_json_array(_text(chunks)), start=1):
        try:
            batch += validate_object(obj, company_id)
        except FieldError as exc:
            result.reject(index, str(exc))
            continue
        result.inserted += 1
        if len(batch) >= 3 * BATCH:
            writer.add(batch)
            batch = []
    if batch:
        writer.add(batch)
    return result


_WS = " \t\r\n"


def _json_array(texts: Iterator[str]) -> Iterator[object]:
    """The elements of one top-level JSON array, decoded one by one as the text arrives."""
    decoder = json.JSONDecoder()
    buf, pos, eof, consumed = "", 0, False, 0

    def more() -> bool:
        nonlocal buf, pos, eof, consumed
        if eof:
            return False
        try:
            text = next(texts)
        except StopIteration:
            eof = True
            return False
        consumed += pos
        buf, pos = buf[pos:] + text, 0
        return True

    def skip_ws() -> bool:
        nonlocal pos
        while True:
            while pos < len(buf) and buf[pos] in _WS:
                pos += 1
            if pos < len(buf):
                return True
            if not more():
                return False

    if not skip_ws():
        raise UploadError("the JSON body is empty (expected an array of assets)")
    if buf[pos] != "[":
        raise UploadError("the JSON body must be an array of assets")
    pos += 1
    first = True
    while True:
        if not skip_ws():
            raise UploadError("the JSON array is not closed (missing ']')")
        if buf[pos] == "]":
            pos += 1
            break
        if not first:
            if buf[pos] != ",":
                raise UploadError(f"malformed JSON at character {consumed + pos}: expected ',' or ']'")
            pos += 1
            if not skip_ws():
                raise UploadError("the JSON array is not closed (missing ']')")
        first = False
        while True:
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as exc:
                if len(buf) - pos > MAX_JSON_ELEMENT:
                    raise UploadError(f"malformed JSON at character {consumed + exc.pos}: {exc.msg} (or an "
                                      f"array element larger than {MAX_JSON_ELEMENT} bytes)") from None
                if more():
                    continue
                raise UploadError(f"malformed JSON at character {consumed + exc.pos}: {exc.msg}") from None
            except RecursionError:
                raise UploadError(f"the JSON element at character {consumed + pos} is nested too deeply") from None
            except ValueError as exc:  # an integer with more digits than Python reads (3.11+)
                raise UploadError(f"the JSON element at character {consumed + pos} cannot be read: {exc}") from None
            # an element that ends exactly at the end of the text so far may be a number cut in two
            if end == len(buf) and more():
                continue
            break
        pos = end
        yield obj
    if skip_ws():
        raise UploadError(f"unexpected data after the JSON array at character {consumed + pos}")


class PipelinedWriter:
    """Runs the store's add() in a thread of its own, so parsing the next batch overlaps with inserting
    this one: sqlite3 releases the GIL while SQLite works, and as the store inserts a batch with one
    statement, the writer holds the GIL only to bind it. At most `depth` batches wait in between."""

    def __init__(self, inner: BulkWriter, depth: int = 2) -> None:
        import queue
        import threading

        self._inner = inner
        self._q: queue.Queue[FlatAssets | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="upload-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            rows = self._q.get()
            if rows is None:
                return
            if self._error is None:
                try:
                    self._inner.add(rows)
                except BaseException as exc:  # handed to the parser thread at its next call
                    self._error = exc

    def add(self, flat: FlatAssets) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(flat)

    def _join(self) -> None:
        self._q.put(None)
        self._thread.join()

    def commit(self) -> int:
        self._join()
        if self._error is not None:
            self._inner.rollback()
            raise self._error
        return self._inner.commit()

    def rollback(self) -> None:
        self._join()
        self._inner.rollback()
