"""resources.<r>.capacity_rps: {from: probe}: headroom, forecast, plan and report use the probe's answer and
say where it came from; a stale probe is flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opskit.capacity.inputs import measured_probe
from opskit.spec.schema import Spec

from .conftest import results_doc

SPEC = Path(__file__).resolve().parents[2] / "opskit.yaml"


def probe_doc(rate: float | None, *, started: str = "2026-12-01T10:00:00Z", sha: str = "abc1234") -> dict:
    doc = results_doc([(1.0, 50.0, 20.0), (4.0, 180.0, 60.0), (30.0, 200.0, 900.0)])
    doc["run"].update(scenario="probe-http-get", model="open", started_at=started, git_sha=sha,
                      run_id="20261201T100000Z-probe", target_name="embedded (1 worker)")
    doc["probe"] = {"model": "open", "max_rate_within_slo": rate, "saturation_rate": 200.0, "limited_by": "slo:p95",
                    "interval": [rate, 190.0], "slo": ["p95 < 200ms"], "error_budget": 0.01, "step_s": 3.0,
                    "notes": [], "steps": [
                        {"rate": 180.0, "achieved": 180.0, "p50": 30.0, "p95": 60.0, "p99": 90.0, "error_rate": 0.0,
                         "in_flight_max": 8, "verdict": "pass"},
                        {"rate": 190.0, "achieved": 185.0, "p50": 300.0, "p95": 900.0, "p99": 990.0,
                         "error_rate": 0.0, "in_flight_max": 200, "verdict": "slo:p95"}]}
    return doc


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example spec with capacity_rps: {from: probe}, run in a folder whose runs/ holds one probe."""
    text = SPEC.read_text(encoding="utf-8")
    assert "capacity_rps: 250," in text
    (tmp_path / "opskit.yaml").write_text(text.replace("capacity_rps: 250,", "capacity_rps: {from: probe},"),
                                          encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_probe(root: Path, doc: dict, name: str = "20261201T100000Z-probe") -> Path:
    folder = root / "runs" / name
    folder.mkdir(parents=True)
    path = folder / "results.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def spec_at(root: Path) -> Spec:
    from opskit.spec import load_spec

    return load_spec(str(root / "opskit.yaml"))


def test_the_newest_probe_is_the_capacity_with_its_provenance(project: Path) -> None:
    write_probe(project, probe_doc(180.0))
    found = measured_probe(spec_at(project), now=_at("2026-12-05T00:00:00Z"), head="abc1234")
    assert found is not None and found.rps == 180.0 and found.stale is None
    assert found.text == ("probe 20261201T100000Z-probe (2026-12-01, commit abc1234, target embedded (1 worker)): "
                          "180.0 req/s within the SLO")


@pytest.mark.parametrize(("now", "head", "words"), [
    ("2027-02-01T00:00:00Z", "abc1234", "measured 61 days ago, over max_age 30d"),
    ("2026-12-02T00:00:00Z", "fedcba9876", "measured at commit abc1234, the checkout is at fedcba9876"),
])
def test_a_stale_probe_is_flagged(project: Path, now: str, head: str, words: str) -> None:
    write_probe(project, probe_doc(180.0))
    found = measured_probe(spec_at(project), now=_at(now), head=head)
    assert found is not None and found.stale == words and f"STALE: {words}" in found.text


def test_forecast_and_report_size_from_the_probe(invoke, project: Path) -> None:
    write_probe(project, probe_doc(180.0, started="2025-06-01T10:00:00Z"))
    r = invoke("capacity", "forecast", "--spec", "opskit.yaml", "--months", "12", "-o", "json")
    assert r.exit_code == 0, r.stderr
    sizing = json.loads(r.stdout)["sizing"]
    assert sizing["capacity_rps"] == 180.0 and sizing["capacity_source"].startswith("probe 20261201T100000Z-probe")
    assert "capacity: probe 20261201T100000Z-probe (2025-06-01" in r.stderr
    assert "the capacity probe is stale: measured" in r.stderr and "over max_age 30d" in r.stderr
    rep = invoke("capacity", "report", "--spec", "opskit.yaml", "--out", "cap.html", "-o", "json")
    assert rep.exit_code == 0, rep.stderr
    headroom = next(h for h in json.loads(rep.stdout)["headlines"] if h["question"] == "Headroom today")
    assert "capacity from the probe 20261201T100000Z-probe" in headroom["answer"]


def test_without_a_step_run_the_report_says_the_capacity_is_the_probes(invoke, project: Path) -> None:
    doc = probe_doc(180.0)
    doc["steps"] = []  # a probe whose step runs are not in its results.json: no USL points at all
    write_probe(project, doc)
    rep = invoke("capacity", "report", "--spec", "opskit.yaml", "--out", "cap.html")
    assert rep.exit_code == 0, rep.stderr
    md = (project / "cap.md").read_text(encoding="utf-8")
    assert "Per-instance capacity comes from the probe." in md and "comes from the spec" not in md
    assert "`opskit capacity probe --model closed`" in md


def test_no_probe_or_a_probe_without_an_answer_is_one_line(invoke, project: Path, write_run) -> None:
    # `capacity fit` reads its run, not the spec's capacity: no probe is no problem there
    run = write_run([(1, 50, 20), (4, 180, 60), (30, 200, 900)])
    fit = invoke("capacity", "fit", "--spec", "opskit.yaml", str(run))
    assert fit.exit_code in (0, 1) and "probe" not in fit.stderr
    r = invoke("capacity", "forecast", "--spec", "opskit.yaml", "--months", "6")
    assert r.exit_code == 3
    assert "resources.api.capacity_rps is {from: probe} but runs/ holds no capacity probe" in r.stderr
    write_probe(project, probe_doc(None))
    r = invoke("capacity", "forecast", "--spec", "opskit.yaml", "--months", "6")
    assert r.exit_code == 3 and "found no rate within the SLO (slo:p95)" in r.stderr


def test_a_named_probe_run_and_a_bad_source_in_the_spec(project: Path) -> None:
    path = write_probe(project, probe_doc(150.0), name="old-probe")
    write_probe(project, probe_doc(180.0))
    text = (project / "opskit.yaml").read_text(encoding="utf-8")
    (project / "opskit.yaml").write_text(text.replace("{from: probe}", f"{{from: probe, run: {path.parent}}}"),
                                         encoding="utf-8")
    found = measured_probe(spec_at(project), head="")
    assert found is not None and found.rps == 150.0
    with pytest.raises(Exception, match="probe"):
        Spec.model_validate({"service": {"name": "x"}, "resources": {"api": {"capacity_rps": {"from": "guess"}}}})


def _at(text: str):
    import datetime as dt

    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_the_report_charts_the_knee_and_hides_a_usl_fit_below_it(invoke, project: Path) -> None:
    from .conftest import synthetic_levels

    # a step run far below its knee (peak at N ~ 31): the fit would be a confident curve about nothing
    low = project / "runs" / "20261130T000000Z-step"
    low.mkdir(parents=True)
    (low / "results.json").write_text(json.dumps(results_doc(synthetic_levels(0.05, 0.001, 100.0, [1, 2, 3, 4]))),
                                      encoding="utf-8")
    r = invoke("capacity", "report", "--spec", "opskit.yaml", "--results", str(low), "--out", "cap.html")
    assert r.exit_code == 3  # {from: probe} and no probe yet
    write_probe(project, probe_doc(180.0))
    r = invoke("capacity", "report", "--spec", "opskit.yaml", "--results", str(low), "--out", "cap.html")
    assert r.exit_code == 0, r.stderr
    md = (project / "cap.md").read_text(encoding="utf-8")
    html = (project / "cap.html").read_text(encoding="utf-8")
    assert "No USL fit shown: the steps reach" in md and "so the knee would be extrapolated" in md
    assert "Universal Scalability Law: sigma" not in html
    assert ("Capacity probe 20261201T100000Z-probe: knee 180.0 req/s within p95 < 200ms (limited by slo:p95), "
            "saturation 200.0 req/s completed.") in md
    assert "Latency vs throughput (capacity probe)" in html and "SLO p95 200 ms" in html
    # points that reach the plateau keep their fit
    r = invoke("capacity", "report", "--spec", "opskit.yaml", "--out", "cap2.html")
    assert r.exit_code == 0, r.stderr
    assert "Universal Scalability Law: sigma" in (project / "cap2.html").read_text(encoding="utf-8")


def test_recommend_reads_the_newest_probe(invoke, project: Path) -> None:
    r = invoke("capacity", "recommend", "--spec", "opskit.yaml")
    assert r.exit_code == 2 and "no capacity probe under runs/" in r.stderr
    write_probe(project, probe_doc(180.0))
    r = invoke("capacity", "recommend", "--spec", "opskit.yaml", "-o", "json")
    assert r.exit_code == 0, r.stderr
    rec = json.loads(r.stdout)
    # the example spec's api runs at a 70% utilization target: 180 x 0.7 per replica
    assert rec["knee_rps"] == 180.0 and rec["target_rps_per_instance"] == pytest.approx(126.0)
    rt = next(row for row in rec["rows"] if row["metric"] == "response_time_p95")
    # p95 is 60 ms at the knee, under a 500 ms scale_up: the row only fires once the SLO is broken
    assert rt["fires"] == "after" and rt["at_knee"] == 60.0
    table = invoke("capacity", "recommend", "--spec", "opskit.yaml")
    assert "autoscaling target at 70%: 126.0 req/s per replica" in table.stdout
