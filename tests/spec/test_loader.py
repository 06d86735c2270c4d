"""The spec loader: strict schema, located errors, duplicate keys, the example spec."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from opskit.errors import ConfigError
from opskit.exitcodes import ExitCode
from opskit.spec import load_spec
from opskit.spec.loader import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"


def test_example_spec_is_valid_and_complete():
    spec = load_spec(ROOT / "opskit.yaml")
    assert spec.service.name == "asset-service"
    slos = {s.endpoint: s for s in spec.slos}
    assert slos["GET /api/assets"].latency.p95 == 200
    assert slos["POST /api/assets/upload"].latency.p95 == 5000
    assert slos["DELETE /api/assets/delete"].latency.p95 == 100
    assert slos["GET /api/assets"].availability == 99.9
    rows = {(t.resource, t.metric): t for t in spec.thresholds}
    assert len(rows) == 8  # seed 001's table
    cpu = rows[("api", "cpu_utilization")]
    assert (cpu.scale_up, cpu.scale_down, cpu.unit, cpu.for_) == (70, 20, "percent", 300)
    rt = rows[("api", "response_time_p95")]
    assert (rt.scale_up, rt.scale_down, rt.unit) == (500, 100, "ms")
    assert rows[("database", "iops")].unit == "count"
    assert (spec.resources["api"].min, spec.resources["api"].max) == (2, 10)
    assert spec.growth.metrics["db_size_gb"].values == [10, 50, 200, 1000]
    assert spec.growth.metrics["file_storage_gb"].values == [100, 500, 2000, 10000]
    assert set(spec.plans) == {"phase-1", "phase-2", "phase-3"}


def test_validate_command_ok(invoke):
    result = invoke("spec", "validate", "--spec", str(ROOT / "opskit.yaml"))
    assert result.exit_code == 0, result.stderr
    assert "ok" in result.stdout


def test_validate_reads_opskit_spec_env(invoke, tmp_path):
    spec = tmp_path / "elsewhere.yaml"
    shutil.copy(ROOT / "opskit.yaml", spec)
    result = invoke("spec", "validate", "--output", "json", env={"OPSKIT_SPEC": str(spec)})
    assert result.exit_code == 0, result.stderr
    assert str(spec) in result.stdout


def test_golden_errors(invoke, monkeypatch, golden):
    monkeypatch.chdir(GOLDEN)
    result = invoke("spec", "validate", "--spec", "typos.yaml")
    assert result.exit_code == ExitCode.USAGE
    golden(GOLDEN / "typos.expected", result.stderr)
    assert "Traceback" not in result.stderr


def test_duplicate_keys_are_errors():
    with pytest.raises(ConfigError) as err:
        parse_yaml("service:\n  name: a\n  name: b\n", "x.yaml")
    assert err.value.details == ["x.yaml:3: service.name: duplicate key (first at line 2)"]


@pytest.mark.parametrize(("text", "needle"), [
    ("", "x.yaml:1: the file is empty"),
    ("- a\n- b\n", "expected a mapping at the top level"),
    ("service: {name: a\n", "x.yaml:2: not valid YAML"),
    ("service: !!python/object:os.system {}\n", "not valid YAML"),
])
def test_unloadable_files(tmp_path, text, needle):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert needle in str(err.value).replace(str(tmp_path) + "/", "")


def test_missing_file_is_config_error(invoke, tmp_path):
    result = invoke("spec", "validate", "--spec", str(tmp_path / "nope.yaml"))
    assert result.exit_code == ExitCode.USAGE
    assert "no such file" in result.stderr


def test_missing_required_section(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("targets: {}\n")
    with pytest.raises(ConfigError) as err:
        load_spec(path)
    assert err.value.details == [f"{path}:1: service: required key is missing"]
