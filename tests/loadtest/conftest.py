"""Fixtures for the load-test tests: real servers on loopback (stopped by the fixtures)."""

from __future__ import annotations

import pytest

from opskit.loadtest.stallserver import StallSchedule, StallServer


@pytest.fixture
def fast_server():
    with StallServer(StallSchedule(stall_s=0.0, service_s=0.0)) as server:
        yield server


@pytest.fixture
def stall_server():
    # a shorter cycle than facts.md's 2 s every 10 s so two whole cycles fit in a 10 s run
    with StallServer(StallSchedule(period_s=5.0, stall_s=1.0, service_s=0.010)) as server:
        yield server
