"""The asset service's traffic mix: browse pages with cursors, get by id, create, small CSV upload,
delete, company stats. Every simulated tenant has its own API key (params "tenants": [{key,
company_id}], or OPSKIT_LOADTEST_PARAMS when run with plain `locust -f`).

Each task makes exactly one request, so in the open model an arrival is a request and --rate is
requests per second. Browsing follows each tenant's cursor across arrivals (page 1, 2, ... and
back to the start), as a user paging through a list would. Weights are per 100 arrivals.

Data is owned per generator process (context.share): with `--processes N` each process works on its own
tenants, or, with fewer tenants than processes, on its own ids (id % N), so one process never reads an
asset another has just deleted (a 404 that is the test's own doing, not the service's).
"""

from __future__ import annotations

import json
import random

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from opskit.loadtest.context import Share, params, share
from opskit.loadtest.tenants import Tenant, browse_page, get_seen

CITIES = [("Berlin", 52.52, 13.405), ("Lisbon", 38.722, -9.139), ("Austin", 30.267, -97.743),
          ("Osaka", 34.694, 135.502), ("Nairobi", -1.292, 36.822), ("Lima", -12.046, -77.043)]


def _asset() -> dict[str, object]:
    city, lat, lon = random.choice(CITIES)
    return {"address": f"{random.randint(1, 999)} Load Test Street, {city}",
            "latitude": round(lat + random.uniform(-0.05, 0.05), 6),
            "longitude": round(lon + random.uniform(-0.05, 0.05), 6)}


def _csv(rows: int) -> str:
    lines = ["address,latitude,longitude"]
    for _ in range(rows):
        a = _asset()
        lines.append(f"\"{a['address']}\",{a['latitude']},{a['longitude']}")
    return "\n".join(lines) + "\n"


class AssetUser(FastHttpUser):
    share: Share
    wait_time = between(0.5, 2.0)  # think time in the closed model; the open model ignores it

    def on_start(self) -> None:
        tenants = params().get("tenants") or []
        if not tenants:
            raise RuntimeError("no tenants: pass params.tenants [{key, company_id}] or OPSKIT_API_KEYS")
        mine, self.share = share(tenants)
        self.tenants = [Tenant(t["key"], t["company_id"]) for t in mine]
        self.owns = self.share.owns

    def _tenant(self) -> Tenant:
        return random.choice(self.tenants)

    @task(40)
    def browse(self) -> None:
        t = self._tenant()
        ids = browse_page(self.client, t, limit=50)
        if ids is not None:
            t.remember([i for i in ids if self.owns(i)], t.seen)

    @task(25)
    def get_by_id(self) -> None:
        t = self._tenant()
        if not t.seen:
            return self.browse()
        get_seen(self.client, t)

    @task(15)
    def create(self) -> None:
        t = self._tenant()
        with self.client.post("/api/assets", name="/api/assets", json=_asset(), headers=t.headers,
                              catch_response=True) as r:
            if r.status_code == 201:
                try:
                    new_id = json.loads(r.content)["id"]
                    if self.owns(new_id):  # another process's id (shared tenants) is never deleted here
                        t.remember([new_id], t.created)
                except (ValueError, KeyError, TypeError):
                    r.failure("create answered without an id")

    @task(5)
    def upload_csv(self) -> None:
        t = self._tenant()
        self.client.post("/api/assets/upload", name="/api/assets/upload", data=_csv(20),
                         headers={**t.headers, "Content-Type": "text/csv"})

    @task(10)
    def delete(self) -> None:
        t = self._tenant()
        if not t.created:
            return self.create()
        victim = t.victim()
        if victim in t.seen:
            t.seen.remove(victim)
        self.client.request("DELETE", "/api/assets/delete", name="/api/assets/delete", json={"ids": [victim]},
                            headers=t.headers)

    @task(5)
    def company_stats(self) -> None:
        t = self._tenant()
        self.client.get(f"/api/companies/{t.company_id}/stats", name="/api/companies/{id}/stats",
                        headers=t.headers)
