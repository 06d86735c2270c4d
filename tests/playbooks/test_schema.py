"""Strict playbook files with located errors; typed parameters checked before anything runs; the
shipped playbooks valid; list/show for people and machines."""

from __future__ import annotations

import json

import pytest

SHIPPED = ["api-horizontal-scale", "api-vertical-scale", "db-add-read-replica", "db-increase-size",
           "local-horizontal-scale", "verify-api-health"]

GOOD = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: good, description: a good one, risk: low}
params:
  replicas: {type: integer, minimum: 1, maximum: 50}
  reason: {type: string, min_length: 10}
  ratio: {type: number, default: 0.5}
  dry: {type: boolean, default: false}
  size: {type: string, enum: [small, large], default: small}
steps:
  - id: s
    action: exec
    with: {argv: [echo, "--replicas=${params.replicas}"]}
"""


def test_shipped_playbooks_are_all_listed_and_valid(kit):
    res = kit.run("list", "-o", "json")
    assert res.exit_code == 0, res.output
    names = [p["name"] for p in json.loads(res.stdout)["playbooks"]]
    assert set(SHIPPED) <= set(names)
    assert all("error" not in p for p in json.loads(res.stdout)["playbooks"])


@pytest.mark.parametrize("name", SHIPPED)
def test_show_each_shipped_playbook(kit, name):
    res = kit.run("show", name, "-o", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["playbook"]["metadata"]["name"] == name
    res = kit.run("show", name)
    assert res.exit_code == 0, res.output


def test_show_help_works(kit):
    res = kit.run("playbook", "show", "--help")
    assert res.exit_code == 0 and "NAME" in res.stdout


@pytest.mark.parametrize("mutation, where, what", [
    (("kind: Playbook", "kind: Playbok"), ":2: kind", "Playbook"),
    (("metadata:", "metdata:"), ":3: metdata", "did you mean 'metadata'"),
    (("action: exec", "action: exce"), ":12: steps[0].action", "did you mean 'exec'"),
    (("with: {argv", "with: {argw"), ":13: steps[0].with.argw", "did you mean 'argv'"),
    (("${params.replicas}", "${params.replica}"), ":13: steps[0].with.argv[1]", "unknown parameter"),
    (("type: integer", "type: int"), ":5: params.replicas.type", "'integer'"),
    (("id: s", "id: S!"), ":11: steps[0].id", "lower-case"),
])
def test_errors_name_file_line_and_key(kit, mutation, where, what):
    path = kit.write("bad", GOOD.replace(*mutation))
    res = kit.run("plan", str(path), "-p", "replicas=2", "-p", "reason=long enough reason")
    assert res.exit_code == 2, res.output
    assert f"bad.yaml{where}" in res.stderr and what in res.stderr
    assert "Traceback" not in res.stderr


def test_duplicate_keys_are_errors(kit):
    path = kit.write("dup", GOOD.replace("  reason:", "  replicas: {type: integer}\n  reason:"))
    res = kit.run("plan", str(path))
    assert res.exit_code == 2 and "duplicate key" in res.stderr


def test_capture_of_a_later_step_is_rejected(kit):
    text = GOOD.replace('"--replicas=${params.replicas}"', '"${capture.later.stdout}"') + \
        "  - {id: later, action: exec, with: {argv: [echo]}}\n"
    res = kit.run("plan", str(kit.write("c", text)), "-p", "replicas=2", "-p", "reason=long enough reason")
    assert res.exit_code == 2 and "no earlier step 'later'" in res.stderr


@pytest.mark.parametrize("args, message", [
    (["-p", "replicas=0", "-p", "reason=long enough reason"], "replicas: must be at least 1"),
    (["-p", "replicas=51", "-p", "reason=long enough reason"], "replicas: must be at most 50"),
    (["-p", "replicas=two", "-p", "reason=long enough reason"], "replicas: expected an integer"),
    (["-p", "replicas=2", "-p", "reason=short"], "reason: must be at least 10 characters"),
    (["-p", "replicas=2"], "reason: required"),
    (["-p", "replicas=2", "-p", "reason=long enough reason", "-p", "ratio=x"], "ratio: expected a number"),
    (["-p", "replicas=2", "-p", "reason=long enough reason", "-p", "dry=maybe"], "dry: expected true or false"),
    (["-p", "replicas=2", "-p", "reason=long enough reason", "-p", "size=huge"], "size: must be one of"),
    (["-p", "replicas=2", "-p", "reason=long enough reason", "-p", "replicaz=3"], "did you mean 'replicas'"),
    (["-p", "replicas"], "expected NAME=VALUE"),
])
def test_parameters_are_typed_and_checked_before_anything_runs(kit, args, message):
    path = kit.write("good", GOOD)
    res = kit.run("apply", str(path), "--yes", *args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert kit.run_ids() == []


def test_whole_value_references_keep_their_type(kit):
    res = kit.run("plan", str(kit.write("good", GOOD)), "-p", "replicas=7", "-p", "reason=long enough reason",
                  "-o", "json")
    data = json.loads(res.stdout)
    assert data["params"]["replicas"] == 7 and data["params"]["ratio"] == 0.5 and data["params"]["dry"] is False
    assert data["steps"][0]["args"]["argv"] == ["echo", "--replicas=7"]


def test_unknown_playbook_suggests_the_closest(kit):
    res = kit.run("plan", "api-horizontal-scal")
    assert res.exit_code == 2 and "did you mean 'api-horizontal-scale'" in res.stderr


def test_invalid_playbook_in_the_directory_makes_list_exit_2(kit, monkeypatch):
    d = kit.tmp / "pbs"
    d.mkdir()
    (d / "good.yaml").write_text(GOOD)
    (d / "broken.yaml").write_text("apiVersion: opskit/v1\nkind: Playbook\n")
    monkeypatch.setenv("OPSKIT_PLAYBOOKS", str(d))
    res = kit.run("list", "-o", "json")
    assert res.exit_code == 2
    rows = {p["name"]: p for p in json.loads(res.stdout)["playbooks"]}
    assert "error" in rows["broken"] and "error" not in rows["good"]


def test_duplicate_step_ids_and_unknown_sources_are_located(kit):
    text = GOOD + """  - id: s
    action: exec
    with: {argv: [echo]}
verify:
  - {name: v, source: nowhere, metric: api.x, success: "> 1"}
"""
    res = kit.run("plan", str(kit.write("d", text)), "-p", "replicas=2", "-p", "reason=long enough reason")
    assert res.exit_code == 2
    assert "d.yaml:14: steps[1].id: step id 's' is already used" in res.stderr
    assert "d.yaml:18: verify[0].source: source 'nowhere' is not in sources" in res.stderr
