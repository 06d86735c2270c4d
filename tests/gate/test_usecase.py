"""The gate's use case as a core: data in, a GateReport out, files written, nothing printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import UsageError
from opskit.exitcodes import ExitCode
from opskit.gate.usecase import GateRequest, deliver, judge
from opskit.spec import load_spec


def test_judge_returns_the_report_and_prints_nothing(write_results, spec_file: Path, capsys) -> None:
    path = write_results()
    report = judge(GateRequest(path), load_spec(spec_file))
    assert report.exit_code == ExitCode.OK and report.error is None
    assert report.scenario == "smoke" and report.verdicts
    assert capsys.readouterr() == ("", "")


def test_an_unjudgeable_run_is_a_report_with_the_reason(write_results, spec_file: Path, tmp_path: Path,
                                                         capsys) -> None:
    path = write_results(valid=False)
    req = GateRequest(path, junit=tmp_path / "junit.xml", markdown=tmp_path / "gate.md")
    report = judge(req, load_spec(spec_file))
    assert report.exit_code == ExitCode.RUNTIME and "marked invalid" in (report.error or "")
    assert deliver(report, req) == []
    assert "marked invalid" in (tmp_path / "gate.md").read_text(encoding="utf-8")
    assert (tmp_path / "junit.xml").is_file()
    missing = judge(GateRequest(tmp_path / "none.json"), load_spec(spec_file))
    assert missing.scenario == "unknown" and "no such results file" in (missing.error or "")
    assert capsys.readouterr() == ("", "")


def test_deliver_writes_the_summary_and_saves_a_passing_baseline(write_results, spec_file: Path,
                                                                  tmp_path: Path) -> None:
    path = write_results()
    summary, base = tmp_path / "summary.md", tmp_path / "base" / "results.json"
    req = GateRequest(path, step_summary=summary, save_baseline=base)
    messages = deliver(judge(req, load_spec(spec_file)), req)
    assert [(m.text, m.warning) for m in messages] == [(f"baseline saved to {base}", False)]
    assert base.read_bytes() == path.read_bytes()
    assert "smoke" in summary.read_text(encoding="utf-8")
    failing = write_results("fail.json", endpoints={"GET /api/assets": {"rps": 30, "p95": 900.0, "error_rate": 0.0}})
    req = GateRequest(failing, save_baseline=tmp_path / "other.json")
    messages = deliver(judge(req, load_spec(spec_file)), req)
    assert [m.warning for m in messages] == [True] and "the gate did not pass" in messages[0].text
    assert not (tmp_path / "other.json").exists()


def test_bad_options_are_usage_errors(write_results, spec_file: Path) -> None:
    with pytest.raises(UsageError, match="--tolerance"):
        judge(GateRequest(write_results(), tolerance="lots"), load_spec(spec_file))


def test_inconclusive_comparisons_say_how_long_the_runs_would_need_to_be(write_results, spec_file: Path) -> None:
    """Issue 18: a 20 s run left most comparisons inconclusive, and nothing said why or what would help."""
    base = write_results("base.json", seconds=20, noise=0.5, seed=1)
    cur = write_results("cur.json", seconds=20, noise=0.5, seed=2)
    report = judge(GateRequest(cur, baseline=base), load_spec(spec_file))
    assert any(c.status == "inconclusive" for c in report.comparisons)
    [note] = [n for n in report.notes if "inconclusive" in n]
    assert "too short at this load to tell a 10% change from noise; runs of about" in note
