"""Every source answers every member of MetricsSource: callers never probe a source for hidden duties."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from opskit.metrics.base import MetricsSource
from opskit.metrics.sources import make_source
from opskit.spec.schema import Spec

SPEC = Spec.model_validate({"service": {"name": "asset-service", "url": "http://127.0.0.1:9"}})
RUN = {"started_at": "2026-11-22T22:00:00Z", "ended_at": "2026-11-22T22:00:10Z", "valid": True}


def results_file(tmp_path: Path, **run: object) -> str:
    p = tmp_path / "results.json"
    p.write_text(json.dumps({"schema_version": 1, "run": {**RUN, **run}, "aggregate": {}}))
    return str(p)


def samples_file(tmp_path: Path) -> str:
    p = tmp_path / "samples.json"
    p.write_text(json.dumps({
        "now": "2026-11-22T10:00:00Z",
        "samples": [{"resource": "api", "metric": "cpu", "value": 1, "at": "2026-11-22T09:59:00Z"}],
        "recommendations": [{"resource": "api", "replicas": 4, "at": "2026-11-22T09:58:00Z"}]}))
    return str(p)


def members(src: MetricsSource) -> tuple[object, ...]:
    try:
        return (src.location, src.recorded_now, src.measured_target, src.sample_times(), src.history())
    finally:
        src.close()


def test_live_sources_have_no_clock_past_or_target_and_say_where_they_read() -> None:
    assert members(make_source("prometheus", "http://127.0.0.1:9/", SPEC)) == ("http://127.0.0.1:9", None, None, [], [])
    assert members(make_source("scrape", "http://127.0.0.1:9/metrics,http://127.0.0.1:10/metrics", SPEC)) == (
        "http://127.0.0.1:9/metrics,http://127.0.0.1:10/metrics", None, None, [], [])
    assert members(make_source("host", None, SPEC)) == ("", None, None, [], [])


def test_a_samples_file_carries_its_clock_samples_and_recommendations(tmp_path: Path) -> None:
    path = samples_file(tmp_path)
    at = dt.datetime(2026, 11, 22, 9, 59, tzinfo=dt.UTC)
    assert members(make_source("file", path, SPEC)) == (
        path, dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC), None, [at],
        [("api", 4, dt.datetime(2026, 11, 22, 9, 58, tzinfo=dt.UTC))])


@pytest.mark.parametrize(("run", "target"), [
    ({"target_name": "local", "target": "http://127.0.0.1:8000"}, "http://127.0.0.1:8000"),
    ({"target_name": "embedded", "target": "http://127.0.0.1:8000"}, None),  # stopped with the run
    ({}, None),
])
def test_a_results_file_names_the_target_it_measured_unless_it_was_embedded(tmp_path: Path, run, target) -> None:
    path = results_file(tmp_path, **run)
    assert members(make_source("results", path, SPEC)) == (
        path, dt.datetime(2026, 11, 22, 22, 0, 10, tzinfo=dt.UTC), target, [], [])
