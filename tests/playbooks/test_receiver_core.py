"""The alert receiver's pure parts: the v4 payload, what each alert leads to (dedup, cooldown, approval),
and the parameters an alert gives its playbook."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.playbooks.alertmsg import PayloadError, parse
from opskit.playbooks.receiver import Policy, Tracked, decide, find_row, reason
from opskit.scaling.act import params_at_level
from opskit.spec.schema import Resource, Threshold

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def alert(fp: str = "aa01", status: str = "firing", **labels: str) -> dict[str, Any]:
    base = {"alertname": "ApiCpuUtilizationHigh", "resource": "api", "metric": "cpu_utilization",
            "playbook": "notify-scale", "severity": "warning"}
    return {"status": status, "labels": {**base, **labels}, "annotations": {"summary": "api cpu 91% > 70%"},
            "startsAt": "2026-12-05T11:59:00Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://127.0.0.1:19090/graph", "fingerprint": fp}


def payload(*alerts: dict[str, Any], status: str = "firing") -> bytes:
    return json.dumps({"version": "4", "groupKey": '{}/{playbook=~".+"}:{alertname="ApiCpuUtilizationHigh"}',
                       "truncatedAlerts": 0, "status": status, "receiver": "opskit-playbooks",
                       "groupLabels": {"alertname": "ApiCpuUtilizationHigh"}, "commonLabels": {},
                       "commonAnnotations": {}, "externalURL": "http://127.0.0.1:19093",
                       "alerts": list(alerts)}).encode()


def tracked(state: str, *, fp: str = "aa01", ago_s: float = 10, playbook: str = "notify-scale",
            resource: str = "api") -> Tracked:
    return Tracked("r1", fp, playbook, resource, state, NOW - dt.timedelta(seconds=ago_s))


def kinds(intents: list[Any]) -> list[str]:
    return [i.kind for i in intents]


# ---- payload --------------------------------------------------------------------------------------

def test_a_v4_payload_parses_into_typed_alerts():
    n = parse(payload(alert()))
    assert n.version == "4" and n.receiver == "opskit-playbooks" and n.status == "firing"
    [a] = n.alerts
    assert (a.name, a.playbook, a.fingerprint, a.summary) == ("ApiCpuUtilizationHigh", "notify-scale", "aa01",
                                                             "api cpu 91% > 70%")
    assert a.starts_at == dt.datetime(2026, 12, 5, 11, 59, tzinfo=dt.UTC)


@pytest.mark.parametrize(("body", "message"), [
    (b"{not json", "not JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (json.dumps({"version": "3"}).encode(), "version"),
    (payload(alert())[:-2] + b"}", "not JSON"),
    (payload({**alert(), "status": "pending"}), "alerts.0.status"),
    (payload({k: v for k, v in alert().items() if k != "fingerprint"}), "alerts.0.fingerprint"),
    (b"\xff\xfe", "not JSON"),
    (b" " * (1 << 20) + b"{}", "at most"),
])
def test_bad_payloads_say_what_is_wrong(body, message):
    with pytest.raises(PayloadError, match=message):
        parse(body)


# ---- decide ---------------------------------------------------------------------------------------

def test_manual_queues_and_auto_runs_only_what_declares_auto_apply():
    n = parse(payload(alert()))
    assert kinds(decide(n, [], now=NOW, policy=Policy("manual"), auto_ok=lambda p: True)) == ["queue"]
    assert kinds(decide(n, [], now=NOW, policy=Policy("auto"), auto_ok=lambda p: True)) == ["run"]
    [waits] = decide(n, [], now=NOW, policy=Policy("auto"), auto_ok=lambda p: False)
    assert waits.kind == "queue" and "does not declare auto_apply" in waits.why


@pytest.mark.parametrize("state", ["pending", "approved", "running"])
def test_a_renotification_never_starts_a_second_run_while_one_is_active(state):
    n = parse(payload(alert()))
    # long after any cooldown: an active request blocks regardless of age
    [i] = decide(n, [tracked(state, ago_s=86400)], now=NOW, policy=Policy("auto", 60), auto_ok=lambda p: True)
    assert i.kind == "skip" and state in i.why and i.related == "r1"


@pytest.mark.parametrize("state", ["finished", "rejected"])
def test_cooldown_after_a_run_or_a_rejection(state):
    n = parse(payload(alert()))
    policy = Policy("auto", cooldown_s=300)
    [inside] = decide(n, [tracked(state, ago_s=299)], now=NOW, policy=policy, auto_ok=lambda p: True)
    assert inside.kind == "skip" and "cooldown" in inside.why
    [after] = decide(n, [tracked(state, ago_s=301)], now=NOW, policy=policy, auto_ok=lambda p: True)
    assert after.kind == "run"


def test_another_alert_for_the_same_playbook_and_resource_is_deduplicated():
    n = parse(payload(alert("aa01"), alert("bb02", alertname="ApiMemoryUtilizationHigh")))
    intents = decide(n, [], now=NOW, policy=Policy("auto"), auto_ok=lambda p: True)
    assert kinds(intents) == ["run", "skip"] and "same group" in intents[1].why
    # and across notifications: a different fingerprint, the same target, still running
    [i] = decide(parse(payload(alert("cc03"))), [tracked("running", fp="aa01")], now=NOW,
                 policy=Policy("auto"), auto_ok=lambda p: True)
    assert i.kind == "skip"
    # a different resource is its own run
    [j] = decide(parse(payload(alert("dd04", resource="db"))), [tracked("running")], now=NOW,
                 policy=Policy("auto"), auto_ok=lambda p: True)
    assert j.kind == "run"


def test_resolved_alerts_name_their_run_and_alerts_without_a_playbook_are_ignored():
    n = parse(payload(alert(status="resolved"), {**alert("ee05"), "labels": {"alertname": "X"}}))
    old, new = tracked("finished", ago_s=900), Tracked("r2", "aa01", "notify-scale", "api", "finished", NOW)
    resolved, ignored = decide(n, [old, new], now=NOW, policy=Policy(), auto_ok=lambda p: True)
    assert (resolved.kind, resolved.related) == ("resolved", "r2")
    assert ignored.kind == "ignore" and "no playbook" in ignored.why
    [no_resource] = decide(parse(payload(alert(resource=""))), [], now=NOW, policy=Policy(), auto_ok=lambda p: True)
    assert no_resource.kind == "ignore" and "resource" in no_resource.why


# ---- parameters -----------------------------------------------------------------------------------

ROW = Threshold(resource="api", metric="cpu_utilization", scale_up="70%", scale_down="20%", playbook="notify-scale",
                **{"for": "5m"})


def test_params_move_the_count_one_band_step_up_within_bounds():
    a = parse(payload(alert())).alerts[0]
    assert find_row([ROW], a) == ROW
    assert reason(a) == "ApiCpuUtilizationHigh: api cpu 91% > 70%"
    params = params_at_level(ROW, current=2, resources={"api": Resource(min=1, max=10)}, service_url=None, now=NOW)
    # what `scale check` recommends for 70% on 2 replicas: back to the band's middle, ceil(2 x 70 / 45) = 4
    assert params["replicas"] == 4
    local = params_at_level(ROW, current=1, resources={"api": Resource(min=1, max=2)},
                            service_url="http://127.0.0.1:8123", now=NOW)
    assert local["workers"] == local["replicas"] == 2 and local["target"] == "http://127.0.0.1:8123"
    # already at max, or the count unknown: nothing to hand over
    assert params_at_level(ROW, current=2, resources={"api": Resource(min=1, max=2)}, service_url=None,
                           now=NOW) == {}
    assert params_at_level(ROW, current=None, resources={}, service_url=None, now=NOW) == {}


def test_an_alert_matches_only_the_row_it_was_rendered_from():
    a = parse(payload(alert(metric="memory_utilization"))).alerts[0]
    assert find_row([ROW], a) is None


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.binary(max_size=200), _json.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(["version", "groupKey", "status", "receiver", "alerts"]), _json)
                 .map(lambda d: json.dumps(d).encode())))
def test_any_body_parses_or_is_refused_with_a_payload_error(body):
    try:
        parse(body)
    except PayloadError as exc:
        assert str(exc)
