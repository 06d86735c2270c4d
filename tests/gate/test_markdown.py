"""The Markdown summary against checked-in golden files.

Regenerate after an intended change with `make golden` (it rewrites every golden file) and review
the diff of tests/gate/golden/."""

from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("golden")


def test_markdown_summary_of_a_failing_gate(invoke, spec_file, write_results, tmp_path, golden) -> None:
    base = write_results("base.json", seconds=40, seed=11, endpoints={
        "GET /api/assets": {"rps": 30, "p95": 50.0},
        "POST /api/assets/upload": {"rps": 2, "p95": 900.0},
    })
    cur = write_results("results.json", seconds=40, seed=12, noise=0.1, endpoints={
        "GET /api/assets": {"rps": 30, "p95": 80.0, "error_rate": lambda t: 0.1 if t == 7 else 0.0},
        "POST /api/assets/upload": {"rps": 2, "p95": 950.0},
    })
    md = tmp_path / "gate.md"
    result = invoke("gate", "--spec", str(spec_file), str(cur), "--baseline", str(base), "--markdown", str(md),
                    "-o", "json", env={"GITHUB_STEP_SUMMARY": ""})
    assert result.exit_code == 1
    golden(GOLDEN / "gate-fail.md", md.read_text(encoding="utf-8"))


def test_markdown_summary_of_a_passing_gate(invoke, spec_file, write_results, golden) -> None:
    path = write_results(seconds=20, seed=3)
    result = invoke("gate", "--spec", str(spec_file), str(path), "-o", "md", env={"GITHUB_STEP_SUMMARY": ""})
    assert result.exit_code == 0
    golden(GOLDEN / "gate-pass.md", result.stdout)


@pytest.mark.parametrize("name", ["gate-fail.md", "gate-pass.md"])
def test_golden_files_are_checked_in(name: str) -> None:
    assert (GOLDEN / name).stat().st_size > 0
