"""The run journal: STATE_DIR/runs/RUN_ID/journal.jsonl, append-only, one JSON event per line,
flushed and fsynced as it goes, each line carrying the hash of the one before it (an edited or
truncated-in-the-middle journal is detected). After each line the run index (index.json beside it)
is replaced atomically with the record count and the last hash, so a journal cut short at the end (its
last lines deleted) is detected too. Every string is masked before it is written."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from opskit.errors import RuntimeFailure

GENESIS = "0" * 64


class Masker:
    """Replaces every secret value in text (and in nested data) with ***."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # longest first so a secret that contains another is masked whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for s in self.secrets:
            value = value.replace(s, "***")
        return value

    def data(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.data(v) for v in value]
        return value


def line_hash(prev: str, event: Mapping[str, object]) -> str:
    body = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev + body).encode()).hexdigest()


class Journal:
    def __init__(self, path: Path, masker: Masker, clock: Callable[[], dt.datetime]) -> None:
        self.path = path
        self.masker = masker
        self.clock = clock
        self.seq, self.prev = 0, GENESIS
        if path.exists():
            _drop_torn_tail(path)
            events = read_journal(path)
            if events:
                self.seq, self.prev = events[-1]["seq"], events[-1]["hash"]
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, event: str, **fields: Any) -> dict[str, Any]:
        from opskit.output import to_jsonable

        self.seq += 1
        record: dict[str, Any] = {"seq": self.seq, "ts": self.clock().isoformat(), "event": event}
        record.update(self.masker.data(to_jsonable(fields)))
        record["prev"] = self.prev
        record["hash"] = line_hash(self.prev, record)
        line = json.dumps(record, sort_keys=False, separators=(",", ":"), default=str) + "\n"
        # O_APPEND: a line is never interleaved or overwritten; fsync: it survives a crash right after
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.prev = record["hash"]
        _write_index(index_path(self.path), self.seq, self.prev)
        return record


def index_path(journal: Path) -> Path:
    return journal.with_name("index.json")


def _write_index(path: Path, records: int, last_hash: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"records": records, "last_hash": last_hash}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _check_index(path: Path, events: Sequence[Mapping[str, object]]) -> None:
    """The journal holds every record the index counts. One record more is a crash between writing a
    line and the index; fewer, or a different last hash, is a journal that lost its end."""
    index = index_path(path)
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        records, last = int(data["records"]), str(data["last_hash"])
    except FileNotFoundError:
        raise RuntimeFailure(f"{index}: no run index, so {path} cannot be checked for lost records; "
                             "the journal is damaged") from None
    except (OSError, ValueError, KeyError, TypeError):
        raise RuntimeFailure(f"{index}: not a run index; the journal is damaged") from None
    if len(events) < records or len(events) > records + 1 or (records and events[records - 1].get("hash") != last):
        raise RuntimeFailure(f"{path}: truncated: the run index counts {records} record(s), the journal has "
                             f"{len(events)}; the journal was altered")


def _drop_torn_tail(path: Path) -> None:
    """A line cut short by a crash mid-write is removed before appending, so it cannot end up
    in the middle of the journal."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as fh:
            fh.truncate(data.rfind(b"\n") + 1)


def read_journal(path: Path, *, verify: bool = True) -> list[dict[str, Any]]:
    """Events in order; RuntimeFailure when the chain is broken (edited, reordered, a line removed)."""
    try:
        # surrogateescape: a line of bytes that are not UTF-8 is reported as a damaged line below, with its
        # number, instead of failing the whole read
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise RuntimeFailure(f"{path}: no such journal") from None
    except OSError as exc:
        raise RuntimeFailure(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    events: list[dict[str, Any]] = []
    prev = GENESIS
    lines = text.splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if n == len(lines) and not text.endswith("\n"):
                break  # a last line cut short by a crash mid-write: everything before it stands
            raise RuntimeFailure(f"{path}:{n}: not a JSON line; the journal is damaged") from None
        if not isinstance(record, dict):
            raise RuntimeFailure(f"{path}:{n}: not a journal event (a JSON object); the journal is damaged")
        if verify:
            claimed = record.get("hash")
            body = {k: v for k, v in record.items() if k != "hash"}
            if record.get("prev") != prev or line_hash(prev, body) != claimed:
                raise RuntimeFailure(f"{path}:{n}: hash chain broken; the journal was altered")
            prev = claimed
        events.append(record)
    if verify:
        _check_index(path, events)
    return events
