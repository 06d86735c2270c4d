from __future__ import annotations

from pathlib import Path

import pytest

from opskit.errors import ConfigError, UsageError
from opskit.loadtest import scenarios
from opskit.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "opskit.yaml"


@pytest.fixture(scope="module")
def spec():
    return load_spec(SPEC)


def test_every_shipped_scenario_loads(spec) -> None:
    names = {p.stem for p in scenarios.list_files(ROOT / "loadtests")}
    assert {"smoke", "baseline", "peak", "extreme", "soak", "spike", "step", "failover", "http-get"} <= names
    for name in names:
        sc = scenarios.load(name, spec, directory=ROOT / "loadtests")
        assert sc.stages and sc.duration_s > 0 and sc.locustfile.is_file()


def test_levels_come_from_the_growth_table(spec) -> None:
    d = ROOT / "loadtests"
    current_peak = 100_000 / 86_400 * 1.7  # daily_requests now x peak_to_mean
    baseline = scenarios.load("baseline", spec, directory=d)
    assert baseline.stages[0].start_rate == pytest.approx(current_peak * 1.2, rel=1e-3)
    month3 = (100_000 * 500_000) ** 0.5  # geometric between month 0 and 6
    peak = scenarios.load("peak", spec, directory=d)
    assert peak.stages[-1].end_rate == pytest.approx(month3 / 86_400 * 1.7, rel=1e-3)
    extreme = scenarios.load("extreme", spec, directory=d)
    assert extreme.peak_rate == pytest.approx(2 * peak.peak_rate, rel=1e-3)
    step = scenarios.load("step", spec, directory=d)
    assert [round(s.start_rate / peak.peak_rate) for s in step.stages] == [1, 5, 10, 25, 50, 100]
    assert len({s.name for s in step.stages}) == len(step.stages)


def test_options_reshape_the_scenario(spec) -> None:
    sc = scenarios.load("spike", spec, directory=ROOT / "loadtests")
    faster, _ = scenarios.adjust(sc, rate=100.0, duration_s=25.0)
    assert faster.peak_rate == pytest.approx(100.0)
    assert faster.duration_s == pytest.approx(25.0)
    assert faster.stages[0].start_rate / faster.peak_rate == pytest.approx(sc.stages[0].start_rate / sc.peak_rate)
    closed, _ = scenarios.adjust(sc, users=50)
    assert closed.model == "closed" and max(s.users for s in closed.stages) == 50
    capped, notes = scenarios.adjust(sc, rate=100.0, max_rps=30.0)
    assert capped.peak_rate == 30.0 and "max_rps" in notes[0]


def test_a_bad_scenario_file_is_located(tmp_path: Path, spec) -> None:
    (tmp_path / "bad.yaml").write_text("description: x\nlocustfile: a.py\nstages:\n  - {duration: 5s, rat: 3}\n")
    with pytest.raises(ConfigError) as err:
        scenarios.load("bad", spec, directory=tmp_path)
    assert "bad.yaml:4" in " ".join(err.value.details) and "rate" in " ".join(err.value.details)
    with pytest.raises(UsageError, match="did you mean 'bad'"):
        scenarios.load("bda", spec, directory=tmp_path)


def test_list_command_shows_every_scenario(invoke) -> None:
    import json

    result = invoke("loadtest", "list", "--output", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["scenarios"]}
    assert rows["smoke"]["model"] == "open" and rows["smoke"]["duration_s"] == 8
    assert rows["step"]["stages"] == 6 and rows["soak"]["duration_s"] == 3600
    assert all(r["description"] and "cannot be loaded" not in r["description"] for r in rows.values())


def test_bad_options_are_usage_errors(invoke) -> None:
    result = invoke("loadtest", "run", "smoke", "--users", "3", "--rate", "5")
    assert result.exit_code == 2 and "not both" in result.stderr
    result = invoke("loadtest", "run", "soak", "--duration", "2h")
    assert result.exit_code == 2 and "max_duration" in result.stderr
    result = invoke("loadtest", "run", "nosuch")
    assert result.exit_code == 2 and "no scenario named 'nosuch'" in result.stderr
    result = invoke("loadtest", "run", "smoke", "--target", "staging", "--users", "5")
    assert result.exit_code == 2 and "max_rps" in result.stderr


@pytest.mark.parametrize(("line", "tick_s"), [("", None), ("tick: auto\n", None), ("tick: 2ms\n", 0.002)])
def test_tick_is_auto_unless_a_duration_is_given(tmp_path: Path, spec, line: str, tick_s: float | None) -> None:
    stages = "stages:\n  - {duration: 5s, rate: 3}\n"
    (tmp_path / "t.yaml").write_text(f"description: x\nlocustfile: a.py\n{line}{stages}")
    assert scenarios.load("t", spec, directory=tmp_path).tick_s == tick_s


def test_a_bad_tick_is_located(tmp_path: Path, spec) -> None:
    stages = "stages:\n  - {duration: 5s, rate: 3}\n"
    (tmp_path / "t.yaml").write_text(f"description: x\nlocustfile: a.py\ntick: 1s\n{stages}")
    with pytest.raises(ConfigError) as err:
        scenarios.load("t", spec, directory=tmp_path)
    assert "t.yaml:3" in " ".join(err.value.details) and "tick" in " ".join(err.value.details)
