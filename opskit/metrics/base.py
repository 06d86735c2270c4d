"""The one interface every metrics source implements. Scaling decisions, playbook preconditions
and verification all read metrics through it; the file source doubles as the test fake."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any, Protocol, Self


@dataclass(frozen=True)
class Sample:
    value: float
    at: dt.datetime


@dataclass(frozen=True)
class Series:
    """What a source read for one (resource, metric): samples oldest first, or no data and why.

    A query that timed out, failed, returned an empty vector or NaN is no_data (with the query
    and the reason), never a 0."""

    resource: str
    metric: str
    samples: tuple[Sample, ...] = ()
    query: str = ""
    error: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def no_data(self) -> bool:
        return self.error is not None or not any(math.isfinite(s.value) for s in self.samples)

    @property
    def latest(self) -> float | None:
        for s in reversed(self.samples):
            if math.isfinite(s.value):
                return s.value
        return None


@dataclass(frozen=True)
class MetricRequest:
    """One metric to read: which resource and metric, how (the source's own query), over what window."""

    resource: str
    metric: str
    query: str | None = None
    window_s: float = 0.0  # 0: the latest value only; > 0: samples over [now - window, now]
    step_s: float = 15.0


class MetricsSource(Protocol):
    """Everything a caller may use of a source. Live sources (Prometheus, scrape, host) read now; recorded
    ones (a results file, a samples file) carry their own clock and past. SourceDefaults gives the
    answers of a source that has nothing to say (live, no history, nothing to close)."""

    name: str

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series: ...

    def replicas(self, resource: str) -> int | None:
        """Current replica/worker count of a resource when the source knows it."""
        ...

    @property
    def location(self) -> str:
        """Where it reads from (URL(s) or path) for people to see; "" when nowhere in particular."""
        ...

    @property
    def recorded_now(self) -> dt.datetime | None:
        """A recorded source's clock (the run's end, the file's `now`); None: it reads the present."""
        ...

    @property
    def measured_target(self) -> str | None:
        """The URL of the service a recorded load test measured, when that service outlives the run (not
        the embedded one); None otherwise."""
        ...

    def sample_times(self) -> list[dt.datetime]:
        """The times of every recorded sample (oldest first not promised); [] for a live source."""
        ...

    def history(self) -> list[tuple[str, int, dt.datetime]]:
        """Recommendations recorded with the samples: (resource, replicas, at); [] when none."""
        ...

    def close(self) -> None: ...


class SourceDefaults:
    """The protocol's answers for a source with nothing more to say; implementations override what they know."""

    @property
    def location(self) -> str:
        return ""

    @property
    def recorded_now(self) -> dt.datetime | None:
        return None

    @property
    def measured_target(self) -> str | None:
        return None

    def sample_times(self) -> list[dt.datetime]:
        return []

    def history(self) -> list[tuple[str, int, dt.datetime]]:
        return []

    def close(self) -> None:
        pass


class HttpBacked(SourceDefaults):
    """Closing for the sources that hold a pooled HTTP client (Prometheus, scrape)."""

    _client: Any  # an httpx.Client; not imported here, base stays free of httpx

    def close(self) -> None:
        self._client.close()

    def __del__(self) -> None:
        # callers that never close() must not leak pooled sockets (a ResourceWarning at garbage collection)
        client = getattr(self, "_client", None)
        if client is not None:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
