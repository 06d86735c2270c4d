"""The host source: this machine through psutil. Readings (the threshold's `queries.host`):

    cpu                 CPU utilization %, over `interval_s`
    memory              memory used % (psutil's percent: (total - available) / total)
    swap                swap used %
    disk[:PATH]         disk space used % of the filesystem holding PATH (default /)
    disk_iops           disk reads + writes per second, over `interval_s`
    connections[:STATE] inet connections (e.g. connections:ESTABLISHED)
    load1               1-minute load average per core, in %
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from opskit.metrics.base import MetricRequest, Sample, Series, SourceDefaults

READINGS = ("cpu", "memory", "swap", "disk", "disk_iops", "connections", "load1")


class HostSource(SourceDefaults):
    name = "host"

    def __init__(self, *, interval_s: float = 1.0, sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval_s = interval_s
        self._sleep = sleep
        self._for: dt.datetime | None = None
        self._rates: dict[str, float] = {}

    def _interval_readings(self, now: dt.datetime) -> dict[str, float]:
        """CPU % and IOPS need two readings; take one pair per evaluation and share it."""
        import psutil

        if self._for == now:
            return self._rates
        psutil.cpu_percent(interval=None)  # starts psutil's own interval (it handles guest time and idle)
        io0 = psutil.disk_io_counters()
        t0 = time.monotonic()
        self._sleep(self.interval_s)
        cpu = psutil.cpu_percent(interval=None)
        io1 = psutil.disk_io_counters()
        elapsed = max(time.monotonic() - t0, 1e-6)
        rates = {"cpu": float(cpu)}
        if io0 is not None and io1 is not None:
            ops = (io1.read_count - io0.read_count) + (io1.write_count - io0.write_count)
            rates["disk_iops"] = max(ops, 0) / elapsed
        self._for, self._rates = now, rates
        return rates

    def reading(self, query: str, now: dt.datetime) -> float:
        import os

        import psutil

        kind, _, arg = query.strip().partition(":")
        if kind in ("cpu", "disk_iops"):
            rates = self._interval_readings(now)
            if kind not in rates:
                raise LookupError("this machine reports no disk I/O counters")
            return rates[kind]
        if kind == "memory":
            return float(psutil.virtual_memory().percent)
        if kind == "swap":
            return float(psutil.swap_memory().percent)
        if kind == "disk":
            return float(psutil.disk_usage(arg or "/").percent)
        if kind == "connections":
            conns = psutil.net_connections(kind="inet")
            return float(sum(1 for c in conns if not arg or c.status == arg.upper()))
        if kind == "load1":
            return 100.0 * os.getloadavg()[0] / (psutil.cpu_count() or 1)
        raise ValueError(f"unknown host reading {query!r}; known: {', '.join(READINGS)}")

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        if not request.query:
            return Series(request.resource, request.metric,
                          error=f"no host reading for {request.resource}.{request.metric} "
                                f"(thresholds[].queries.host in the spec)")
        try:
            value = self.reading(request.query, now)
        except (ValueError, LookupError, OSError) as exc:
            return Series(request.resource, request.metric, query=request.query, error=str(exc))
        except Exception as exc:  # psutil.AccessDenied and friends: a reading this user cannot take
            return Series(request.resource, request.metric, query=request.query,
                          error=f"{type(exc).__name__}: {exc}")
        return Series(request.resource, request.metric, (Sample(value, now),), query=request.query)

    def replicas(self, resource: str) -> int | None:
        return None

