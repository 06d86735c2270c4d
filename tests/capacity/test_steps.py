from __future__ import annotations

import json

import pytest

from opskit.capacity.steps import Step, parse_csv, parse_results, read_results, slo_capacity
from opskit.errors import ConfigError, RuntimeFailure

from .conftest import results_doc


def test_parse_results_reads_steps_and_skips_empty_ones():
    doc = results_doc([(1, 50.0, 10.0), (4, 180.0, 30.0)])
    doc["steps"].append({**doc["steps"][-1], "index": 2, "requests": 0})
    data = parse_results(doc, "r.json")
    assert [(s.concurrency, s.throughput, s.p95_ms) for s in data.steps] == [(1, 50.0, 10.0), (4, 180.0, 30.0)]
    assert data.run["scenario"] == "step"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda d: d.update(schema_version=3), "schema_version is 3"),
    (lambda d: d.pop("steps"), "no steps"),
    (lambda d: d["steps"][0].update(rps="fast"), "steps[0].rps: expected a number"),
    (lambda d: d["steps"][1].update(concurrency=None), "steps[1].concurrency"),
])
def test_bad_results_name_the_spot(mutate, message):
    doc = results_doc([(1, 50.0, 10.0), (4, 180.0, 30.0)])
    mutate(doc)
    with pytest.raises(RuntimeFailure, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_results(doc, "r.json")


def test_read_results_errors(tmp_path):
    with pytest.raises(RuntimeFailure, match="no such results file"):
        read_results(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema_version": 1,\n "steps": [', encoding="utf-8")
    with pytest.raises(RuntimeFailure, match=r"bad.json:2: not valid JSON"):
        read_results(bad)
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(results_doc([(1, 5.0, 3.0)])), encoding="utf-8")
    assert len(read_results(folder).steps) == 1  # a run folder works as well as its results.json


def test_csv_with_header_and_optional_columns():
    data = parse_csv("Concurrency,RPS,p95_ms\n1,10,5\n\n2,19.5,6.5\n", "d.csv")
    assert [(s.concurrency, s.throughput, s.p95_ms) for s in data.steps] == [(1, 10, 5), (2, 19.5, 6.5)]
    with pytest.raises(ConfigError, match="d.csv:1: expected a header"):
        parse_csv("a,b\n1,2\n", "d.csv")
    with pytest.raises(ConfigError, match="d.csv:3: expected numbers"):
        parse_csv("concurrency,throughput\n1,2\nthree,4\n", "d.csv")


def test_slo_capacity_interpolates_between_the_last_good_and_first_bad_step():
    steps = [Step(1, 100, 20), Step(2, 190, 60), Step(4, 300, 150), Step(8, 340, 400), Step(16, 330, 900)]
    cap = slo_capacity(steps, 200)
    assert cap.limited_by == "slo" and cap.measured_rps == 300
    # p95 150 -> 400 between 300 and 340 req/s: 200 ms is a fifth of the way: 308 req/s
    assert cap.estimated_rps == pytest.approx(308.0)


def test_slo_capacity_edges():
    assert slo_capacity([Step(1, 100, 20), Step(2, 150, 30)], 200).limited_by == "not reached"
    assert slo_capacity([Step(1, 100, 250)], 200).limited_by == "first step"
    # errors count as breaking the SLO even when latency holds
    errs = slo_capacity([Step(1, 100, 20, 0.0), Step(2, 180, 25, 0.05)], 200)
    assert errs.measured_rps == 100 and errs.limited_by == "slo"
    assert slo_capacity([Step(1, 10)], 200).limited_by == "no latency data"


def test_an_invalid_run_cannot_size_capacity(tmp_path):
    from opskit.capacity.inputs import newest_step_run

    doc = results_doc([(1, 50.0, 10.0), (4, 180.0, 30.0)])
    doc["run"].update(valid=False, invalid_reason="generator CPU above 90%")
    with pytest.raises(RuntimeFailure, match=r"marked invalid \(generator CPU above 90%\)"):
        parse_results(doc, "r.json")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "results.json").write_text(json.dumps(doc), encoding="utf-8")
    assert newest_step_run(tmp_path) is None  # passed over when picking the newest step run


def test_csv_header_aliases_and_bare_pairs():
    assert [(s.concurrency, s.throughput) for s in parse_csv("N,X\n1,64.9\n18,995.9\n", "d").steps] == \
        [(1, 64.9), (18, 995.9)]
    assert [(s.concurrency, s.throughput) for s in parse_csv("processors,throughput\n4,78\n", "d").steps] == [(4, 78)]
    assert [(s.concurrency, s.throughput) for s in parse_csv("1,20\n4,78\n", "d").steps] == [(1, 20), (4, 78)]
    with pytest.raises(ConfigError, match="d:2: expected numbers"):
        parse_csv("1,20\n4\n", "d")
    with pytest.raises(ConfigError, match="d:1: no data"):
        parse_csv("\n\n", "d")


def test_a_real_step_run_from_opskit_loadtest_parses_and_fits():
    """data/step-open-results.json: `opskit loadtest run step --duration 40s --rate 300` against the embedded
    service (histograms and most of the timeline stripped to keep it small)."""
    from pathlib import Path

    from opskit.capacity.usl import fit

    data = read_results(Path(__file__).parent / "data" / "step-open-results.json")
    assert len(data.steps) == 6 and data.run["scenario"] == "step"
    assert all(s.p95_ms is not None and s.error_rate is not None for s in data.steps)
    f = fit([s.concurrency for s in data.steps], [s.throughput for s in data.steps])
    assert f.r_squared > 0.9
    cap = slo_capacity(data.steps, 200)
    assert cap.limited_by == "not reached" and cap.measured_rps == max(s.throughput for s in data.steps)
