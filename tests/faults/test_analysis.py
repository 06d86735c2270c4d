"""The fault block's arithmetic, the fault spec, the registry and the gate's fault criteria (no stack)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from opskit.faults import analysis, writes
from opskit.faults.registry import Registry
from opskit.faults.schedule import Window
from opskit.faults.spec import FaultSpec
from opskit.gate.criteria import CriterionError, parse
from opskit.gate.evaluate import Sourced, judge
from opskit.runmodel import Fault, RunInfo, RunResults, Scope, Second

OBJ = analysis.Objectives(availability=0.999, p95_ms={"GET /api/assets": 200.0}, window_s=30 * 86400)


def sec(t: int, requests: int = 40, errors: int = 0, p95: float | None = 20.0) -> Second:
    return Second(t=t, requests=requests, errors=errors, p95=p95)


def test_recovery_is_the_first_second_after_clearing_from_which_five_are_within_the_slo():
    rows = [sec(t, errors=40 if 5 <= t < 12 else 0) for t in range(20)]
    assert analysis.recovery(rows, {}, 10.4, OBJ) == pytest.approx(1.6)  # t=12..16 clean
    rows[14] = sec(14, errors=1)  # 1 of 40 failed: above 0.1%
    assert analysis.recovery(rows, {}, 10.4, OBJ) == pytest.approx(4.6)  # t=15..19


def test_a_slow_endpoint_second_is_not_recovered_and_never_is_null():
    rows = [sec(t) for t in range(12)]
    slow = {"GET /api/assets": [sec(t, p95=900.0 if t < 9 else 20.0) for t in range(12)]}
    assert analysis.recovery(rows, slow, 5.0, OBJ) is None  # t=9..11: three clean seconds only
    assert analysis.recovery(rows, {"GET /api/other": slow["GET /api/assets"]}, 5.0, OBJ) == 0.0  # no objective


def test_budget_spent_is_the_share_of_the_windows_budget():
    # 100 req/s for 60 s, 30-day budget at 99.9%: 0.001 x 100 x 2,592,000 = 259,200 failures
    assert analysis.budget_spent(6000, 2592, 60.0, OBJ) == pytest.approx(0.01)
    assert analysis.budget_spent(0, 0, 60.0, OBJ) is None


def test_analyse_splits_errors_at_the_window():
    rows = [sec(t, errors=t) for t in range(10)]
    f = analysis.analyse(analysis.Timing("high-cpu-load", 3.2, 6.7, "x"), rows, {}, objectives=OBJ,
                         requests=400, failures=45, duration_s=10.0, p95_before_ms=1.0, p95_during_ms=2.0,
                         writes=(10, 0))
    assert (f.errors_during, f.errors_after) == (3 + 4 + 5, 6 + 7 + 8 + 9)
    assert f.acknowledged_writes == 10 and f.lost_writes == 0 and f.detail == "x"


def test_lost_writes_are_acknowledged_ids_neither_present_nor_deleted():
    log = writes.parse(["c 1", "c 2", "c 3", "c 4", "d 2", "u 3", "c 5x", "c"])
    assert log.created == {1, 2, 3, 4} and log.expected == {1, 4}


def test_a_fault_must_end_after_it_starts_and_scales_with_the_run():
    with pytest.raises(ValidationError, match="must come after"):
        FaultSpec(kind="high-cpu-load", at="20s", clear="10s")
    f = FaultSpec(kind="memory-pressure", at="20s", clear="35s", memory_max="512MiB").scaled(0.5)
    assert (f.at, f.clear, f.memory_max) == (10.0, 17.5, 512 * 1024**2)


class Recorder:
    kind = "test"

    def __init__(self, log: list[str], fail_clear: bool = False) -> None:
        self.log, self.fail_clear = log, fail_clear

    def inject(self) -> str:
        self.log.append("inject")
        return "done"

    def clear(self) -> None:
        self.log.append("clear")
        if self.fail_clear:
            raise RuntimeError("cannot")


def test_the_registry_clears_everything_on_the_way_out_even_when_one_clear_fails():
    log: list[str] = []
    with pytest.raises(KeyError), Registry() as registry:
        registry.inject(Recorder(log))
        registry.inject(Recorder(log, fail_clear=True))
        raise KeyError("the run broke")
    assert log == ["inject", "inject", "clear", "clear"]
    assert registry.active == ()


def test_the_window_fires_once_each_way_and_stop_ends_it_early():
    log: list[str] = []
    w = Window(Recorder(log), 5.0, 9.0, Registry())
    assert [w.tick(t) for t in (1.0, 5.2, 6.0)] == [False, True, False]
    assert w.stop() is True and w.stop() is False and w.tick(9.5) is False
    assert log == ["inject", "clear"] and w.injected_at_s == 5.2 and w.cleared_at_s is not None


def run_with(fault: Fault | None) -> RunResults:
    scope = Scope("(all)", 100, 0, 10.0, {"p95": 5.0}, ())
    return RunResults(run=RunInfo(scenario="database-connection-failure", model="open"), aggregate=scope,
                      fault=fault)


FAULT = Fault(kind="database-connection-failure", injected_at_s=20.0, cleared_at_s=35.0, errors_during=600,
              errors_after=3, error_budget_spent=0.03, p95_before_ms=20.0, p95_during_ms=12.0, recovery_s=2.5,
              acknowledged_writes=400, lost_writes=0)


@pytest.mark.parametrize(("expr", "status", "measured"), [
    ("recovery_s < 30s", "pass", "2.5s"),
    ("recovery_s < 2000ms", "fail", "2.5s"),
    ("lost_writes == 0", "pass", "0"),
    ("fault.error_budget_spent < 2%", "fail", "3%"),
    ("fault.errors_after <= 3", "pass", "3"),
])
def test_gate_criteria_judge_the_fault_block(expr, status, measured):
    v = judge(Sourced(parse(expr), "--criteria"), run_with(FAULT))
    assert (v.status, v.measured_text) == (status, measured)


def test_gate_fault_criteria_without_a_fault_or_a_recovery():
    assert judge(Sourced(parse("lost_writes == 0"), "x"), run_with(None)).status == "error"
    never = judge(Sourced(parse("recovery_s < 30s"), "x"), run_with(Fault(**{**FAULT.__dict__, "recovery_s": None})))
    assert (never.status, never.measured_text) == ("fail", "never recovered")


@pytest.mark.parametrize(("expr", "message"), [
    ("fault.p95 < 1", "unknown fault metric"),
    ("GET /api/assets: recovery_s < 30s", "not of an endpoint"),
    ("error_budget_spent < 2s", "share of the error budget"),
])
def test_bad_fault_criteria_point_at_the_problem(expr, message):
    with pytest.raises(CriterionError, match=message):
        parse(expr)


def test_loadtest_list_shows_the_failure_scenarios(invoke):
    import json

    result = invoke("loadtest", "list", "--output", "json")
    assert result.exit_code == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)["scenarios"]}
    for name in ("database-connection-failure", "redis-cache-failure", "high-cpu-load", "network-latency-spike",
                 "memory-pressure", "failover"):
        assert name in rows and rows[name]["model"] == "open", name
        assert "cannot be loaded" not in rows[name]["description"]
