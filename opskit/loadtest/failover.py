"""Failover analysis (pure): how many requests failed after a service worker was killed, and how
long until the service recovered (the first second from which errors stay at zero for 3 s)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opskit.runmodel import Failover

CLEAN_S = 3


def analyse(timeline: Sequence[Mapping[str, Any]], killed_at_s: float, killed_pid: int | None) -> Failover:
    after = [r for r in timeline if r["t"] >= int(killed_at_s)]
    errors = sum(r["errors"] for r in after)
    recovered_at: float | None = None
    for i, row in enumerate(after):
        window = after[i:i + CLEAN_S]
        if len(window) == CLEAN_S and all(r["errors"] == 0 for r in window):
            recovered_at = float(row["t"])
            break
    return Failover(
        killed_at_s=round(killed_at_s, 3),
        errors_after_kill=errors,
        recovered=recovered_at is not None,
        recovery_s=round(max(recovered_at - killed_at_s, 0.0), 3) if recovered_at is not None else None,
        killed_pid=killed_pid,
    )
