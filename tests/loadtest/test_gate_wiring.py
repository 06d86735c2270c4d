"""`loadtest run --gate` and gate.abort_on_fail, on real short runs against loopback servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_gate_judges_the_finished_run(invoke, fast_server, tmp_path: Path) -> None:
    common = ["loadtest", "run", "http-get", "--host", fast_server.url, "--path", "/", "--rate", "20",
              "--duration", "2s", "--gate"]
    failed = invoke(*common, "--out", str(tmp_path / "a"), "--criteria", "p99 < 0.001ms")
    assert failed.exit_code == 1, failed.stderr
    assert "FAIL" in failed.stdout
    passed = invoke(*common, "--out", str(tmp_path / "b"), "--criteria", "error_rate < 1%", "--output", "json")
    assert passed.exit_code == 0, passed.stderr
    assert json.loads(passed.stdout)["status"] == "pass"  # one JSON document: the gate's


def test_abort_on_fail_stops_the_run_early(invoke, stall_server, tmp_path: Path) -> None:
    spec = (ROOT / "opskit.yaml").read_text()
    assert "\ngate:\n" in spec
    spec = spec.replace("\ngate:\n", "\ngate:\n  abort_on_fail: ['p99 < 50ms']\n  abort_grace: 2s\n", 1)
    (tmp_path / "opskit.yaml").write_text(spec)
    out = tmp_path / "run"
    result = invoke("--debug", "loadtest", "run", "http-get", "--spec", str(tmp_path / "opskit.yaml"), "--host",
                    stall_server.url, "--path", "/", "--rate", "50", "--duration", "40s", "--out", str(out))
    assert result.exit_code == 1, result.stderr
    r = json.loads((out / "results.json").read_text())
    assert "p99 < 50ms" in r["run"]["aborted"]
    assert r["run"]["duration_s"] < 20  # the stall at 0-1 s trips it right after the grace period
