"""The cross-key checks every command shares: `spec validate` refuses what `alerts render` and
`dashboards render` cannot render, with the same located line (file:line: key.path: what)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spec_with(tmp_path):
    def _write(change) -> Path:
        data = yaml.safe_load((ROOT / "opskit.yaml").read_text())
        change(data)
        path = tmp_path / "opskit.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return _write


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_a_latency_that_is_no_bucket_bound_is_refused_by_validate_and_render_alike(invoke, spec_with, tmp_path):
    spec = spec_with(lambda d: d["slos"][1].update(latency={"p95": "300ms"}))
    line = _line_of(spec, "p95: 300ms")
    validate = invoke("spec", "validate", "--spec", str(spec))
    assert validate.exit_code == 2
    expected = (f"opskit: error: {spec}:{line}: slos[1].latency.p95: 300ms is not a bucket bound of the service "
                "histogram, so the latency SLI cannot be read from it; service.latency_buckets_ms is "
                "5, 10, 25, 50, 100, 200, 250, 500, 1000, 2500, 5000, 10000 (ms): add 300 there (and to the "
                "service) or pick one of them\n")
    assert validate.stderr == expected
    for command in (("alerts", "render"), ("alerts", "test"), ("dashboards", "render")):
        result = invoke(*command, "--spec", str(spec))
        assert result.exit_code == 2, command
        assert result.stderr == expected, command  # the same words, never a Python list repr
    assert not (tmp_path / "alerts").exists() and not (tmp_path / "dashboards").exists()


def test_every_problem_is_listed_with_its_line(invoke, spec_with):
    def change(d):
        d["slos"][0]["availability"] = "100%"
        d["thresholds"].append(dict(d["thresholds"][0]))

    spec = spec_with(change)
    result = invoke("spec", "validate", "--spec", str(spec))
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0] == f"opskit: error: {spec}: 2 problem(s)"
    assert f"{spec}:{_line_of(spec, 'availability: 100%')}: slos[0].availability: 100% leaves no error budget" in \
        result.stderr
    assert "thresholds[8]: api.cpu_utilization repeats thresholds[0] (one row per resource and metric)" in \
        result.stderr
    assert "Traceback" not in result.stderr


def test_the_committed_spec_passes(invoke):
    result = invoke("spec", "validate", "--spec", str(ROOT / "opskit.yaml"))
    assert result.exit_code == 0, result.stderr
