"""The file and results sources: offline data with their own clocks."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest

from opskit.errors import ConfigError, RuntimeFailure
from opskit.metrics.base import MetricRequest
from opskit.metrics.file import FileSource
from opskit.metrics.results import ResultsSource, parse_path
from opskit.metrics.sources import make_source
from opskit.spec.schema import Spec

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)
SPEC = Spec.model_validate({"service": {"name": "asset-service"}})

SAMPLES_YAML = """
now: 2026-11-22T10:00:00Z
resources: {api: {replicas: 3}}
samples:
  - {resource: api, metric: cpu_utilization, value: 40, at: 2026-11-22T09:54:00Z}
  - {resource: api, metric: cpu_utilization, value: 80, at: 2026-11-22T09:56:00Z}
  - {resource: api, metric: cpu_utilization, value: 90, at: 2026-11-22T09:58:00Z}
  - {resource: api, metric: cpu_utilization, value: 85%}
  - {resource: api, metric: response_time_p95, value: 250ms, at: 2026-11-22 09:59:00}
  - {resource: api, metric: memory_utilization, value: .nan}
recommendations:
  - {resource: api, replicas: 4, at: 2026-11-22T09:59:00Z}
"""


@pytest.fixture
def file_source(tmp_path) -> FileSource:
    p = tmp_path / "samples.yaml"
    p.write_text(SAMPLES_YAML)
    src = make_source("file", str(p), SPEC)
    assert isinstance(src, FileSource)
    return src


def test_file_source_latest_window_and_replicas(file_source):
    assert file_source.recorded_now == NOW
    latest = file_source.read(MetricRequest("api", "cpu_utilization"), now=NOW)
    assert [s.value for s in latest.samples] == [85.0]  # `at` defaults to now; "85%" is 85
    window = file_source.read(MetricRequest("api", "cpu_utilization", window_s=300), now=NOW)
    assert [s.value for s in window.samples] == [80.0, 90.0, 85.0]
    assert file_source.replicas("api") == 3 and file_source.replicas("db") is None
    assert file_source.history() == [("api", 4, NOW - dt.timedelta(minutes=1))]


def test_file_source_units_naive_times_and_nan(file_source):
    p95 = file_source.read(MetricRequest("api", "response_time_p95"), now=NOW)
    assert p95.samples[0].value == 250.0 and p95.samples[0].at == NOW - dt.timedelta(minutes=1)
    mem = file_source.read(MetricRequest("api", "memory_utilization"), now=NOW)
    assert mem.no_data and math.isnan(mem.samples[0].value)
    assert file_source.read(MetricRequest("db", "iops"), now=NOW).error


def test_file_source_json_works_too(tmp_path):
    p = tmp_path / "s.json"
    p.write_text(json.dumps({"now": "2026-11-22T10:00:00+01:00", "samples": [
        {"resource": "api", "metric": "cpu_utilization", "value": 12}]}))
    src = FileSource.from_path(p)
    assert src.recorded_now == dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


def test_now_defaults_to_the_latest_sample(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text("samples:\n  - {resource: api, metric: cpu, value: 1, at: 2026-11-22T09:00:00Z}\n"
                 "  - {resource: api, metric: cpu, value: 2, at: 2026-11-22T10:00:00Z}\n")
    assert FileSource.from_path(p).recorded_now == NOW


@pytest.mark.parametrize(("text", "where"), [
    ("samples: []\n", "now: required key is missing"),
    ("samples:\n  - {resource: api, metric: x, value: 1}\n", "now: required key is missing"),
    ("now: yesterday\n", "now: "),
    ("now: 2026-11-22T10:00:00Z\nsamples:\n  - {resource: api, metric: x, value: lots}\n", "samples[0].value"),
    ("now: 2026-11-22T10:00:00Z\nresources: {api: {replicas: -1}}\n", "resources.api.replicas"),
    ("now: 2026-11-22T10:00:00Z\nnow: 2026-11-22T10:00:00Z\n", "duplicate key"),
])
def test_file_source_errors_are_located(tmp_path, text, where):
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as exc:
        FileSource.from_path(p)
    assert any(where in line for line in [exc.value.message, *exc.value.details]), exc.value.details


def results_doc(**run) -> dict:
    return {
        "schema_version": 1,
        "run": {"started_at": "2026-11-22T22:00:00Z", "ended_at": "2026-11-22T22:00:10Z", "valid": True, **run},
        "aggregate": {"requests": 500, "rps": 49.8, "error_rate": 0.004,
                      "latency_ms": {"p50": 3.1, "p95": 6.2, "p99": None}},
        "endpoints": {"GET /api/assets": {"latency_ms": {"p95": 6.0}}},
        "timeline": [{"t": 0, "p95": 5.0, "rps": 50.0}, {"t": 1, "p95": 7.0, "rps": 49.0}, {"t": 2, "rps": 48.0}],
    }


@pytest.fixture
def results(tmp_path):
    def make(**run) -> ResultsSource:
        d = tmp_path / "run-1"
        d.mkdir(exist_ok=True)
        (d / "results.json").write_text(json.dumps(results_doc(**run)))
        return ResultsSource.from_path(d)
    return make


def test_results_paths(results):
    src = results()
    end = src.recorded_now
    assert end == dt.datetime(2026, 11, 22, 22, 0, 10, tzinfo=dt.UTC)
    p95 = src.read(MetricRequest("api", "response_time_p95", "aggregate.latency_ms.p95"), now=end)
    # a whole-run figure holds from the start to the end of the run
    assert [(s.value, s.at) for s in p95.samples] == [(6.2, src.started), (6.2, end)]
    err = src.read(MetricRequest("api", "error_rate", "100 * aggregate.error_rate"), now=end)
    assert err.latest == pytest.approx(0.4)
    ep = src.read(MetricRequest("api", "p95", "endpoints[GET /api/assets].latency_ms.p95"), now=end)
    assert ep.latest == 6.0
    tl = src.read(MetricRequest("api", "p95", "timeline.p95"), now=end)
    assert [s.value for s in tl.samples] == [5.0, 7.0]
    assert tl.samples[1].at == src.started + dt.timedelta(seconds=1)


@pytest.mark.parametrize(("path", "why"), [
    ("aggregate.latency_ms.p999", "not in"),
    ("aggregate.latency_ms.p99", "null"),
    ("aggregate.latency_ms", "not a number"),
    (None, "no results path"),
])
def test_results_no_data(results, path, why):
    src = results()
    s = src.read(MetricRequest("api", "x", path), now=src.recorded_now)
    assert s.no_data and why in (s.error or "")


def test_invalid_run_answers_nothing(results):
    src = results(valid=False, invalid_reason="generator CPU above 90%")
    s = src.read(MetricRequest("api", "p95", "aggregate.latency_ms.p95"), now=src.recorded_now)
    assert s.no_data and "generator CPU" in (s.error or "")


def test_results_file_errors(tmp_path):
    with pytest.raises(RuntimeFailure, match="no such results file"):
        ResultsSource.from_path(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1,\n "run": ')
    with pytest.raises(RuntimeFailure, match=r"bad.json:2: not valid JSON"):
        ResultsSource.from_path(bad)
    old = tmp_path / "old.json"
    old.write_text('{"schema_version": 0}')
    with pytest.raises(RuntimeFailure, match=r"schema_version 2 \(and 1\)"):
        ResultsSource.from_path(old)


def test_parse_path():
    assert parse_path("aggregate.error_rate * 100") == (100.0, ["aggregate", "error_rate"])
    assert parse_path("endpoints[POST /api/assets/upload].rps") == (
        1.0, ["endpoints", "POST /api/assets/upload", "rps"])


def test_scale_check_from_results(invoke, tmp_path, results):
    results()
    spec = tmp_path / "opskit.yaml"
    spec.write_text("""
service: {name: asset-service}
thresholds:
  - {resource: api, metric: response_time_p95, scale_up: 5ms, scale_down: 1ms, for: 5s,
     queries: {results: aggregate.latency_ms.p95}}
resources: {api: {min: 1, max: 8, current: 2}}
""")
    result = invoke("scale", "check", "--spec", str(spec), "--source", "results", "--from",
                    str(tmp_path / "run-1" / "results.json"), "--output", "json")
    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["decisions"][0]["decision"] == "scale_up"  # 6.2ms above 5ms for the run's 10 s >= 5 s
    assert doc["resources"]["api"]["recommended"] == 5  # ceil(2 x 6.2 / 3), midpoint of 1..5 ms


def test_results_default_is_the_newest_run(invoke, tmp_path, monkeypatch):
    import os
    import time

    for i, p95 in enumerate((9.0, 2.0)):
        d = tmp_path / "runs" / f"run-{i}"
        d.mkdir(parents=True)
        doc = results_doc()
        doc["aggregate"]["latency_ms"]["p95"] = p95
        (d / "results.json").write_text(json.dumps(doc))
        os.utime(d / "results.json", (time.time() - 100 + i, time.time() - 100 + i))
    (tmp_path / "opskit.yaml").write_text("""
service: {name: asset-service}
thresholds:
  - {resource: api, metric: p95, scale_up: 5ms, queries: {results: aggregate.latency_ms.p95}}
resources: {api: {current: 2}}
""")
    monkeypatch.chdir(tmp_path)
    result = invoke("scale", "check", "--source", "results", "--output", "json")
    doc = json.loads(result.stdout)
    assert doc["from"].endswith("run-1/results.json") and doc["decisions"][0]["value"] == 2.0
    assert result.exit_code == 0
    monkeypatch.chdir(tmp_path / "runs")
    missing = invoke("scale", "check", "--spec", str(tmp_path / "opskit.yaml"), "--source", "results")
    assert missing.exit_code == 2 and "opskit loadtest run" in missing.stderr


def test_timeline_paths_read_version_2_rows_and_the_old_name(tmp_path):
    """schema_version 2 nests each second's percentiles in latency_ms: `timeline.latency_ms.p95` reads
    them, and a spec written for version 1 (`timeline.p95`) keeps reading the same figure."""
    doc = results_doc()
    doc["schema_version"] = 2
    doc["timeline"] = [{"t": 0, "rps": 50.0, "latency_ms": {"p95": 5.0}}, {"t": 1, "rps": 49.0,
                       "latency_ms": {"p95": 7.0}}, {"t": 2, "rps": 48.0, "latency_ms": {"p95": None}}]
    (tmp_path / "results.json").write_text(json.dumps(doc))
    src = ResultsSource.from_path(tmp_path / "results.json")
    for path in ("timeline.latency_ms.p95", "timeline.p95"):
        tl = src.read(MetricRequest("api", "p95", path), now=src.recorded_now)
        assert [s.value for s in tl.samples] == [5.0, 7.0], path
    assert [s.value for s in src.read(MetricRequest("api", "rps", "timeline.rps"), now=src.recorded_now).samples] \
        == [50.0, 49.0, 48.0]
