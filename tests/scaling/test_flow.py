"""The scale check / act flow as a core: rounds go to the reporter the caller supplies, nothing is printed,
the history is handed back to be kept, and --act hands each decision over once with its lines on `say`."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import pytest

from opskit.metrics.file import FileSource, SamplesFile
from opskit.scaling import collect, flow
from opskit.scaling.act import Handoff, hand_over, local_service_url
from opskit.scaling.model import Recommendation
from opskit.spec import load_spec

SPEC = """
service: {name: asset-service}
thresholds:
  - {resource: api, metric: cpu_utilization, target: 30%, playbook: PLAYBOOK}
resources:
  api: {min: 2, max: 10}
"""

# a playbook whose only step runs this interpreter: planning it needs no cluster
PLAYBOOK = f"""apiVersion: opskit/v1
kind: Playbook
metadata: {{name: note-replicas, description: write the wanted count down}}
params:
  replicas: {{type: integer, minimum: 1, maximum: 20}}
steps:
  - id: note
    action: exec
    with: {{argv: {json.dumps([sys.executable, "-c", "pass"])}}}
"""


class Recorder:
    def __init__(self) -> None:
        self.rounds: list[flow.Round] = []
        self.lines: list[str] = []

    def round(self, done: flow.Round) -> None:
        self.rounds.append(done)

    def line(self, text: str) -> None:
        self.lines.append(text)


def source(value: float = 50, replicas: int = 3) -> FileSource:
    return FileSource(SamplesFile.model_validate({
        "now": "2026-11-22T10:00:00Z", "resources": {"api": {"replicas": replicas}},
        "samples": [{"resource": "api", "metric": "cpu_utilization", "value": value, "at": "2026-11-22T10:00:00Z"}]}))


@pytest.fixture
def spec(tmp_path: Path):
    book = tmp_path / "note-replicas.yaml"
    book.write_text(PLAYBOOK)
    p = tmp_path / "opskit.yaml"
    p.write_text(SPEC.replace("PLAYBOOK", str(book)))
    return load_spec(p)


def test_one_round_without_watch_reports_once_and_prints_nothing(spec, capsys) -> None:
    rec = Recorder()
    saved: list[list[Recommendation]] = []
    last = flow.run(spec, source(), rec, history=[], save_history=saved.append)
    assert rec.rounds == [last] and last.number == 1 and last.previous is None and last.handed == ()
    assert last.evaluation.resources["api"].recommended == 5  # 3 replicas at 50% for a 30% target
    assert [[(r.resource, r.replicas) for r in kept] for kept in saved] == [[("api", 5)]]
    assert capsys.readouterr() == ("", "")


def test_watch_sleeps_between_rounds_and_chains_the_previous_evaluation(spec) -> None:
    rec, slept = Recorder(), []
    last = flow.run(spec, source(), rec, history=[], watch_s=2.5, count=3, sleep=slept.append)
    assert [r.number for r in rec.rounds] == [1, 2, 3] and last is rec.rounds[-1]
    assert slept == [2.5, 2.5]  # not after the last round
    assert rec.rounds[1].previous is rec.rounds[0].evaluation and rec.rounds[2].previous is rec.rounds[1].evaluation


def test_watching_without_a_sleep_function_is_a_programming_error(spec) -> None:
    with pytest.raises(ValueError, match="sleep"):
        flow.run(spec, source(), Recorder(), history=[], watch_s=1.0)


def test_act_hands_a_decision_over_once_and_its_lines_go_to_the_reporter(spec, tmp_path, capsys) -> None:
    rec = Recorder()
    act = flow.Act(apply=False, state_dir=tmp_path / "state")
    flow.run(spec, source(), rec, history=[], act=act, watch_s=0.0, count=2, sleep=lambda s: None)
    [first, second] = rec.rounds
    [h] = first.handed
    assert (h.params, h.status, h.exit_code) == ({"replicas": 5}, "handed over", 0)  # only declared params
    [again] = second.handed  # the same decision is not handed over again, and says so
    assert (again.status, again.note) == ("not handed over", "scale_up to 5 was handed over in round 1")
    assert any("plan only; apply with --yes" in line for line in rec.lines)
    assert capsys.readouterr().out == ""  # the playbook's plan went to the reporter, not to stdout


def test_hand_over_of_an_unknown_playbook_fails_without_printing(tmp_path, capsys) -> None:
    said: list[str] = []
    plan = Handoff(resource="api", playbook="no-such-playbook", decision="scale_up", params={"replicas": 3})
    done = hand_over(plan, apply=False, state_dir=tmp_path, say=said.append)
    assert done.status == "failed" and done.exit_code == 2 and "no-such-playbook" in done.note
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize(("source_kind", "location", "target", "expected"), [
    ("scrape", "http://127.0.0.1:8080/metrics,http://127.0.0.1:8081/metrics", None, "http://127.0.0.1:8080"),
    ("scrape", "", None, "http://localhost:9000"),  # the spec's service.url
    ("scrape", "http://10.0.0.5:8080/metrics", None, None),  # not loopback: no local playbook target
    ("results", "run/results.json", "http://127.0.0.1:8099", "http://127.0.0.1:8099"),
    ("results", "run/results.json", None, None),  # the embedded service stopped with the run
    ("prometheus", "http://127.0.0.1:19090", None, None),
])
def test_local_service_url(source_kind, location, target, expected) -> None:
    assert local_service_url(source_kind, location, spec_url="http://localhost:9000",
                             measured_target=target) == expected


def test_the_flow_uses_the_recorded_clock_of_the_source(spec) -> None:
    last = flow.run(spec, source(), Recorder(), history=[])
    assert last.evaluation.now == dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)


HOST_SPEC = """
service: {name: s}
thresholds:
  - {resource: box, metric: disk, scale_up: 0.001%, for: 5s, queries: {host: disk}}
resources: {box: {min: 1, max: 3, current: 1}}
"""


def test_watching_a_live_source_fills_the_for_window(tmp_path) -> None:
    """Issue 18: `scale check --source host --watch 2 --count 3` kept observed_s at 0.0 ("only for less than
    1s") every round: the host source reads only the present, so each round must keep the ones before it.
    The real host source (disk usage of /, always above 0.001%), a clock that the sleep advances."""
    from opskit.metrics.host import HostSource

    p = tmp_path / "opskit.yaml"
    p.write_text(HOST_SPEC)
    times = [dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)]
    rec = Recorder()
    flow.run(load_spec(p), HostSource(interval_s=0), rec, history=[], watch_s=2.0, count=4,
             sleep=lambda s: times.append(times[-1] + dt.timedelta(seconds=s)), clock=lambda: times[-1])
    rows = [r.evaluation.decisions[0] for r in rec.rounds]
    assert [d.observed_s for d in rows] == [0.0, 2.0, 4.0, 6.0]
    assert [d.decision for d in rows] == ["hold", "hold", "hold", "scale_up"] and rows[2].pending
    assert "only for 4s of the 5s window" in rows[2].reason
    assert [d.samples for d in rows] == [1, 2, 3, 4]


def test_a_failed_read_is_not_filled_from_earlier_rounds(tmp_path) -> None:
    from opskit.metrics.host import HostSource

    p = tmp_path / "opskit.yaml"
    p.write_text(HOST_SPEC)
    spec = load_spec(p)
    src = HostSource(interval_s=0)
    t0 = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
    first, _ = collect.check(spec, src, now=t0)
    broken = spec.model_copy(update={"thresholds": [spec.thresholds[0].model_copy(
        update={"queries": spec.thresholds[0].queries.model_copy(update={"host": "disk:/no/such/dir"})})]})
    readings, ev = collect.check(broken, src, now=t0 + dt.timedelta(seconds=2), earlier=first)
    assert readings.series[0].error and ev.decisions[0].decision == "no_data"


def test_every_resource_gets_a_hand_over_entry_saying_why_not(tmp_path) -> None:
    """Issue 18: `api: scale_up 1 -> 2 ... current 1 is below min 2` handed nothing over and said nothing."""
    p = tmp_path / "opskit.yaml"
    p.write_text("""
service: {name: s}
thresholds:
  - {resource: api, metric: cpu_utilization, target: 30%}
  - {resource: db, metric: cpu_utilization, target: 30%}
resources: {api: {min: 2, max: 10}, db: {min: 1, max: 3}}
""")
    src = FileSource(SamplesFile.model_validate({
        "now": "2026-11-22T10:00:00Z", "resources": {"api": {"replicas": 1}, "db": {"replicas": 2}},
        "samples": [{"resource": r, "metric": "cpu_utilization", "value": v, "at": "2026-11-22T10:00:00Z"}
                    for r, v in (("api", 20), ("db", 30))]}))
    last = flow.run(load_spec(p), src, Recorder(), history=[], act=flow.Act(apply=False, state_dir=tmp_path))
    by = {h.resource: h for h in last.handed}
    assert {h.status for h in by.values()} == {"not handed over"}
    assert by["api"].note.startswith("scale_up, but no threshold of api that voted scale_up names a playbook")
    assert by["db"].note == "hold: nothing to hand over"
