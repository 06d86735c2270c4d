"""Seed 000's Redis cache (`service run --cache redis://...`): company asset pages for 300 s and company
stats for 3600 s, shared by every worker and instance, dropped on that company's writes.

Invalidation is by generation: each company has a generation key holding a random token, every cached
page and stats entry names the generation it was read under, and a write replaces the token. A reader
that raced a write stores its entry under the old token, where nobody looks again; the TTL removes it.
A missing generation key (never written, or evicted by allkeys-lru) is created with a fresh token, so
an eviction can never bring an older generation, and its stale entries, back.

Redis is an optimisation, never a dependency: every call has short socket timeouts, and a failure opens
a circuit that sends the calls to the store (and the limits to the local limiter) for RETRY_S before
Redis is tried again. A write whose invalidation could not reach Redis is remembered, and the first call
that reaches Redis again replaces the global epoch (part of every entry's key) before anything is read.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

from opskit.assetsvc.storage import (
    BulkWriter,
    CompanyStats,
    CreateRequest,
    FlatAssets,
    KeyRecord,
    NewAsset,
    Rejected,
    Storage,
)

log = logging.getLogger("assetsvc")

T = TypeVar("T")
PAGE_TTL_S = 300  # seed 000: company asset pages
STATS_TTL_S = 3600  # seed 000: company stats
# a loopback Redis answers in well under a millisecond; a quarter second leaves room for a busy machine
# while bounding what a Redis that hangs can add to a request
SOCKET_TIMEOUT_S = 0.25
RETRY_S = 3.0  # how long a failed Redis is left alone before a request tries it again
PREFIX = "opskit:assetsvc:"
PASSWORD_ENV = "REDIS_PASSWORD"  # the name the stack's redis-exporter reads too
SCHEMES = ("redis", "rediss", "unix")
# a seed touching more companies than this replaces the epoch instead of each company's generation
_MANY_COMPANIES = 100
# how often a worker asks a remote store (PostgreSQL) whether another instance wrote; the workers of one
# instance tell each other at once through LocalChanges
STORE_CHECK_S = 0.05

# KEYS: epoch, the company's generation; ARGV: key head, key tail, a token for a key that is missing.
# One round trip: the two generations and the entry they name.
_LOOKUP = """
local function current(key)
  local v = redis.call('GET', key)
  if not v then v = ARGV[3]; redis.call('SET', key, v) end
  return v
end
local entry = ARGV[1] .. current(KEYS[1]) .. ':' .. current(KEYS[2]) .. ARGV[2]
return {entry, redis.call('GET', entry)}
"""


class Unavailable:
    """What RedisLink.call returns when Redis cannot answer (distinct from any reply, None included)."""


UNAVAILABLE = Unavailable()


def check_url(url: str) -> str:
    """The URL, or ValueError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"expected a redis://HOST:PORT/DB URL, got {url!r}")
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"no host in {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    return url


def has_password(url: str) -> bool:
    return bool(urlsplit(url).password)


class Circuit:
    """Closed: Redis is used. A failure opens it for retry_s; the first call after that tries Redis again
    (and closes it on success). The clock is passed in, so tests need no sleeps."""

    def __init__(self, retry_s: float = RETRY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_s = retry_s
        self._clock = clock
        self._open_until = float("-inf")
        self.is_open = False

    def allows(self) -> bool:
        return self._clock() >= self._open_until

    def failed(self, exc: BaseException) -> None:
        if not self.is_open:
            log.warning("redis is unavailable (%s): serving from the store with local limits, retrying "
                        "every %.0f s", exc, self.retry_s)
        self.is_open = True
        self._open_until = self._clock() + self.retry_s

    def succeeded(self) -> None:
        if self.is_open:
            log.warning("redis answers again: cache and shared limits back on")
        self.is_open = False
        self._open_until = float("-inf")


class RedisLink:
    """One Redis client and its circuit, shared by the cache and the limiter of a worker."""

    def __init__(self, url: str, *, timeout_s: float = SOCKET_TIMEOUT_S, retry_s: float = RETRY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        password = None if has_password(url) else os.environ.get(PASSWORD_ENV) or None
        # no retries inside redis-py: one failed call opens the circuit, and the request goes on to the store
        self.client = redis.Redis.from_url(
            check_url(url), password=password, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), retry_on_timeout=False, health_check_interval=0,
        )
        self.circuit = Circuit(retry_s, clock)
        self.lookup = self.client.register_script(_LOOKUP)
        self._lost_invalidation = False
        self._lock = threading.Lock()  # the event loop and the executor threads share one link
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)

    def call(self, fn: Callable[[Any], T]) -> T | Unavailable:
        if not self.circuit.allows():
            return UNAVAILABLE
        try:
            if self._lost_invalidation:
                self.client.set(PREFIX + "epoch", secrets.token_hex(8))
                self._lost_invalidation = False
            result = fn(self.client)
        except self._errors as exc:
            with self._lock:
                self.circuit.failed(exc)
            return UNAVAILABLE
        if self.circuit.is_open:
            with self._lock:
                self.circuit.succeeded()
        return result

    def invalidate(self, key: str) -> None:
        """Give `key` (a generation or the epoch) a new token; remembered when Redis cannot take it now."""
        done = self.call(lambda r: r.set(key, secrets.token_hex(8)))
        if isinstance(done, Unavailable):
            self._lost_invalidation = True


_links: dict[str, RedisLink] = {}


def link_for(url: str) -> RedisLink:
    """The process's link to `url`: the cache and the limiter share one client and one circuit."""
    link = _links.get(url)
    if link is None:
        link = _links[url] = RedisLink(url)
    return link


class LocalChanges:
    """A token in an 8-byte shared file of the run dir: every write of any worker of this instance replaces
    it, so a worker sees its siblings' writes with one memory read per request, no round trip. Random
    tokens need no lock: a concurrent or torn write still differs from what a reader saw last."""

    def __init__(self, path: str) -> None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.ftruncate(fd, 8)
            self._map = mmap.mmap(fd, 8)
        finally:
            os.close(fd)
        self._seen = self._map[:8]

    def bump(self) -> None:
        self._map[:8] = secrets.token_bytes(8)

    def moved(self) -> bool:
        now = self._map[:8]
        moved, self._seen = now != self._seen, now
        return moved

    def close(self) -> None:
        self._map.close()


def _gen_key(company_id: str) -> str:
    return f"{PREFIX}gen:{company_id}"


class _Writer:
    """A bulk upload whose end (commit or rollback: SQLite batches are visible before either) drops the
    company's cached entries."""

    def __init__(self, inner: BulkWriter, done: Callable[[], None]) -> None:
        self._inner, self._done = inner, done

    def add(self, flat: FlatAssets) -> None:
        self._inner.add(flat)

    def commit(self) -> int:
        try:
            return self._inner.commit()
        finally:
            self._done()

    def rollback(self) -> None:
        try:
            self._inner.rollback()
        finally:
            self._done()


class CachedStorage:
    """A Storage whose company pages and stats go through Redis; everything else goes to the store."""

    def __init__(self, inner: Storage, link: RedisLink, run_dir: str = "",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.link = link
        self.kind = getattr(inner, "kind", "sqlite")
        # PostgreSQL answers changed() with a round trip, which cost more than the whole cached request:
        # with a run dir, siblings' writes come through LocalChanges and the store is asked every
        # STORE_CHECK_S (other instances' writes reach this worker's page cache within that)
        self.local = LocalChanges(os.path.join(run_dir, "changes")) if run_dir and self.kind != "sqlite" else None
        self._clock = clock
        self._next_check = float("-inf")

    def _wrote(self, key: str) -> None:
        if self.local is not None:
            self.local.bump()
        self.link.invalidate(key)

    def _cached(self, company_id: str, head: str, tail: str) -> tuple[bytes | None, bytes | None]:
        """(the entry's key, its value): (None, None) when Redis cannot answer."""
        got = self.link.call(lambda r: self.link.lookup(
            keys=[PREFIX + "epoch", _gen_key(company_id)], args=[head, tail, secrets.token_hex(8)], client=r))
        if isinstance(got, Unavailable):
            return None, None
        return got[0], got[1]

    def _store(self, key: bytes | None, value: str, ttl_s: int) -> None:
        if key is not None:
            self.link.call(lambda r: r.set(key, value, ex=ttl_s))

    def list_json(self, company_id: str, after_id: int, limit: int) -> tuple[str, int | None]:
        key, value = self._cached(company_id, PREFIX + "page:", f":{after_id}:{limit}:{company_id}")
        if value is not None:
            last, _, data = value.decode().partition("\n")
            return data, (int(last) if last else None)
        data, last_id = self.inner.list_json(company_id, after_id, limit)
        self._store(key, f"{'' if last_id is None else last_id}\n{data}", PAGE_TTL_S)
        return data, last_id

    def stats(self, company_id: str) -> CompanyStats:
        key, value = self._cached(company_id, PREFIX + "stats:", f":{company_id}")
        if value is not None:
            return CompanyStats(**json.loads(value))
        stats = self.inner.stats(company_id)
        self._store(key, json.dumps(stats.__dict__), STATS_TTL_S)
        return stats

    # writes: the store first, then the company's generation
    def create(self, company_id: str, rows: Sequence[NewAsset]) -> list[dict[str, object]]:
        try:
            return self.inner.create(company_id, rows)
        finally:
            self._wrote(_gen_key(company_id))

    def create_many(self, requests: Sequence[CreateRequest]) -> list[list[dict[str, object]] | Rejected]:
        try:
            return self.inner.create_many(requests)  # type: ignore[attr-defined]
        finally:
            for company_id in {r.company_id for r in requests}:
                self._wrote(_gen_key(company_id))

    def bulk(self, company_id: str) -> BulkWriter:
        return _Writer(self.inner.bulk(company_id), lambda: self._wrote(_gen_key(company_id)))

    def delete(self, company_id: str, ids: Sequence[int]) -> int:
        deleted = self.inner.delete(company_id, ids)
        if deleted:
            self._wrote(_gen_key(company_id))
        return deleted

    def seed(self, rows: Iterable[tuple[str, str, float, float, str]]) -> int:
        companies: set[str] = set()

        def noting() -> Iterator[tuple[str, str, float, float, str]]:
            for row in rows:
                companies.add(row[0])
                yield row

        try:
            return self.inner.seed(noting())
        finally:
            keys = [_gen_key(c) for c in companies] if len(companies) <= _MANY_COMPANIES else [PREFIX + "epoch"]
            for key in keys:
                self._wrote(key)

    def discard_unfinished_uploads(self, pid: int | None = None) -> int:
        removed = self.inner.discard_unfinished_uploads(pid)
        if removed:  # whose rows they were is gone with them: every company's entries go
            self._wrote(PREFIX + "epoch")
        return removed

    # the rest is the store's
    def get_json(self, company_id: str, asset_id: int) -> str | None:
        return self.inner.get_json(company_id, asset_id)

    def totals(self) -> tuple[int, int]:
        return self.inner.totals()

    def lookup_key(self, key: str) -> KeyRecord | None:
        return self.inner.lookup_key(key)

    def create_key(self, company_id: str, tier: str) -> str:
        return self.inner.create_key(company_id, tier)

    def revoke_key(self, key_id: str) -> KeyRecord | None:
        return self.inner.revoke_key(key_id)

    def changed(self) -> bool | frozenset[str]:
        if self.local is None:
            return self.inner.changed()
        moved = self.local.moved()
        if self._clock() >= self._next_check:
            self._next_check = self._clock() + STORE_CHECK_S
            moved = bool(self.inner.changed()) or moved  # always asked: it keeps its own last version
        return moved

    def check(self) -> None:
        self.inner.check()

    def close(self) -> None:
        if self.local is not None:
            self.local.close()
        self.inner.close()
