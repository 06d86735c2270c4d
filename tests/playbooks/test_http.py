"""The http provider against a real loopback server that records each request: method, URL, JSON
body, expected status, the secret in a header only (and masked in the journal); the maintenance window."""

from __future__ import annotations

import datetime as dt

from opskit.exitcodes import ExitCode
from opskit.playbooks import engine
from opskit.playbooks.executor import Runtime
from opskit.playbooks.outcome import exit_code_for

from .conftest import Steady

TOKEN = "rnd_SuperSecretApiKey_123"
REASON = "reads saturate the primary"


def run(kit, name, params, *, value=1.0, now=None, env=None):
    prep = engine.prepare(name, params, env=env if env is not None else {"RENDER_API_KEY": TOKEN})
    rt = Runtime(state_dir=kit.state, sources=lambda kind, loc: Steady(value), wait=lambda s: False)
    if now is not None:
        rt.clock = lambda: now
    return engine.apply(prep, rt)


def test_add_read_replica_calls_the_api_and_keeps_the_token_out_of_the_journal(kit, recorder):
    recorder.route("POST", "/v1/postgres/db-main/replicas", (201, {"id": "rep-7", "status": "creating"}))
    recorder.route("GET", "/v1/postgres/db-main/replicas/rep-7", (200, {"status": "creating"}),
                   (200, {"status": "available"}))
    recorder.route("PUT", "/v1/services/api-svc/env-vars/DATABASE_READ_REPLICA", (200, {"ok": True}))
    out = run(kit, "db-add-read-replica", {"database_id": "db-main", "service_id": "api-svc", "reason": REASON,
                                           "api_url": f"{recorder.url}/v1"})
    assert exit_code_for(out.status) == ExitCode.OK, out.message
    seen = [(r["method"], r["path"]) for r in recorder.requests]
    assert seen == [("POST", "/v1/postgres/db-main/replicas"), ("GET", "/v1/postgres/db-main/replicas/rep-7"),
                    ("GET", "/v1/postgres/db-main/replicas/rep-7"),
                    ("PUT", "/v1/services/api-svc/env-vars/DATABASE_READ_REPLICA")]
    assert recorder.requests[0]["body"] == {"name": "replica-1"}
    assert recorder.requests[3]["body"] == {"value": "rep-7"}
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in recorder.requests)
    assert all(TOKEN not in r["path"] for r in recorder.requests)
    text = out.journal.read_text()
    assert TOKEN not in text and "Bearer ***" in text


def test_unexpected_status_fails_and_deletes_the_created_replica(kit, recorder):
    recorder.route("POST", "/v1/postgres/db-main/replicas", (201, {"id": "rep-8"}))
    recorder.route("GET", "/v1/postgres/db-main/replicas/rep-8", (200, {"status": "available"}))
    recorder.route("PUT", "/v1/services/api-svc/env-vars/DATABASE_READ_REPLICA", (500, {"error": "boom"}))
    recorder.route("DELETE", "/v1/postgres/db-main/replicas/rep-8", (204, ""))
    out = run(kit, "db-add-read-replica", {"database_id": "db-main", "service_id": "api-svc", "reason": REASON,
                                           "api_url": f"{recorder.url}/v1"})
    assert out.status == "compensated" and out.failed_step == "route-reads" and "HTTP 500" in out.message
    assert (recorder.requests[-1]["method"], recorder.requests[-1]["path"]) == \
        ("DELETE", "/v1/postgres/db-main/replicas/rep-8")
    assert recorder.requests[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_missing_token_is_a_parameter_error_before_any_request(kit, recorder):
    import pytest

    from opskit.errors import UsageError

    with pytest.raises(UsageError) as err:
        run(kit, "db-add-read-replica", {"database_id": "db-main", "service_id": "api-svc", "reason": REASON,
                                         "api_url": f"{recorder.url}/v1"}, env={})
    assert "RENDER_API_KEY" in str(err.value.details)
    assert recorder.requests == []


SATURDAY_3AM = dt.datetime(2026, 11, 21, 3, 0, tzinfo=dt.UTC)
MONDAY_3AM = dt.datetime(2026, 11, 23, 3, 0, tzinfo=dt.UTC)


def test_increase_size_outside_the_maintenance_window_runs_nothing(kit, recorder):
    out = run(kit, "db-increase-size", {"database_id": "db-main", "plan": "standard-2", "reason": REASON,
                                        "api_url": f"{recorder.url}/v1"}, now=MONDAY_3AM)
    assert out.status == "precondition_failed" and exit_code_for(out.status) == ExitCode.NO
    assert "maintenance window" in out.message and recorder.requests == []


def test_increase_size_inside_the_window_upgrades_and_rolls_back_on_failure(kit, recorder):
    recorder.route("GET", "/v1/postgres/db-main", (200, {"plan": "standard-1", "status": "available"}),
                   (200, {"plan": "standard-2", "status": "updating"}),
                   (200, {"plan": "standard-2", "status": "failed"}))
    recorder.route("PATCH", "/v1/postgres/db-main", (200, {"ok": True}))
    prep = engine.prepare("db-increase-size", {"database_id": "db-main", "plan": "standard-2", "reason": REASON,
                                               "api_url": f"{recorder.url}/v1"}, env={"RENDER_API_KEY": TOKEN})
    # fewer attempts for the wait than the shipped 90: the test is about the rollback
    import dataclasses

    steps = list(prep.loaded.playbook.steps)
    steps[2] = steps[2].model_copy(update={"retries": steps[2].retries.model_copy(update={"attempts": 2})})
    pb = prep.loaded.playbook.model_copy(update={"steps": steps})
    prep = dataclasses.replace(prep, loaded=dataclasses.replace(prep.loaded, playbook=pb))
    rt = Runtime(state_dir=kit.state, sources=lambda kind, loc: Steady(1), wait=lambda s: False,
                 clock=lambda: SATURDAY_3AM)
    out = engine.apply(prep, rt)
    assert out.status == "compensated" and out.failed_step == "wait-available"
    patches = [r["body"] for r in recorder.requests if r["method"] == "PATCH"]
    assert patches == [{"plan": "standard-2"}, {"plan": "standard-1"}]  # upgraded, then put back


def test_increase_size_succeeds_inside_the_window(kit, recorder):
    recorder.route("GET", "/v1/postgres/db-main", (200, {"plan": "standard-1", "status": "available"}),
                   (200, {"plan": "standard-2", "status": "available"}))
    recorder.route("PATCH", "/v1/postgres/db-main", (202, {}))
    out = run(kit, "db-increase-size", {"database_id": "db-main", "plan": "standard-2", "reason": REASON,
                                        "api_url": f"{recorder.url}/v1"}, now=SATURDAY_3AM)
    assert exit_code_for(out.status) == ExitCode.OK, out.message


def test_verify_api_health_cli_against_a_live_endpoint(kit, recorder, monkeypatch):
    """The shipped read-only playbook through the CLI: /health answered; the p95 source is a scrape."""
    recorder.route("GET", "/health", (200, {"status": "ok"}))
    res = kit.run("plan", "verify-api-health", "-p", f"target={recorder.url}")
    assert res.exit_code == 0, res.output
    assert f"GET {recorder.url}/health" in res.stdout and f"scrape {recorder.url}/metrics" in res.stdout
