"""Bad input to the strict YAML loader and the spec schema: one located message, exit 2, no traceback."""

from __future__ import annotations

import pytest

SPEC_HEAD = "service:\n  name: svc\n"


def _validate(invoke, tmp_path, text: str):
    p = tmp_path / "opskit.yaml"
    p.write_text(text, encoding="utf-8")
    return invoke("spec", "validate", "--spec", str(p))


@pytest.mark.parametrize("text, line", [
    ("&a [*a]\n", 1),                                   # a list that contains itself
    ("service: {name: s}\nx: &a {y: *a}\n", 2),         # a mapping that contains itself
])
def test_recursive_alias_is_a_located_config_error(invoke, tmp_path, text, line):
    result = _validate(invoke, tmp_path, text)
    assert result.exit_code == 2, result.output
    assert f"opskit.yaml:{line}: a YAML alias refers to the node that contains it" in result.stderr
    assert "internal error" not in result.stderr and "Recursion" not in result.stderr


def test_alias_bomb_is_refused_quickly(invoke, tmp_path):
    # nine levels of ten aliases each: 10^9 values once expanded ("billion laughs")
    lines = ["service: {name: s}", "x:", "  a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"  a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    result = _validate(invoke, tmp_path, "\n".join(lines) + "\n")
    assert result.exit_code == 2
    assert "YAML aliases expand to more than 1,000,000 values" in result.stderr


def test_aliases_that_stay_small_still_work(invoke, tmp_path):
    text = SPEC_HEAD + "targets:\n  a: &t {url: http://127.0.0.1:8000}\n  b: *t\n"
    result = _validate(invoke, tmp_path, text)
    assert result.exit_code == 0, result.stderr
    assert "2 targets" in result.stdout


def test_python_tag_is_one_located_line(invoke, tmp_path):
    result = _validate(invoke, tmp_path, SPEC_HEAD + "x: !!python/object:os.system {}\n")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("opskit: error: ")
    assert "opskit.yaml:3: not valid YAML: could not determine a constructor" in lines[0]


def test_number_too_long_for_int_is_located(invoke, tmp_path):
    result = _validate(invoke, tmp_path, SPEC_HEAD + "x: " + "9" * 5000 + "\n")
    assert result.exit_code == 2
    assert "opskit.yaml:3: x: a number of 5,000 characters is too large" in result.stderr


@pytest.mark.parametrize("row, message", [
    ("scale_up: 5 parsecs", "thresholds[0].scale_up: expected a value like 70%, 500ms, 3000 or 80GB, got '5 parsecs'"),
    ("scale_up: -3s", "thresholds[0].scale_up: expected a value like 70%, 500ms, 3000 or 80GB, got '-3s'"),
    ("scale_up: true", "thresholds[0].scale_up: expected a value like 70%, 500ms, 3000 or 80GB, got True"),
    ("scale_up: .nan", "thresholds[0].scale_up: expected a finite value, got nan"),
    ("scale_up: .inf", "thresholds[0].scale_up: expected a finite value, got inf"),
    ('scale_up: "1e400%"', "thresholds[0].scale_up: expected a finite percentage, got '1e400%'"),
    ("target: -5", "thresholds[0].target: a value cannot be negative, got -5"),
    ("scale_up: 70%, for: .nan", "thresholds[0].for: expected a finite duration, got nan"),
    ('scale_up: 70%, for: "1e400s"', "thresholds[0].for: expected a finite duration, got '1e400s'"),
])
def test_threshold_values_say_what_is_expected(invoke, tmp_path, row, message):
    text = SPEC_HEAD + "thresholds:\n  - {resource: api, metric: cpu_utilization, " + row + "}\n"
    result = _validate(invoke, tmp_path, text)
    assert result.exit_code == 2, result.output
    assert f"opskit.yaml:4: {message}" in result.stderr


def test_nan_and_inf_are_refused_in_plain_number_fields(invoke, tmp_path):
    text = SPEC_HEAD + "targets:\n  s: {url: http://127.0.0.1:1, max_rps: .inf}\n"
    result = _validate(invoke, tmp_path, text)
    assert result.exit_code == 2
    assert "opskit.yaml:4: targets.s.max_rps: Input should be a finite number" in result.stderr


def test_a_folder_or_binary_file_as_spec_says_so(invoke, tmp_path):
    folder = tmp_path / "opskit.yaml"
    folder.mkdir()
    result = invoke("spec", "validate", "--spec", str(folder))
    assert result.exit_code == 2 and f"{folder}: is a folder, not a file" in result.stderr
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"service:\n  name: \xff\xfe\n")
    result = invoke("spec", "validate", "--spec", str(binary))
    assert result.exit_code == 2 and f"{binary}: not UTF-8 text (byte 0xff at offset 17)" in result.stderr


def test_a_latency_that_is_not_one_says_latency(invoke, tmp_path):
    text = SPEC_HEAD + 'slos: [{name: a, endpoint: "GET /x", latency: {p95: 5 parsecs}}]\n'
    result = _validate(invoke, tmp_path, text)
    assert result.exit_code == 2
    assert "opskit.yaml:3: slos[0].latency.p95: expected a latency like 200ms or 1.5s, got '5 parsecs'" \
        in result.stderr


def test_gate_tolerance_takes_the_range_gate_tolerance_takes(invoke, tmp_path):
    # `gate --tolerance` accepts 0% to 1000%; the spec's default for it must accept the same
    assert _validate(invoke, tmp_path, SPEC_HEAD + "gate: {tolerance: 150%}\n").exit_code == 0
    result = _validate(invoke, tmp_path, SPEC_HEAD + "gate: {tolerance: 1200%}\n")
    assert result.exit_code == 2 and "gate.tolerance: Input should be less than or equal to 1000" in result.stderr


def test_yaml_nested_thousands_deep_is_a_config_error(invoke, tmp_path):
    result = _validate(invoke, tmp_path, SPEC_HEAD + "x: " + "[" * 20000 + "]" * 20000 + "\n")
    assert result.exit_code == 2
    assert "opskit.yaml: the YAML is nested too deeply to read" in result.stderr
