"""alerts/dashboards with a bad --out, --dir or rule file: exit 2 with the path named, nothing written."""

from __future__ import annotations

import json

import pytest

from .conftest import SPEC


@pytest.mark.parametrize("group", ["alerts", "dashboards"])
def test_render_out_is_a_file_writes_nothing(invoke, tmp_path, group):
    blocker = tmp_path / "out"
    blocker.write_text("keep me")
    for target in (blocker, blocker / "sub"):
        result = invoke(group, "render", "--spec", str(SPEC), "--out", str(target))
        assert result.exit_code == 2, result.output
        assert f"{target}: cannot create the folder: {blocker} is a file, not a folder" in result.stderr
        assert "internal error" not in result.stderr
    assert blocker.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("option", ["--out", "--dir"])
def test_alerts_test_on_a_missing_folder_is_a_usage_error(invoke, tmp_path, option):
    result = invoke("alerts", "test", "--spec", str(SPEC), option, str(tmp_path / "nope"))
    assert result.exit_code == 2, result.output
    assert f"{option}: {tmp_path / 'nope'}: no such folder" in result.stderr
    (tmp_path / "file").write_text("")
    result = invoke("alerts", "test", "--spec", str(SPEC), option, str(tmp_path / "file"))
    assert result.exit_code == 2 and "is not a folder" in result.stderr


def test_every_alerts_and_dashboards_folder_option_is_out(invoke):
    """One name everywhere: render writes --out, test reads --out; the old --dir still works but is hidden."""
    for command in (("alerts", "render"), ("alerts", "test"), ("dashboards", "render")):
        text = invoke(*command, "--help").stdout
        assert "--out DIR" in text, command
        assert "--dir" not in text, command


def test_lint_on_a_recursive_yaml_alias_is_located(invoke, tmp_path):
    rules = tmp_path / "loop.rules.yml"
    rules.write_text("groups: &g [*g]\n")
    result = invoke("alerts", "lint", "--spec", str(SPEC), str(rules))
    assert result.exit_code == 2, result.output
    assert f"{rules}:1: a YAML alias refers to the node that contains it" in result.stderr


@pytest.mark.parametrize("body, message", [
    ('groups: [{name: x, rules: "str"}]', "rules: expected a list of rules"),
    ("groups: [5]", "expected a mapping with name and rules"),
    ("groups: [{name: x, rules: [5]}]", "expected a mapping (a rule)"),
    ("groups: [{name: x, rules: [{alert: A, expr: up, for: [1]}]}]", "for: expected a duration like 5m, got [1]"),
    ('groups: [{name: x, rules: [{alert: A, expr: up, for: 5m, labels: "x"}]}]', "labels: expected a mapping"),
    ("groups: [{name: x, rules: [{alert: A, expr: up, for: 5m, annotations: 5}]}]", "annotations: expected a mapping"),
])
def test_lint_reports_rule_files_of_the_wrong_shape(invoke, tmp_path, body, message):
    rules = tmp_path / "odd.rules.yml"
    rules.write_text(body + "\n")
    result = invoke("alerts", "lint", "--spec", str(SPEC), str(rules), "-o", "json")
    assert result.exit_code == 1, result.output
    assert message in [p["message"] for p in json.loads(result.stdout)["problems"]][0]
    assert "internal error" not in result.stderr


@pytest.mark.parametrize("panels", [5, [5, {"type": 7, "targets": 3}], [{"type": "timeseries", "fieldConfig": 5}]])
def test_dashboards_validate_fails_odd_panels_instead_of_crashing(invoke, tmp_path, panels):
    committed = SPEC.parent / "dashboards" / "asset-service-red.json"
    doc = json.loads(committed.read_text())
    doc["panels"] = panels
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(doc))
    result = invoke("dashboards", "validate", str(path), "-o", "json")
    assert result.exit_code == 1, result.output
    problems = json.loads(result.stdout)["dashboards"][0]["problems"]
    assert any(p.startswith("dashboard") and "panels" in p for p in problems), problems
    assert "internal error" not in result.stderr
