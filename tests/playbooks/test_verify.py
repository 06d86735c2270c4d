"""Preconditions and verification read metrics through the MetricsSource protocol: a real JSON
endpoint on loopback for the CLI, and an in-test source where the protocol itself is the subject.
Empty and NaN readings are inconclusive, and inconclusive never passes."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path

from opskit.exitcodes import ExitCode
from opskit.metrics.base import MetricRequest, Sample, Series
from opskit.playbooks import engine
from opskit.playbooks.executor import Runtime
from opskit.playbooks.outcome import exit_code_for

PY = sys.executable
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"


def pb(log: Path, url: str, *, success: str = ">= 2", count: int = 3, failure_limit: int = 0,
       pre: str = ">= 0", extra_params: str = "") -> str:
    do = [PY, "-c", APPEND, str(log), "do:a"]
    undo = [PY, "-c", APPEND, str(log), "undo:a"]
    return f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: verify-test, description: verification tests}}
params:
  want: {{type: integer, default: 2}}
{extra_params}
sources:
  svc: {{kind: json, location: "{url}/stats"}}
preconditions:
  - {{name: reachable, source: svc, metric: api.load, query: load, condition: "{pre}"}}
steps:
  - id: a
    action: exec
    with: {{argv: {json.dumps(do)}}}
    compensate: {{action: exec, with: {{argv: {json.dumps(undo)}}}}}
verify:
  - name: workers
    source: svc
    metric: api.workers
    query: workers
    success: "{success}"
    interval: 0s
    count: {count}
    failure_limit: {failure_limit}
"""


def lines(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_verification_passes_with_references_keeping_their_type(kit, recorder):
    recorder.route("GET", "/stats", (200, {"workers": 2, "load": 1}))
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("v", pb(log, recorder.url, success="== ${params.want}"))), "--yes")
    assert res.exit_code == 0, res.output
    samples = kit.events("verify_sample")
    assert [s["value"] for s in samples] == [2.0, 2.0, 2.0] and all(s["result"] == "pass" for s in samples)
    assert kit.events("verify_end")[0]["result"] == "pass"
    assert kit.events("precondition")[0]["result"] == "pass"


def test_verification_failure_compensates(kit, recorder):
    recorder.route("GET", "/stats", (200, {"workers": 1, "load": 1}))
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("v", pb(log, recorder.url))), "--yes")
    assert res.exit_code == 1
    assert lines(log) == ["do:a", "undo:a"]
    assert kit.end()["status"] == "compensated" and "verification workers failed" in kit.end()["message"]


def test_failure_limit_tolerates_that_many_failures(kit, recorder):
    recorder.route("GET", "/stats", (200, {"load": 1}), (200, {"workers": 1}), (200, {"workers": 2}))
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("v", pb(log, recorder.url, failure_limit=1))), "--yes")
    assert res.exit_code == 0, res.output
    assert [s["result"] for s in kit.events("verify_sample")] == ["fail", "pass", "pass"]


def test_nan_is_inconclusive_and_halts_without_passing_or_compensating(kit, recorder):
    recorder.route("GET", "/stats", (200, {"load": 1}), (200, '{"workers": NaN}'))
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("v", pb(log, recorder.url, success="< 1000000"))), "--yes")
    assert res.exit_code == 1
    assert lines(log) == ["do:a"]  # not known bad: nothing undone; a person (or resume) decides
    assert kit.end()["status"] == "inconclusive"
    assert kit.events("verify_sample")[0]["result"] == "inconclusive"


def test_missing_field_is_inconclusive(kit, recorder):
    recorder.route("GET", "/stats", (200, {"load": 1}), (200, {"other": 3}))
    res = kit.run("apply", str(kit.write("v", pb(kit.tmp / "log", recorder.url))), "--yes")
    assert res.exit_code == 1 and kit.end()["status"] == "inconclusive"


def test_precondition_that_does_not_hold_runs_nothing(kit, recorder):
    recorder.route("GET", "/stats", (200, {"workers": 2, "load": 10}))
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("v", pb(log, recorder.url, pre="> 500"))), "--yes")
    assert res.exit_code == 1
    assert not log.exists()
    assert kit.end()["status"] == "precondition_failed"
    assert kit.events("precondition")[0]["value"] == 10


def test_precondition_without_data_is_inconclusive_and_runs_nothing(kit, recorder):
    recorder.route("GET", "/stats", (503, {"error": "down"}))
    log = kit.tmp / "log"
    res = kit.run("apply", str(kit.write("v", pb(log, recorder.url, pre="> 0"))), "--yes")
    assert res.exit_code == 1 and not log.exists()
    assert kit.end()["status"] == "inconclusive" and kit.events("step_start") == []


class SeriesSource:
    """The protocol itself, answering from a list of values (None = an empty result)."""

    name = "test"

    def __init__(self, values: list[float | None]) -> None:
        self.values = values
        self.requests: list[MetricRequest] = []

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        self.requests.append(request)
        value = self.values.pop(0) if len(self.values) > 1 else self.values[0]
        if value is None:
            return Series(request.resource, request.metric, (), query=request.query or "")
        return Series(request.resource, request.metric, (Sample(value, now),), query=request.query or "")

    def replicas(self, resource: str) -> int | None:
        return None


def test_empty_series_from_any_source_is_inconclusive(kit, monkeypatch):
    log = kit.tmp / "log"
    path = kit.write("v", pb(log, "http://127.0.0.1:9"))
    source = SeriesSource([5.0, None])  # the precondition reads 5, verification reads nothing
    prep = engine.prepare(str(path), {})
    rt = Runtime(state_dir=kit.state, sources=lambda kind, loc: source)
    outcome = engine.apply(prep, rt)
    assert outcome.status == "inconclusive" and exit_code_for(outcome.status) == ExitCode.NO
    assert source.requests[1].query == "workers" and source.requests[1].resource == "api"


def test_nan_sample_from_a_source_never_passes(kit):
    log = kit.tmp / "log"
    path = kit.write("v", pb(log, "http://127.0.0.1:9", success="!= 1"))
    prep = engine.prepare(str(path), {})
    source = SeriesSource([1.0, math.nan])
    outcome = engine.apply(prep, Runtime(state_dir=kit.state, sources=lambda kind, loc: source))
    assert outcome.status == "inconclusive"


def test_verification_query_comes_from_the_spec_thresholds(kit):
    """A check without a query uses opskit.yaml's query for that resource.metric and source kind."""
    from opskit.spec import load_spec

    spec = load_spec(str(Path(__file__).resolve().parents[2] / "opskit.yaml"))
    text = pb(kit.tmp / "log", "http://127.0.0.1:9").replace("    query: workers\n", "").replace(
        "metric: api.workers", "metric: api.response_time_p95").replace("kind: json", "kind: scrape")
    prep = engine.prepare(str(kit.write("v", text)), {})
    source = SeriesSource([1.0])
    engine.apply(prep, Runtime(state_dir=kit.state, spec=spec, sources=lambda kind, loc: source))
    wanted = next(t.queries.scrape for t in spec.thresholds if t.key == "api.response_time_p95")
    assert wanted and source.requests[-1].query == wanted
