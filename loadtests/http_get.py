"""One path at a fixed rate against any URL: the wrk2/vegeta use case (`opskit loadtest run http-get
--host URL --rate 500 --path /health`). Sends the first tenant's key when one is known."""

from __future__ import annotations

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from opskit.loadtest.context import params


class HttpGet(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        p = params()
        self.path = p.get("path") or "/api/assets"
        tenants = p.get("tenants") or []
        self.headers = {"Authorization": f"Bearer {tenants[0]['key']}"} if tenants else {}

    @task
    def get(self) -> None:
        self.client.get(self.path, headers=self.headers)
