"""Tier rate limits shared by every worker and every instance through Redis (`service run --cache`).

The same token bucket as ratelimit.py: the Lua script refills and takes in one atomic step and returns
the refilled level, and `ratelimit.take` turns that level into the decision, so both limiters answer
alike to the request (same arithmetic on the same doubles; the level crosses as %.17g text, exactly).
The clock is the caller's (`now`), as for the local limiter: instances keep their clocks in step by NTP,
and an hour's window makes milliseconds of skew immaterial. A bucket's key expires after one window
untouched, when it would be full again anyway, so Redis keeps no idle keys.

When Redis cannot answer (the link's circuit is open) the local limiter decides: limits stay enforced,
per instance, from a full bucket.
"""

from __future__ import annotations

from typing import Protocol

from opskit.assetsvc.cache import PREFIX, RedisLink, Unavailable, link_for
from opskit.assetsvc.config import ServiceConfig
from opskit.assetsvc.ratelimit import Decision, RateLimiter, take

# KEYS: the bucket; ARGV: capacity, window in seconds, now. Returns the level before taking, as text.
_TAKE = """
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local rate = capacity / window
local tokens, last = capacity, now
local saved = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
if saved[1] then tokens = tonumber(saved[1]); last = tonumber(saved[2]) end
local elapsed = now - last
if elapsed < 0 then elapsed = 0 end
tokens = math.min(capacity, tokens + elapsed * rate)
local left = tokens
if tokens >= 1 then left = tokens - 1 end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', left), 'ts', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return string.format('%.17g', tokens)
"""


class Limiter(Protocol):
    def check(self, key_id: str, tier: str, now: float) -> Decision | None: ...


class SharedRateLimiter:
    """RateLimiter's check, with the bucket in Redis and the local limiter behind it."""

    def __init__(self, link: RedisLink, local: RateLimiter) -> None:
        self.link = link
        self.local = local
        self.limits = local.limits
        self.window_s = local.window_s
        self._take = link.client.register_script(_TAKE)

    def check(self, key_id: str, tier: str, now: float) -> Decision | None:
        capacity = self.limits.get(tier)
        if capacity is None:
            return None
        level = self.link.call(lambda r: self._take(
            keys=[f"{PREFIX}rl:{key_id}"], args=[capacity, repr(float(self.window_s)), repr(now)], client=r))
        if isinstance(level, Unavailable):
            return self.local.check(key_id, tier, now)
        decision, _ = take(float(level), now, now, capacity, self.window_s)
        return decision


def open_limiter(config: ServiceConfig) -> Limiter:
    """The limiter a worker uses: shared through Redis with --cache, else the run's local one."""
    local = RateLimiter(config.ratelimit_db, config.rate_limits, config.rate_window_s)
    if not config.cache_url:
        return local
    return SharedRateLimiter(link_for(config.cache_url), local)
