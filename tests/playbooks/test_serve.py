"""`playbook serve`'s receiver on a real loopback port, fed real HTTP requests shaped like Alertmanager's,
running real playbooks whose one step calls a recording HTTP server; approve/reject/runs through the CLI."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opskit.playbooks.alertruns import Receiver
from opskit.playbooks.receiver import Policy
from opskit.playbooks.report import NullReporter
from opskit.playbooks.serve import Server
from opskit.scaling.act import params_at_level
from opskit.spec import load_spec

TOKEN = "t0ken-for-the-receiver-tests"
SPEC = """\
service: {name: asset-service, url: http://127.0.0.1:8000}
thresholds:
  - {resource: api, metric: cpu_utilization, scale_up: 70%, scale_down: 20%, playbook: notify-scale}
  - {resource: db, metric: cpu_utilization, scale_up: 60%, scale_down: 15%, playbook: notify-careful}
resources:
  api: {min: 1, max: 10, current: 2}
  db: {min: 1, max: 3, current: 1}
"""
PLAYBOOK = """\
apiVersion: opskit/v1
kind: Playbook
metadata: {{name: {name}, description: tell the recorder, risk: low{auto}}}
lock: scale-{name}
params:
  replicas: {{type: integer, minimum: 1}}
  reason: {{type: string, min_length: 5}}
steps:
  - id: tell
    action: http.request
    with: {{method: POST, url: "{url}/scale/{name}", json: {{replicas: "${{params.replicas}}"}}}}
    timeout: 5s
"""


def alert(fp: str = "aa01", status: str = "firing", **labels: str) -> dict[str, Any]:
    base = {"alertname": "ApiCpuUtilizationHigh", "resource": "api", "metric": "cpu_utilization",
            "playbook": "notify-scale", "severity": "warning"}
    return {"status": status, "labels": {**base, **labels}, "annotations": {"summary": "api cpu 91% > 70%"},
            "startsAt": "2026-12-05T11:59:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": fp}


def payload(*alerts: dict[str, Any], status: str = "firing") -> bytes:
    return json.dumps({"version": "4", "groupKey": '{}:{alertname="ApiCpuUtilizationHigh"}', "status": status,
                       "receiver": "opskit-playbooks", "groupLabels": {}, "commonLabels": {},
                       "commonAnnotations": {}, "externalURL": "http://127.0.0.1:19093",
                       "alerts": list(alerts)}).encode()


def until(what: str, done: Callable[[], Any], timeout_s: float = 20) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"{what}: not within {timeout_s:g}s")


class Harness:
    def __init__(self, tmp: Path, recorder: Any, approve: str) -> None:
        self.tmp, self.recorder, self.state = tmp, recorder, tmp / "state"
        for name, auto in (("notify-scale", ", auto_apply: true"), ("notify-careful", "")):
            (tmp / "playbooks").mkdir(exist_ok=True)
            (tmp / "playbooks" / f"{name}.yaml").write_text(PLAYBOOK.format(name=name, auto=auto, url=recorder.url))
            recorder.route("POST", f"/scale/{name}", (200, {"ok": True}))
        (tmp / "opskit.yaml").write_text(SPEC)
        self.lines: list[str] = []
        spec = load_spec(str(tmp / "opskit.yaml"))
        self.receiver = Receiver(self.state, spec=spec, policy=Policy(approve, 300), service_url=None,
                                 params_for=params_at_level, reporter=lambda run_id: NullReporter(),
                                 say=self.lines.append)
        self.server = Server(self.receiver, token=TOKEN, port=0, say=self.lines.append).start()

    def post(self, body: bytes, token: str | None = TOKEN, path: str = "/alerts") -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(self.server.url.replace("/alerts", path), content=body, headers=headers, timeout=5,
                          trust_env=False)

    def requests(self) -> list[dict[str, Any]]:
        folder = self.state / "receiver" / "requests"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def journal(self) -> list[dict[str, Any]]:
        path = self.state / "receiver" / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def actions(self) -> list[tuple[str, str]]:
        return [(e["action"], e["fingerprint"]) for e in self.journal()]

    def calls(self) -> list[dict[str, Any]]:
        return [r for r in self.recorder.requests if r["method"] == "POST"]


@pytest.fixture
def harness(tmp_path: Path, recorder: Any, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
            ) -> Iterator[Harness]:
    monkeypatch.chdir(tmp_path)  # ./playbooks holds the test playbooks
    h = Harness(tmp_path, recorder, getattr(request, "param", "auto"))
    try:
        yield h
    finally:
        h.server.stop()


def test_the_endpoint_wants_its_token_and_a_valid_payload(harness):
    good = payload(alert())
    for token in (None, "wrong-token-of-some-length"):
        denied = harness.post(good, token=token)
        assert denied.status_code == 401 and "bearer token" in denied.json()["error"]
        assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    bad = harness.post(b'{"version": "4", "alerts": "none"}')
    assert bad.status_code == 400 and "groupKey" in bad.json()["error"]
    assert harness.post(b"\x00not json").status_code == 400
    assert harness.post(good, path="/other").status_code == 404
    assert httpx.get(harness.server.url.replace("/alerts", "/health"), trust_env=False).json() == {"status": "ok"}
    assert harness.requests() == [] and harness.calls() == []  # nothing refused reached a playbook
    # and the receiver still works after all of that
    assert harness.post(good).status_code == 200
    until("the run", lambda: [r for r in harness.requests() if r["state"] == "finished"])


def test_auto_runs_a_declared_playbook_once_and_journals_alert_fingerprint_and_approval(harness):
    accepted = harness.post(payload(alert("aa01")))
    assert accepted.status_code == 200 and accepted.json() == {"status": "accepted", "alerts": 1}
    [req] = until("the run", lambda: [r for r in harness.requests() if r["state"] == "finished"])
    assert req["outcome"] == "succeeded" and req["params"] == {"replicas": 4, "reason": "ApiCpuUtilizationHigh: "
                                                                                        "api cpu 91% > 70%"}
    [call] = harness.calls()
    assert call["path"] == "/scale/notify-scale" and call["body"] == {"replicas": 4}

    run = harness.state / "runs" / req["run_id"] / "journal.jsonl"
    start = json.loads(run.read_text().splitlines()[0])
    assert start["trigger"]["alert"]["name"] == "ApiCpuUtilizationHigh"
    assert start["trigger"]["alert"]["fingerprint"] == "aa01"
    assert start["trigger"]["approval"]["mode"] == "auto" and start["trigger"]["approval"]["at"]

    # Alertmanager re-sends the group (repeat_interval, a restart): within the cooldown nothing new starts
    harness.post(payload(alert("aa01")))
    harness.post(payload(alert("aa01", status="resolved"), status="resolved"))
    until("both journaled", lambda: len(harness.journal()) == 3)
    assert harness.actions() == [("run", "aa01"), ("skip", "aa01"), ("resolved", "aa01")]
    skip, resolved = harness.journal()[1:]
    assert "cooldown" in skip["why"] and resolved["run_id"] == req["run_id"]
    assert len(harness.calls()) == 1


def test_auto_still_queues_a_playbook_that_does_not_declare_auto_apply(harness):
    harness.post(payload(alert("db01", resource="db", playbook="notify-careful")))
    [req] = until("the request", harness.requests)
    assert req["state"] == "pending" and req["approval"] is None
    assert req["params"]["replicas"] == 2 and harness.calls() == []


@pytest.mark.parametrize("harness", ["manual"], indirect=True)
def test_manual_queues_and_approve_runs_exactly_that_plan_naming_who(harness, kit):
    harness.post(payload(alert("aa01")))
    [req] = until("the request", harness.requests)
    assert req["state"] == "pending" and harness.calls() == []

    listed = kit.run("runs", "--output", "json")
    [pending] = json.loads(listed.stdout)["pending"]
    assert pending["run_id"] == req["run_id"] and pending["alert"]["fingerprint"] == "aa01"
    assert req["run_id"] in kit.run("runs").stdout

    ok = kit.run("playbook", "approve", req["run_id"], "--state-dir", str(harness.state), env={"USER": "alice"})
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "approved by alice" in ok.stdout and "succeeded" in ok.stdout
    assert [c["body"] for c in harness.calls()] == [{"replicas": 4}]
    start = json.loads((harness.state / "runs" / req["run_id"] / "journal.jsonl").read_text().splitlines()[0])
    approval = start["trigger"]["approval"]
    assert (approval["mode"], approval["by"]) == ("manual", "alice")
    assert dt.datetime.fromisoformat(approval["at"]).tzinfo is not None

    again = kit.run("playbook", "approve", req["run_id"], "--state-dir", str(harness.state))
    assert again.exit_code == 2 and "is finished" in again.stderr and "not pending" in again.stderr
    assert len(harness.calls()) == 1


@pytest.mark.parametrize("harness", ["manual"], indirect=True)
def test_reject_records_who_and_the_alert_stays_quiet_for_the_cooldown(harness, kit):
    harness.post(payload(alert("aa01")))
    [req] = until("the request", harness.requests)
    res = kit.run("playbook", "reject", req["run_id"], "--state-dir", str(harness.state), env={"USER": "bob"})
    assert res.exit_code == 0 and "rejected by bob" in res.stdout
    [req] = harness.requests()
    assert req["state"] == "rejected" and req["approval"]["by"] == "bob"
    assert req["approval"]["decision"] == "rejected"
    harness.post(payload(alert("aa01")))
    until("the second notification", lambda: len(harness.journal()) == 2)
    assert harness.actions()[-1] == ("skip", "aa01") and len(harness.requests()) == 1
    assert harness.calls() == []
    assert kit.run("playbook", "approve", req["run_id"], "--state-dir", str(harness.state)).exit_code == 2
    assert kit.run("playbook", "reject", "no-such-run", "--state-dir", str(harness.state)).exit_code == 2


def test_an_alert_that_cannot_be_acted_on_does_not_stall_the_others(harness):
    # no thresholds row for this one (the rules were rendered from another spec): journaled as an error
    harness.post(payload(alert("zz09", metric="iops")))
    harness.post(payload(alert("aa01")))
    until("the good run", lambda: [r for r in harness.requests() if r["state"] == "finished"])
    errors = [e for e in harness.journal() if e["action"] == "error"]
    assert [e["fingerprint"] for e in errors] == ["zz09"] and "no thresholds row" in errors[0]["why"]
    assert len(harness.calls()) == 1


def test_the_run_lock_still_applies(harness):
    from opskit.playbooks import lock

    held = lock.acquire(harness.state, "scale-notify-scale", run_id="by-hand", playbook="notify-scale",
                        started=dt.datetime.now(dt.UTC).isoformat())
    try:
        harness.post(payload(alert("aa01")))
        [req] = until("the request to end", lambda: [r for r in harness.requests() if r["state"] == "finished"])
    finally:
        held.release()
    assert req["outcome"] == "locked" and "by-hand" in req["message"] and harness.calls() == []
    until("the line about it", lambda: any("lock 'scale-notify-scale' is held" in line for line in harness.lines))
