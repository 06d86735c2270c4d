"""The closed loop's load: one path at a fixed rate, a new connection per request.

Like `loadtests/http_get.py`, with `Connection: close`. The reference service's workers share one
listening socket (gunicorn's model): a keep-alive connection stays with the worker that accepted it, so a
generator holding a few long-lived connections may keep talking to one worker after a second has started,
and the second worker would idle. A connection per request is accepted by whichever worker is free, as
many independent clients behind a load balancer would be spread, so the load reaches every worker.
"""

from __future__ import annotations

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from opskit.loadtest.context import params


class FreshConnectionGet(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        p = params()
        self.path = p.get("path") or "/api/assets"
        tenants = p.get("tenants") or []
        self.headers = {"Connection": "close"}
        if tenants:
            self.headers["Authorization"] = f"Bearer {tenants[0]['key']}"

    @task
    def get(self) -> None:
        self.client.get(self.path, headers=self.headers)
