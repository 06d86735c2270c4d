"""Users who think for seconds between requests, each on its own keep-alive connection: seed 000's
"10,000 users, each sending a GET about every 10 s" (about 1,000 req/s in all).

params: think_s (default 10; each wait is 0.8-1.2x it), path (default /api/assets?limit=50), tenants
([{key, company_id}], one picked per user). A user's requests share one connection (FastHttpUser keeps
it), so this also checks that the service keeps idle connections for longer than the think time: the
open connections stay at the user count.

Each user first waits a random part of one think time: Locust starts a second's worth of users (the
spawn rate) at the same instant, and 200 first requests, each opening its connection, in one burst
every second measured the burst (p95 ~120 ms during the ramp, 2-5 ms after it), not users who each
come back about every 10 s at their own moment.
"""

from __future__ import annotations

import random

import gevent
from locust import task
from locust.contrib.fasthttp import FastHttpUser

from opskit.loadtest.context import params


class KeepAliveUser(FastHttpUser):
    def wait_time(self) -> float:
        return self.think_s * random.uniform(0.8, 1.2)

    def on_start(self) -> None:
        p = params()
        self.think_s = float(p.get("think_s", 10))
        self.path = str(p.get("path") or "/api/assets?limit=50")
        tenants = p.get("tenants") or []
        tenant = random.choice(tenants) if tenants else None
        self.headers = {"Authorization": f"Bearer {tenant['key']}"} if tenant else {}
        gevent.sleep(random.uniform(0, self.think_s))  # each user at its own phase of the think time

    @task
    def get(self) -> None:
        self.client.get(self.path, name=self.path.split("?")[0], headers=self.headers)
