"""The failure scenarios' traffic: a mixed read/write load (browse pages, get by id, create, delete what
this run created) that records every acknowledged write, so the run can check afterwards, in the database
itself, that none was lost (opskit/faults/writes.py reads the record).

params: "tenants" [{key, company_id}] as for assets.py; "writes_dir": where each generator process appends
`c ID` for every 201, `d ID` for every confirmed delete and `u ID` for a delete whose outcome is unknown.
Each task makes exactly one request (an arrival is a request in the open model).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import IO

from locust import between, task
from locust.contrib.fasthttp import FastHttpUser

from opskit.loadtest.context import params
from opskit.loadtest.tenants import Tenant, browse_page, get_seen

_record: IO[str] | None = None


def record(kind: str, asset_id: int) -> None:
    global _record
    directory = params().get("writes_dir")
    if not directory:
        return
    if _record is None:  # one file per process, lines flushed as they come (a killed run keeps them)
        _record = (Path(directory) / f"{os.getpid()}.log").open("a", encoding="utf-8", buffering=1)
    _record.write(f"{kind} {asset_id}\n")


def _asset() -> dict[str, object]:
    return {"address": f"{random.randint(1, 999)} Fault Street, Lisbon",
            "latitude": round(38.72 + random.uniform(-0.05, 0.05), 6),
            "longitude": round(-9.14 + random.uniform(-0.05, 0.05), 6)}


class FaultUser(FastHttpUser):
    wait_time = between(0.5, 2.0)

    def on_start(self) -> None:
        tenants = params().get("tenants") or []
        if not tenants:
            raise RuntimeError("no tenants: pass params.tenants [{key, company_id}]")
        self.tenants = [Tenant(t["key"], t["company_id"]) for t in tenants]

    def _tenant(self) -> Tenant:
        return random.choice(self.tenants)

    @task(45)
    def browse(self) -> None:
        t = self._tenant()
        ids = browse_page(self.client, t, limit=20)
        if ids is not None:
            t.seen = (ids + t.seen)[:200]

    @task(25)
    def get_by_id(self) -> None:
        t = self._tenant()
        if not t.seen:
            return self.browse()
        get_seen(self.client, t)

    @task(20)
    def create(self) -> None:
        t = self._tenant()
        with self.client.post("/api/assets", name="/api/assets", json=_asset(), headers=t.headers,
                              catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"HTTP {r.status_code}")
                return
            try:
                asset_id = int(json.loads(r.content)["id"])
            except (ValueError, KeyError, TypeError):
                r.failure("create answered without an id")
                return
            record("c", asset_id)
            t.created.append(asset_id)

    @task(10)
    def delete(self) -> None:
        t = self._tenant()
        if not t.created:
            return self.create()
        victim = t.victim()
        with self.client.request("DELETE", "/api/assets/delete", name="/api/assets/delete",
                                 json={"ids": [victim]}, headers=t.headers, catch_response=True) as r:
            if r.status_code == 200:
                record("d", victim)
            else:  # it may or may not have happened: not counted as lost either way
                record("u", victim)
                r.failure(f"HTTP {r.status_code}")
