"""The recommendation history the live sources keep between runs, for the stabilization windows."""

from __future__ import annotations

import datetime as dt

from opskit.scaling import collect
from opskit.scaling.model import Recommendation
from opskit.spec.schema import Spec

from .conftest import NOW


def test_history_round_trip_and_prune(tmp_path):
    recs = [Recommendation("api", 4, NOW - dt.timedelta(minutes=10)), Recommendation("api", 5, NOW)]
    collect.save_history(tmp_path, recs)
    assert collect.load_history(tmp_path) == recs
    assert collect.prune(recs, NOW, 300) == recs[1:]


def test_damaged_or_missing_history_is_empty(tmp_path):
    assert collect.load_history(tmp_path) == []
    (tmp_path / collect.HISTORY_FILE).write_text("{not json")
    assert collect.load_history(tmp_path) == []


def test_keep_window_follows_the_longest_stabilization():
    spec = Spec.model_validate({"service": {"name": "s"}, "resources": {
        "api": {"scale_down_stabilization": "15m"}, "db": {"scale_up_stabilization": "1m"}}})
    assert collect.keep_seconds(spec) == 900


def test_live_runs_accumulate_history(invoke, tmp_path):
    spec = tmp_path / "opskit.yaml"
    spec.write_text("""
service: {name: s}
thresholds:
  - {resource: box, metric: disk, scale_up: 100%, scale_down: 0%, queries: {host: disk}}
resources: {box: {min: 1, max: 3, current: 2}}
""")
    for _ in range(2):
        result = invoke("scale", "check", "--spec", str(spec), "--source", "host", "--interval", "0",
                        "--state-dir", str(tmp_path / "st"), "--output", "json")
        assert result.exit_code == 0, result.stderr
    history = collect.load_history(tmp_path / "st")
    assert [(r.resource, r.replicas) for r in history] == [("box", 2), ("box", 2)]
