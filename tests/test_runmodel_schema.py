"""docs/results-schema.md and the run model (opskit/runmodel/) name the same keys, block by block."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from opskit import runmodel
from opskit.resultsfile import UnreadableResults, load_run

DOC = Path(__file__).resolve().parents[1] / "docs" / "results-schema.md"


def documented() -> dict:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)```", text, re.S)
    assert block, "docs/results-schema.md has no JSON example"
    # `// comments` follow whitespace; a URL's // follows a colon
    return json.loads(re.sub(r"\s+//[^\n]*", "", block.group(1)))


def model_keys(cls: type) -> set[str]:
    fields = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("derived")}
    return fields | set(getattr(cls, "JSON_COMPUTED", ()))


def test_every_documented_key_is_in_the_model_and_back():
    doc = documented()
    endpoint = next(iter(doc["endpoints"].values()))
    timeline_rows = doc["timeline"] + endpoint["timeline"]
    blocks = [
        ("top level", runmodel.RunResults, set(doc)),
        ("run", runmodel.RunInfo, set(doc["run"])),
        ("run.stages[]", runmodel.Stage, set().union(*doc["run"]["stages"])),
        ("aggregate and endpoints.*", runmodel.Scope, set(doc["aggregate"]) | set(endpoint)),
        ("timeline[]", runmodel.Second, set().union(*timeline_rows)),
        ("steps[]", runmodel.Step, set().union(*doc["steps"])),
        ("generator", runmodel.Generator, set(doc["generator"])),
        ("generator.workers[]", runmodel.Worker, set().union(*doc["generator"]["workers"])),
        ("failover", runmodel.Failover, set(doc["failover"])),
        ("fault", runmodel.Fault, set(doc["fault"])),
        ("histograms", runmodel.Histograms, set(doc["histograms"])),
    ]
    for where, cls, keys in blocks:
        model = model_keys(cls)
        assert keys - model == set(), f"{where}: documented but not in {cls.__name__}"
        assert model - keys == set(), f"{where}: in {cls.__name__} but not documented"


def test_the_documented_example_reads_into_the_model():
    doc = documented()
    doc["histograms"] = {"unit": "us", "aggregate": "x", "endpoints": {}, "steps": []}
    run = runmodel.read(doc, "example")
    assert run.scenario == "smoke" and run.total.requests == 500
    assert run.steps is not None and run.steps[0].concurrency == 1.2
    assert run.generator is not None and run.generator.cpu_samples == {"0": (30.0, 31.5, 29.0)}
    assert run.failover is not None and run.failover.killed_pid == 4242
    assert run.fault is not None and run.fault.recovery_s == 1.8 and run.fault.lost_writes == 0
    assert run.run.stages[0].start_rate == 50.0
    assert run.timeline[0].step == 0 and run.timeline[0].in_flight == 1


def test_another_schema_version_is_one_clear_error(tmp_path):
    doc = documented()
    doc["schema_version"] = 3
    path = tmp_path / "results.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(UnreadableResults) as exc:
        load_run(path)
    assert exc.value.kind == "schema"
    assert str(exc.value) == (f"{path}: schema_version is 3; this opskit reads schema_version 2 (and 1) "
                              "(docs/results-schema.md)")


def test_a_version_1_file_reads_the_same_as_its_version_2_form():
    """schema_version 1 held each second's p50/p95/p99 beside t (and the probe steps' beside the rate);
    version 2 nests them in latency_ms. Both read to the same model, for one version."""
    new = documented()
    old = json.loads(json.dumps(new))
    old["schema_version"] = 1
    for row in old["timeline"] + next(iter(old["endpoints"].values()))["timeline"] + old["probe"]["steps"]:
        row.update(row.pop("latency_ms"))
    a, b = runmodel.read(new, "v2"), runmodel.read(old, "v1")
    assert a.timeline == b.timeline and a.timeline[0].p95 == 6.1 and a.timeline[0].latency_ms["p99"] == 11.0
    assert a.endpoints["GET /api/assets"].timeline == b.endpoints["GET /api/assets"].timeline
    assert a.probe == b.probe and a.probe is not None and a.probe.steps[0].p95 == 150.2


def test_the_runner_config_travels_as_json_and_comes_back_the_same():
    import json as json_mod

    cfg = runmodel.RunnerConfig(
        scenario="smoke", model="open", host="http://127.0.0.1:1", locustfile="/x/assets.py",
        stages=(runmodel.Stage("a", 2.0, 5.0, 10.0, None), runmodel.Stage("b", 3.0, 10.0, 10.0, None)),
        max_in_flight=20, timeout_s=5.0, out_dir="/tmp/run", user_classes=("AssetUser",), tick_s=None,
        params={"path": "/", "tenants": [{"company_id": "c", "key": "k"}]},
        run=runmodel.RunMeta(run_id="r1", scenario="smoke", versions={"opskit": "0"},
                             stages=(runmodel.Stage("a", 2.0, 5.0, 10.0, None),)))
    back = runmodel.RunnerConfig.from_json(json_mod.loads(json_mod.dumps(cfg.to_json())))
    assert back == cfg
    assert back.duration_s == 5.0 and back.open_model
