"""Rate limits per company tier: a token bucket per API key, shared by all workers of one service run.

The arithmetic is pure (`take`); the state lives in a small SQLite file in the run directory so that N
workers enforce one limit, not N. `internal` keys (load tests) never touch it.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    retry_after_s: int  # 0 when allowed
    reset_s: int  # seconds until the bucket is full again (X-RateLimit-Reset)


def take(tokens: float, last: float, now: float, capacity: int, window_s: float) -> tuple[Decision, float]:
    """Refill the bucket for the time since `last`, then take one token. Returns the decision and the
    tokens left. A full bucket holds `capacity` requests; it refills at capacity per window."""
    rate = capacity / window_s
    tokens = min(float(capacity), tokens + max(0.0, now - last) * rate)
    allowed = tokens >= 1.0
    if allowed:
        tokens -= 1.0
    reset = math.ceil((capacity - tokens) / rate) if rate > 0 else int(window_s)
    if allowed:
        return Decision(True, capacity, int(tokens), 0, reset), tokens
    wait = math.ceil((1.0 - tokens) / rate) if rate > 0 else int(window_s)
    return Decision(False, capacity, 0, max(1, wait), reset), tokens


class RateLimiter:
    def __init__(self, path: str, limits: dict[str, int | None], window_s: float) -> None:
        self.limits = limits
        self.window_s = window_s
        self._conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        # the state is per service run and rebuilt from nothing on restart: durability buys nothing here
        self._wal()
        self._conn.execute("PRAGMA synchronous=OFF")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS buckets (key_id TEXT PRIMARY KEY, tokens REAL NOT NULL, ts REAL NOT NULL)"
        )

    def _wal(self) -> None:
        # workers start together and switching to WAL needs the database to itself; SQLite does not
        # always wait on its busy timeout for that switch, so the loser of the race tries again
        for attempt in range(100):
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.02)

    def check(self, key_id: str, tier: str, now: float) -> Decision | None:
        """None when the tier is unlimited, else the decision for one request now."""
        capacity = self.limits.get(tier)
        if capacity is None:
            return None
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT tokens, ts FROM buckets WHERE key_id = ?", (key_id,)).fetchone()
            tokens, last = row if row else (float(capacity), now)
            decision, left = take(tokens, last, now, capacity, self.window_s)
            conn.execute("INSERT OR REPLACE INTO buckets (key_id, tokens, ts) VALUES (?, ?, ?)", (key_id, left, now))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return decision
