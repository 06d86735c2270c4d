"""Secrets never reach argv, stdout, the journal or error messages; injection attempts are data,
never executed; values starting with '-' are refused where they would become options."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

PY = sys.executable
SECRET = "s3cr3t-T0ken-value-42"
# the command writes what it received (env, stdin, argv) to a file, and echoes the secret on stdout
# and stderr, as a careless tool would
SHOW = ("import os, sys, json; data = {'env': os.environ.get('TOKEN'), 'stdin': sys.stdin.read(), "
        "'argv': sys.argv[2:]}; open(sys.argv[1], 'w').write(json.dumps(data)); "
        "print('token is', data['env']); print('stdin was', data['stdin'], file=sys.stderr); "
        "sys.exit(int(os.environ.get('EXIT', '0')))")


def secret_pb(out: Path, *, exit_code: int = 0) -> str:
    argv = [PY, "-c", SHOW, str(out), "${params.name}"]
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: secret-test, description: secrets}}
params:
  token: {{type: string, secret: true, from_env: TEST_TOKEN}}
  name: {{type: string, default: web}}
steps:
  - id: use
    action: exec
    with:
      argv: {json.dumps(argv)}
      env: {{TOKEN: "${{params.token}}", EXIT: "{exit_code}"}}
      stdin: "${{params.token}}"
"""


def test_secret_reaches_the_command_by_env_and_stdin_only_and_is_masked_everywhere(kit):
    out = kit.tmp / "seen.json"
    path = kit.write("s", secret_pb(out))
    res = kit.run("apply", str(path), "--yes", env={"TEST_TOKEN": SECRET})
    assert res.exit_code == 0, res.output
    seen = json.loads(out.read_text())
    assert seen["env"] == SECRET and seen["stdin"] == SECRET and SECRET not in seen["argv"]
    journal_text = (kit.state / "runs" / kit.run_ids()[-1] / "journal.jsonl").read_text()
    assert SECRET not in journal_text and "***" in journal_text
    assert SECRET not in res.stdout and SECRET not in res.stderr
    plan = kit.run("plan", str(path), "-o", "json", env={"TEST_TOKEN": SECRET})
    assert SECRET not in plan.stdout and json.loads(plan.stdout)["params"]["token"] == "***"
    runs = kit.run("runs", kit.run_ids()[-1], "-o", "json")
    assert SECRET not in runs.stdout


def test_secret_masked_in_error_messages(kit):
    path = kit.write("s", secret_pb(kit.tmp / "seen.json", exit_code=5))
    res = kit.run("apply", str(path), "--yes", env={"TEST_TOKEN": SECRET})
    assert res.exit_code == 1
    assert "stdin was ***" in res.stderr or "***" in res.stdout
    assert SECRET not in res.stdout + res.stderr
    assert SECRET not in (kit.state / "runs" / kit.run_ids()[-1] / "journal.jsonl").read_text()


def test_secret_from_a_file(kit, tmp_path):
    secret_file = tmp_path / "token"
    secret_file.write_text(SECRET + "\n")
    out = kit.tmp / "seen.json"
    res = kit.run("apply", str(kit.write("s", secret_pb(out))), "--yes", env={"TEST_TOKEN_FILE": str(secret_file)})
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["env"] == SECRET


def test_secret_on_the_command_line_is_refused(kit):
    res = kit.run("apply", str(kit.write("s", secret_pb(kit.tmp / "o"))), "--yes", "-p", f"token={SECRET}")
    assert res.exit_code == 2 and "token: is secret" in res.stderr and SECRET not in res.stderr
    assert kit.run_ids() == []


def test_missing_secret_names_the_variable(kit):
    res = kit.run("plan", str(kit.write("s", secret_pb(kit.tmp / "o"))), env={"TEST_TOKEN": ""})
    assert res.exit_code == 2 and "TEST_TOKEN" in res.stderr


@pytest.mark.parametrize("where", ["argv", "url"])
def test_playbook_passing_a_secret_in_argv_or_url_is_rejected_with_its_line(kit, where):
    if where == "argv":
        step = 'action: exec\n    with: {argv: [echo, "${params.token}"]}'
    else:
        step = 'action: http.request\n    with: {url: "http://127.0.0.1:1/x?key=${params.token}"}'
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: bad, description: leaks}}
params:
  token: {{type: string, secret: true, from_env: T}}
steps:
  - id: s
    {step}
"""
    res = kit.run("plan", str(kit.write("bad", text)), env={"T": SECRET})
    assert res.exit_code == 2
    assert "bad.yaml:9: steps[0].with" in res.stderr and "secret parameter 'token'" in res.stderr


INJECTIONS = ["; touch {m}", "$(touch {m})", "`touch {m}`", "x && touch {m}", "| touch {m}", "'; touch {m}; '"]


@pytest.mark.parametrize("attack", INJECTIONS)
def test_injection_attempts_are_one_argv_element_never_executed(kit, attack):
    marker = kit.tmp / "pwned"
    out = kit.tmp / "seen.json"
    value = attack.format(m=marker)
    argv = [PY, "-c", SHOW, str(out), "--name=${params.name}", "${params.name}"]
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: inj, description: injection}}
params:
  name: {{type: string}}
steps:
  - id: s
    action: exec
    with: {{argv: {json.dumps(argv)}, env: {{TOKEN: x}}}}
"""
    res = kit.run("apply", str(kit.write("inj", text)), "--yes", "-p", f"name={value}")
    assert res.exit_code == 0, res.output
    assert not marker.exists()
    assert json.loads(out.read_text())["argv"] == [f"--name={value}", value]


def test_rm_rf_value_is_just_text(kit):
    out = kit.tmp / "seen.json"
    argv = [PY, "-c", SHOW, str(out), "${params.name}"]
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: inj, description: injection}}
params:
  name: {{type: string}}
steps:
  - {{id: s, action: exec, with: {{argv: {json.dumps(argv)}}}}}
"""
    res = kit.run("apply", str(kit.write("inj", text)), "--yes", "-p", "name=; rm -rf /")
    assert res.exit_code == 0
    assert json.loads(out.read_text())["argv"] == ["; rm -rf /"]


@pytest.mark.parametrize("value", ["--all", "-n", "--kubeconfig=/tmp/evil"])
def test_values_starting_with_dash_are_refused_before_anything_runs(kit, standin, value):
    res = kit.run("apply", "api-horizontal-scale", "--yes", "-p", "replicas=3", "-p", "reason=latency is high",
                  "-p", f"deployment={value}")
    assert res.exit_code == 2
    assert "must not start with '-'" in res.stderr or "must match" in res.stderr
    assert standin.calls() == [] and kit.run_ids() == []


def test_dash_value_from_a_permissive_param_is_refused_where_it_would_be_an_option(kit):
    """Even a parameter that allows a leading '-' cannot land as its own argv element."""
    marker = kit.tmp / "ran"
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: dash, description: dash}}
params:
  offset: {{type: string, allow_leading_dash: true}}
steps:
  - id: s
    action: exec
    with: {{argv: {json.dumps([PY, "-c", "open('" + str(marker) + "', 'w')", "${params.offset}"])}}}
"""
    res = kit.run("apply", str(kit.write("dash", text)), "--yes", "-p", "offset=--delete")
    assert res.exit_code == 2
    assert "starts with '-'" in res.stderr and "steps[0].with.argv[3]" in res.stderr
    assert not marker.exists()


def test_negative_integer_cannot_become_an_option(kit):
    text = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: neg, description: neg}}
params:
  n: {{type: integer}}
steps:
  - {{id: s, action: exec, with: {{argv: [{json.dumps(PY)}, -c, pass, "${{params.n}}"]}}}}
"""
    res = kit.run("plan", str(kit.write("neg", text)), "-p", "n=-5")
    assert res.exit_code == 2 and "starts with '-'" in res.stderr


def test_program_cannot_come_from_a_parameter(kit):
    text = """apiVersion: opskit/v1
kind: Playbook
metadata: {name: prog, description: prog}
params:
  tool: {type: string}
steps:
  - {id: s, action: exec, with: {argv: ["${params.tool}", x]}}
"""
    res = kit.run("plan", str(kit.write("prog", text)), "-p", "tool=sh")
    assert res.exit_code == 2 and "the program must be written in the playbook" in res.stderr
