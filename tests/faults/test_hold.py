"""The memory hold counts as injected once its bytes are resident: the bounded wait (a scripted reader on a
stepped clock) and a real 64 MiB stress-ng hold read from outside by its pid (no stack needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import psutil
import pytest

from opskit.faults import analysis, injectors
from opskit.faults.injectors import MIB, HoldMemory, wait_resident
from opskit.faults.registry import Registry
from opskit.faults.schedule import Window


class Steps:
    """A clock that moves only when the code under test sleeps, and a reader that returns the next value
    on each call (the last one from then on)."""

    def __init__(self, values: list[int | None]) -> None:
        self.values = values
        self.now = 100.0
        self.reads = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds

    def read(self) -> int | None:
        self.reads += 1
        return self.values[min(self.reads, len(self.values)) - 1]


def test_the_wait_ends_once_95_percent_of_the_plan_is_resident():
    s = Steps([0, 30 * MIB, 90 * MIB, 96 * MIB, 100 * MIB])
    got, waited, done = wait_resident(s.read, 100 * MIB, 10.0, clock=s.clock, sleep=s.sleep)
    assert (got, done, s.reads) == (96 * MIB, True, 4)  # stops at the first read at 95% or more
    assert waited == pytest.approx(3 * injectors.RAMP_POLL_S)


def test_the_bound_passing_first_reports_what_was_resident_then():
    s = Steps([0, 10 * MIB, 40 * MIB])
    got, waited, done = wait_resident(s.read, 100 * MIB, 0.35, clock=s.clock, sleep=s.sleep)
    assert (got, done) == (40 * MIB, False)
    assert waited == pytest.approx(0.35, abs=0.002)  # the last sleep is cut to the bound, not a poll beyond


def test_a_holder_that_ends_stops_the_wait_with_what_it_last_held():
    s = Steps([20 * MIB, None, 100 * MIB])
    assert wait_resident(s.read, 100 * MIB, 10.0, clock=s.clock, sleep=s.sleep)[::2] == (20 * MIB, False)
    assert s.reads == 2


def test_the_bound_is_at_most_10_s_and_half_the_window():
    assert injectors.ramp_bound(3.0) == 1.5
    assert injectors.ramp_bound(15.0) == 7.5
    assert injectors.ramp_bound(600.0) == injectors.RAMP_MAX_S == 10.0


def tree_rss(pid: int) -> int:
    root = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])


@pytest.mark.skipif(shutil.which("stress-ng") is None, reason="stress-ng missing: run scripts/setup.sh")
def test_a_real_hold_is_resident_when_the_window_says_injected_and_gone_when_cleared(tmp_path: Path):
    hold = HoldMemory(until_pct=100, max_bytes=64 * MIB, log=tmp_path / "fault.log", bound_s=20.0, ramp_bound_s=10.0)
    window = Window(hold, at_s=1.0, clear_s=5.0, registry=Registry())
    try:
        assert window.tick(1.0)
        assert hold.child is not None
        pid = hold.child.pid
        outside = tree_rss(pid)  # read right after inject() returned, by the child's pid
        assert window.held_bytes is not None and window.held_bytes >= 0.95 * 64 * MIB
        assert outside >= 0.95 * 64 * MIB
        assert window.ramp_s is not None and 0 < window.ramp_s <= 10.5
        assert window.detail is not None and f"holding {window.held_bytes / MIB:.0f} MiB resident" in window.detail
        assert window.tick(5.0) and window.cleared_at_s is not None
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        hold.clear()


def test_the_window_says_when_the_fault_was_in_force():
    t = analysis.Timing("memory-pressure", 4.2, 7.1, "x", ramp_s=1.5, held_bytes=64 * MIB)
    assert t.in_force_at_s == pytest.approx(5.7)
    assert analysis.Timing("redis-cache-failure", 4.2, 7.1).in_force_at_s == 4.2
    assert analysis.Timing("redis-cache-failure", None, None).in_force_at_s is None
