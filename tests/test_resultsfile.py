"""The one reader of results.json: every way a file can be unusable is named, with a kind each caller maps
to its own exit code (gate 3; scale check and capacity 2 for a missing file and 3 for a bad one)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from opskit.resultsfile import UnreadableResults, load, newest, parse

GOOD = {"schema_version": 1, "run": {"scenario": "smoke", "valid": True}, "steps": []}


def write(path: Path, body: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(body, bytes):
        path.write_bytes(body)
    else:
        path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "kind", "words"),
    [
        ("", "empty", "the file is empty"),
        (" \n\t", "empty", "the file is empty"),
        (json.dumps(GOOD)[:-5], "json", "r.json:1: not valid JSON: truncated"),
        ("{'single': 'quotes'}", "json", "r.json:1: not valid JSON: Expecting property name"),
        ("[1, 2]", "schema", "expected a JSON object at the top level"),
        ('{"schema_version": 3}', "schema", "schema_version is 3; this opskit reads schema_version 2 (and 1)"),
        ('{"run": {}}', "schema", "schema_version is None"),
    ],
)
def test_each_unusable_text_is_named(body: str, kind: str, words: str) -> None:
    with pytest.raises(UnreadableResults) as info:
        parse(body, "r.json")
    assert info.value.kind == kind
    assert str(info.value).startswith("r.json") and words in str(info.value)


def test_a_truncated_file_is_not_mistaken_for_a_corrupt_one() -> None:
    with pytest.raises(UnreadableResults, match="not valid JSON: Expecting ','") as info:
        parse('{"schema_version": 1 "run": {}}', "r.json")
    assert "truncated" not in str(info.value)


def test_missing_and_unreadable_files_are_the_files_fault(tmp_path: Path) -> None:
    with pytest.raises(UnreadableResults, match="nope.json: no such results file") as missing:
        load(tmp_path / "nope.json")
    png = write(tmp_path / "png.json", b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(UnreadableResults, match="png.json: cannot read the results file") as unreadable:
        load(png)
    assert missing.value.kind == "missing" and unreadable.value.kind == "unreadable"


def test_a_run_folder_stands_for_its_results_json(tmp_path: Path) -> None:
    path = write(tmp_path / "run-1" / "results.json", json.dumps(GOOD))
    found, data = load(tmp_path / "run-1")
    assert found == path and data == GOOD


def test_newest_takes_the_latest_run_that_qualifies(tmp_path: Path) -> None:
    assert newest(tmp_path / "no-runs-yet") is None
    # with a filter, a run is read into the run model: a file it cannot read is skipped
    run = {**GOOD, "run": {**GOOD["run"], "model": "open"},
           "aggregate": {"requests": 10, "failures": 0, "latency_ms": {"p95": 5.0}}}
    old = write(tmp_path / "a" / "results.json", json.dumps(run))
    mid = write(tmp_path / "b" / "results.json", json.dumps({**run, "run": {**run["run"], "valid": False}}))
    foreign = write(tmp_path / "d" / "results.json", json.dumps(GOOD))  # no aggregate: not a run we can use
    new = write(tmp_path / "c" / "results.json", '{"schema_version": 1, "run": ')  # killed mid-write
    for age, p in enumerate((new, foreign, mid, old)):
        os.utime(p, (1_000_000 - age * 100, 1_000_000 - age * 100))
    assert newest(tmp_path) == new  # without a filter: simply the latest, so its error is the one reported
    assert newest(tmp_path, accept=lambda r: True) == mid  # the half-written and the foreign one are skipped
    assert newest(tmp_path, accept=lambda r: r.valid) == old
    assert newest(tmp_path, accept=lambda r: False) is None


def test_an_integer_no_float_can_hold_is_read_as_inf_not_an_overflow(tmp_path: Path) -> None:
    # 5,000 digits: int() itself refuses that many (Python 3.11), 400 overflow float conversion
    doc = json.dumps(GOOD)[:-1] + ', "a": ' + "9" * 5000 + ', "b": -' + "9" * 400 + ', "c": 12}'
    data = parse(doc, "r.json")
    assert data["a"] == float("inf") and data["b"] == float("-inf") and data["c"] == 12


def test_a_utf8_bom_is_not_an_error(tmp_path: Path) -> None:
    p = write(tmp_path / "r.json", b"\xef\xbb\xbf" + json.dumps(GOOD).encode())
    assert load(p)[1]["run"]["scenario"] == "smoke"


def test_json_nested_thousands_deep_is_unreadable_not_a_crash() -> None:
    with pytest.raises(UnreadableResults, match="r.json: not a results file: JSON nested too deeply") as info:
        parse("[" * 100_000 + "]" * 100_000, "r.json")
    assert info.value.kind == "json"
