"""`opskit scale check` in-process: exit codes, JSON, table, --watch, --act, located errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from opskit.exitcodes import ExitCode

REPO_SPEC = Path(__file__).resolve().parents[2] / "opskit.yaml"

TARGET_SPEC = """
service: {name: asset-service}
thresholds:
  - {resource: api, metric: cpu_utilization, target: 30%, playbook: api-horizontal-scale,
     queries: {prometheus: 'avg(rate(process_cpu_seconds_total[1m])) * 100'}}
  - {resource: api, metric: memory_utilization, scale_up: 75%, scale_down: 30%,
     queries: {prometheus: 'avg(process_resident_memory_bytes)'}}
resources:
  api: {min: 2, max: 10}
"""

CPU_ONLY_SPEC = """
service: {name: asset-service}
thresholds:
  - {resource: api, metric: cpu_utilization, target: 30%}
resources:
  api: {min: 2, max: 10}
"""


def samples(tmp_path: Path, body: dict, name: str = "samples.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps(body))
    return str(p)


def one_sample(value=50, replicas=3, metric="cpu_utilization") -> dict:
    return {"now": "2026-11-22T10:00:00Z", "resources": {"api": {"replicas": replicas}},
            "samples": [{"resource": "api", "metric": metric, "value": value, "at": "2026-11-22T10:00:00Z"}]}


@pytest.fixture
def spec(tmp_path: Path) -> str:
    p = tmp_path / "opskit.yaml"
    p.write_text(TARGET_SPEC)
    return str(p)


def test_contract_default_spec_one_sample_holds(invoke, tmp_path):
    result = invoke("scale", "check", "--spec", str(REPO_SPEC), "--source", "file",
                    "--from", samples(tmp_path, one_sample()), "--output", "json")
    assert result.exit_code == ExitCode.OK, result.stderr
    doc = json.loads(result.stdout)
    cpu = [d for d in doc["decisions"] if (d["resource"], d["metric"]) == ("api", "cpu_utilization")]
    assert cpu[0]["decision"] == "hold" and cpu[0]["value"] == 50
    assert doc["resources"]["api"] == {**doc["resources"]["api"], "current": 3, "recommended": 3,
                                       "decision": "hold"}


def test_target_mode_scales_up_and_exits_1(invoke, tmp_path, spec):
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from",
                    samples(tmp_path, one_sample()), "--output", "json")
    assert result.exit_code == ExitCode.NO
    doc = json.loads(result.stdout)
    assert doc["resources"]["api"]["current"] == 3
    assert doc["resources"]["api"]["recommended"] == 5
    assert doc["resources"]["api"]["decision"] == "scale_up"
    d = doc["decisions"][0]
    assert {"resource", "metric", "value", "decision", "reason"} <= set(d)
    assert doc["decisions"][1]["decision"] == "no_data"


def test_table_output_names_resource_decision_and_counts(invoke, tmp_path, spec):
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", samples(tmp_path, one_sample()))
    assert result.exit_code == ExitCode.NO
    assert "cpu_utilization" in result.stdout and "scale_up" in result.stdout
    assert "3 -> 5" in result.stdout and "api-horizontal-scale" in result.stdout


def test_nothing_readable_exits_3(invoke, tmp_path, spec):
    body = one_sample(metric="unrelated")
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", samples(tmp_path, body),
                    "--output", "json")
    assert result.exit_code == ExitCode.RUNTIME
    assert "no threshold could be read" in result.stderr
    assert all(d["decision"] == "no_data" for d in json.loads(result.stdout)["decisions"])


def test_prometheus_unreachable_exits_3(invoke, spec, tmp_path):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = invoke("scale", "check", "--spec", spec, "--source", "prometheus", "--from",
                    f"http://127.0.0.1:{port}", "--timeout", "2", "--state-dir", str(tmp_path / "st"),
                    "--output", "json")
    assert result.exit_code == ExitCode.RUNTIME
    doc = json.loads(result.stdout)
    assert "cannot reach Prometheus" in doc["decisions"][0]["reason"]
    assert "avg(rate(process_cpu_seconds_total[1m])) * 100" in doc["decisions"][0]["reason"]


def test_bad_samples_file_is_a_located_config_error(invoke, tmp_path, spec):
    p = tmp_path / "bad.yaml"
    p.write_text("now: 2026-11-22T10:00:00Z\nsamples:\n  - resource: api\n    metric: cpu\n    valu: 5\n")
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", str(p))
    assert result.exit_code == ExitCode.USAGE
    assert f"{p}:5: samples[0].valu: unknown key (did you mean 'value'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_after_now_is_rejected(invoke, tmp_path, spec):
    body = one_sample()
    body["samples"][0]["at"] = "2026-11-22T10:05:00Z"
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", samples(tmp_path, body))
    assert result.exit_code == ExitCode.USAGE and "after now" in result.stderr


def test_missing_file_and_missing_from(invoke, tmp_path, spec):
    r1 = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", str(tmp_path / "nope.json"))
    assert r1.exit_code == ExitCode.USAGE and "no such file" in r1.stderr
    r2 = invoke("scale", "check", "--spec", spec, "--source", "file")
    assert r2.exit_code == ExitCode.USAGE and "--from" in r2.stderr


def test_stabilization_from_recorded_recommendations(invoke, tmp_path):
    spec = tmp_path / "cpu.yaml"
    spec.write_text(CPU_ONLY_SPEC)
    body = one_sample(value=18, replicas=5)  # 5 x 18/30 = 3
    body["recommendations"] = [{"resource": "api", "replicas": 4, "at": "2026-11-22T09:58:00Z"},
                               {"resource": "api", "replicas": 5, "at": "2026-11-22T09:59:00Z"}]
    result = invoke("scale", "check", "--spec", str(spec), "--source", "file", "--from", samples(tmp_path, body),
                    "--output", "json")
    assert result.exit_code == ExitCode.OK
    api = json.loads(result.stdout)["resources"]["api"]
    assert (api["desired"], api["recommended"], api["decision"]) == (3, 5, "hold")


def test_watch_emits_one_json_line_per_evaluation(invoke, tmp_path, spec):
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", samples(tmp_path, one_sample()),
                    "--watch", "0.01", "--count", "3", "--output", "json")
    assert result.exit_code == ExitCode.NO
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3
    assert all(json.loads(line)["resources"]["api"]["recommended"] == 5 for line in lines)


def test_watch_table_shows_changes_only_after_the_first(invoke, tmp_path, spec):
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", samples(tmp_path, one_sample()),
                    "--watch", "0.01", "--count", "2")
    assert result.stdout.count("scale check (file") == 1  # the table once, then only what changed
    assert result.stdout.strip().splitlines()[-1] == "10:00:00 no change"


def test_act_hands_the_decision_to_the_bound_playbook(invoke, tmp_path, spec):
    result = invoke("scale", "check", "--spec", spec, "--source", "file", "--from", samples(tmp_path, one_sample()),
                    "--act", "--state-dir", str(tmp_path / "state"), "--output", "json")
    doc = json.loads(result.stdout)
    [h] = doc["handoffs"]
    assert h["playbook"] == "api-horizontal-scale" and h["params"]["replicas"] == 5
    assert h["params"]["reason"].startswith("scale_up")


def test_act_hands_nothing_over_when_the_count_cannot_move(invoke, tmp_path, spec):
    # 10 replicas (the max) far above target: the decision is scale_up, but a count-changing playbook
    # could only be a no-op, so nothing is handed over
    result = invoke("scale", "check", "--spec", spec, "--source", "file",
                    "--from", samples(tmp_path, one_sample(value=90, replicas=10)),
                    "--act", "--state-dir", str(tmp_path / "state"), "--output", "json")
    doc = json.loads(result.stdout)
    assert doc["resources"]["api"]["decision"] == "scale_up"
    assert doc["resources"]["api"]["recommended"] == 10
    [h] = doc["handoffs"]  # nothing handed over, and the entry says why
    assert (h["status"], h["note"]) == ("not handed over", "scale_up, but the count cannot move: already at max 10")
    table = invoke("scale", "check", "--spec", spec, "--source", "file",
                   "--from", samples(tmp_path, one_sample(value=90, replicas=10)),
                   "--act", "--state-dir", str(tmp_path / "state"))
    assert "--act api: not handed over: scale_up, but the count cannot move: already at max 10" in table.stdout


def test_act_says_why_a_resource_without_a_playbook_is_not_handed_over(invoke, tmp_path):
    """Issue 18: `api: scale_up 1 -> 2 ... current 1 is below min 2`, exit 1, `"handoffs": null`."""
    spec = tmp_path / "cpu.yaml"
    spec.write_text(CPU_ONLY_SPEC)
    args = ("scale", "check", "--spec", str(spec), "--source", "file",
            "--from", samples(tmp_path, one_sample(value=20, replicas=1)), "--act", "--state-dir", str(tmp_path / "st"))
    result = invoke(*args, "--output", "json")
    doc = json.loads(result.stdout)
    assert result.exit_code == ExitCode.NO and doc["resources"]["api"]["recommended"] == 2
    [h] = doc["handoffs"]
    assert h["status"] == "not handed over" and h["playbook"] is None
    assert "no threshold of api that voted scale_up names a playbook" in h["note"]
    assert "--act api: not handed over: scale_up, but no threshold" in invoke(*args).stdout


def test_without_act_there_is_no_handoffs_key(invoke, tmp_path, spec):
    doc = json.loads(invoke("scale", "check", "--spec", spec, "--source", "file",
                            "--from", samples(tmp_path, one_sample()), "--output", "json").stdout)
    assert "handoffs" not in doc


def test_option_misuse_is_a_usage_error(invoke, tmp_path, spec):
    f = samples(tmp_path, one_sample())
    assert invoke("scale", "check", "--spec", spec, "--source", "file", "--from", f, "--yes").exit_code == 2
    assert invoke("scale", "check", "--spec", spec, "--source", "file", "--from", f, "--count", "2").exit_code == 2
    assert invoke("scale", "check", "--spec", spec, "--source", "nope").exit_code == 2
    r = invoke("scale", "check", "--spec", spec, "--source", "scrape", "--from", "ftp://x")
    assert r.exit_code == 2 and "http://" in r.stderr
    r = invoke("scale", "check", "--spec", spec, "--source", "file", "--prometheus", "http://127.0.0.1:1")
    assert r.exit_code == 2 and "--prometheus" in r.stderr


def test_stabilization_replayed_from_earlier_samples(invoke, tmp_path):
    # facts.md's case written as a recorded series: 5 replicas, target 30%; at -2 min the HPA would have
    # wanted 4 (24%), at -1 min 5 (30%), now 3 (18%): the 5 min scale-down window keeps 5
    spec = tmp_path / "cpu.yaml"
    spec.write_text(CPU_ONLY_SPEC)
    body = {"now": "2026-11-22T10:00:00Z", "resources": {"api": {"replicas": 5}}, "samples": [
        {"resource": "api", "metric": "cpu_utilization", "value": 24, "at": "2026-11-22T09:58:00Z"},
        {"resource": "api", "metric": "cpu_utilization", "value": 30, "at": "2026-11-22T09:59:00Z"},
        {"resource": "api", "metric": "cpu_utilization", "value": 18, "at": "2026-11-22T10:00:00Z"}]}
    result = invoke("scale", "check", "--spec", str(spec), "--source", "file", "--from", samples(tmp_path, body),
                    "--output", "json")
    api = json.loads(result.stdout)["resources"]["api"]
    assert (api["desired"], api["recommended"], api["decision"]) == (3, 5, "hold")
    assert result.exit_code == ExitCode.OK
    # the same data with the earlier samples outside the window: the scale-down goes through
    for s in body["samples"][:2]:
        s["at"] = s["at"].replace("09:5", "09:4")
    result = invoke("scale", "check", "--spec", str(spec), "--source", "file", "--from",
                    samples(tmp_path, body, "old.json"), "--output", "json")
    api = json.loads(result.stdout)["resources"]["api"]
    assert (api["recommended"], api["decision"]) == (3, "scale_down")
    assert result.exit_code == ExitCode.NO


def test_act_lines_go_to_stdout_for_a_table_and_to_stderr_under_json(invoke, tmp_path):
    book = tmp_path / "note.yaml"
    book.write_text("apiVersion: opskit/v1\nkind: Playbook\nmetadata: {name: note, description: note it}\n"
                    "params:\n  replicas: {type: integer, minimum: 1}\nsteps:\n"
                    f"  - {{id: note, action: exec, with: {{argv: {json.dumps([sys.executable, '-c', 'pass'])}}}}}\n")
    spec = tmp_path / "opskit.yaml"
    spec.write_text(CPU_ONLY_SPEC.replace("target: 30%}", f"target: 30%, playbook: {book}}}"))
    args = ("scale", "check", "--spec", str(spec), "--source", "file", "--from", samples(tmp_path, one_sample()),
            "--act", "--state-dir", str(tmp_path / "state"))
    table = invoke(*args)
    assert "plan only; apply with --yes" in table.stdout and "plan only" not in table.stderr, table.stderr
    doc = invoke(*args, "--output", "json")
    assert json.loads(doc.stdout)["handoffs"][0]["status"] == "handed over"
    assert "plan only; apply with --yes" in doc.stderr


def test_a_watch_tells_a_no_op_once_until_its_reason_changes(invoke, tmp_path):
    spec = tmp_path / "cpu.yaml"
    spec.write_text(CPU_ONLY_SPEC)
    result = invoke("scale", "check", "--spec", str(spec), "--source", "file",
                    "--from", samples(tmp_path, one_sample(value=20, replicas=1)), "--act",
                    "--state-dir", str(tmp_path / "st"), "--watch", "0.01", "--count", "3")
    assert result.stdout.count("--act api: not handed over:") == 1
