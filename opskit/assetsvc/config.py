"""Settings shared by the supervisor and its workers; passed to workers as JSON in one environment variable."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass, field

CONFIG_ENV = "ASSETSVC_CONFIG"

TIERS = ("free", "pro", "enterprise", "internal")

# seed 000: requests per hour by company tier; None = unlimited (internal keys drive load tests)
DEFAULT_RATE_LIMITS: dict[str, int | None] = {"free": 100, "pro": 1000, "enterprise": 10000, "internal": None}

# seconds; the alert rules and SLO gates of the spec depend on 0.1, 0.2 and 5 being bounds
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2.5, 5, 10)

MB = 1024 * 1024


@dataclass(frozen=True)
class ServiceConfig:
    db_path: str
    run_dir: str = ""  # per-run scratch: worker count, multiprocess metrics, rate-limit state
    supervisor_pid: int = 0
    max_csv_bytes: int = 100 * MB
    max_json_bytes: int = 10 * MB
    max_body_bytes: int = 1 * MB  # POST /api/assets and DELETE bodies
    max_batch: int = 1000  # assets per POST /api/assets and ids per delete
    rate_limits: dict[str, int | None] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    rate_window_s: float = 3600.0
    buckets: tuple[float, ...] = DEFAULT_BUCKETS
    label_company: bool = False  # company_id on asset_operations_total: a cardinality hazard, off by default
    page_cache: bool = True  # list pages kept as bytes per worker until the store changes
    page_cache_bytes: int = 64 * MB  # per worker; oldest pages are dropped beyond it
    body_timeout_s: float = 30.0  # longest wait for the next bytes of a request body (408 beyond)
    # uploads in progress per worker; each holds a parser and a writer thread. Parsing shares the worker's
    # interpreter and SQLite takes one writer at a time, so 2 keep both busy; 4 measured slower, with
    # twice the memory and twice the p95 of other tenants' reads (bench_uploads.py, 2 A/B pairs)
    max_uploads: int = 2
    upload_queue: int = 64  # uploads per worker that may wait for one of those slots (503 at once beyond)
    upload_queue_wait_s: float = 10.0  # longest such a wait (503 with Retry-After beyond); 0 = no queue
    key_cache_ttl_s: float = 5.0  # a worker re-reads a cached key this often: a revoked key dies within it
    max_header_bytes: int = 16 * 1024  # request line excluded; 431 beyond
    max_headers: int = 100  # header fields per request; 431 beyond
    # idle keep-alive connections are closed after this long: uvicorn's 5 s made a user who reads a page
    # for 10 s reconnect on every request; 75 s is nginx's keepalive_timeout
    keep_alive_s: int = 75
    cache_url: str = ""  # redis://...: shared page/stats cache and rate limits (cache.py); "" = none

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        raw = json.loads(text)
        raw["buckets"] = tuple(raw["buckets"])
        return cls(**raw)

    @classmethod
    def from_env(cls) -> ServiceConfig:
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise RuntimeError(f"{CONFIG_ENV} is not set: workers are started by the supervisor")
        return cls.from_json(text)

    @property
    def metrics_dir(self) -> str:
        return os.path.join(self.run_dir, "metrics")

    @property
    def workers_file(self) -> str:
        return os.path.join(self.run_dir, "workers")

    @property
    def ratelimit_db(self) -> str:
        return os.path.join(self.run_dir, "ratelimit.db")

    @property
    def retired_cpu_file(self) -> str:
        return os.path.join(self.run_dir, "retired_cpu")


_LIMIT_RE = re.compile(r"^\s*(free|pro|enterprise|internal)\s*=\s*(unlimited|\d+)\s*(?:/\s*h)?\s*$")


def parse_rate_limits(text: str) -> dict[str, int | None]:
    """`free=100/h,pro=1000/h,internal=unlimited` -> limits per tier (tiers not named keep their default)."""
    limits = dict(DEFAULT_RATE_LIMITS)
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = _LIMIT_RE.match(part)
        if not m:
            raise ValueError(f"bad rate limit {part!r}: expected TIER=N/h or TIER=unlimited, tiers {', '.join(TIERS)}")
        limits[m.group(1)] = None if m.group(2) == "unlimited" else int(m.group(2))
    return limits
