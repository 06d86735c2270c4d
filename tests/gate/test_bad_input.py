"""`opskit gate` with bad input: a located message, the documented exit code, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path


def gate(invoke, spec_file: Path, *args: str):
    return invoke("gate", "--spec", str(spec_file), *args, env={"GITHUB_STEP_SUMMARY": ""})


def test_a_limit_too_large_for_a_float_is_a_usage_error(invoke, spec_file, write_results) -> None:
    result = gate(invoke, spec_file, str(write_results()), "--criteria", "p95 < 1e400ms")
    assert result.exit_code == 2, result.output
    assert "--criteria 'p95 < 1e400ms': column 7: '1e400' is too large to be a limit" in result.stderr


def test_an_integer_too_large_for_a_float_in_results_cannot_answer(invoke, spec_file, write_results) -> None:
    path = write_results()
    text = path.read_text()
    data = json.loads(text)
    requests = data["aggregate"]["requests"]
    path.write_text(text.replace(f'"requests": {requests}', '"requests": ' + "9" * 400, 1))
    result = gate(invoke, spec_file, str(path))
    assert result.exit_code == 3, result.output
    assert "aggregate.requests: expected a number, got inf" in result.stderr
    assert "internal error" not in result.stderr


def test_junit_under_a_file_is_a_usage_error(invoke, spec_file, write_results, tmp_path) -> None:
    blocker = tmp_path / "reports"
    blocker.write_text("not a folder")
    result = gate(invoke, spec_file, str(write_results()), "--junit", str(blocker / "gate.xml"))
    assert result.exit_code == 2, result.output
    assert f"{blocker}/gate.xml: cannot write: {blocker} is a file, not a folder" in result.stderr
    assert "internal error" not in result.stderr
    assert blocker.read_text() == "not a folder"


def test_markdown_onto_a_folder_is_a_usage_error(invoke, spec_file, write_results, tmp_path) -> None:
    folder = tmp_path / "summary.md"
    folder.mkdir()
    result = gate(invoke, spec_file, str(write_results()), "--markdown", str(folder))
    assert result.exit_code == 2, result.output
    assert f"{folder}: cannot write: it is a folder" in result.stderr
    assert list(folder.iterdir()) == [] and [p.name for p in tmp_path.glob(".summary.md.*")] == []
