from __future__ import annotations

import datetime as dt

import pytest

from opskit.metrics.base import Sample, Series
from opskit.spec.schema import Resource, Threshold

NOW = dt.datetime(2026, 11, 22, 10, 0, tzinfo=dt.UTC)


def th(**kw) -> Threshold:
    base = {"resource": "api", "metric": "cpu_utilization"}
    return Threshold.model_validate({**base, **kw})


def series(values, *, step=15.0, resource="api", metric="cpu_utilization", end=NOW) -> Series:
    """Values oldest first, one every `step` seconds, the last at `end`."""
    n = len(values)
    return Series(resource, metric, tuple(Sample(float(v), end - dt.timedelta(seconds=step * (n - 1 - i)))
                                          for i, v in enumerate(values)))


@pytest.fixture
def res() -> dict[str, Resource]:
    return {"api": Resource(min=1, max=20)}
