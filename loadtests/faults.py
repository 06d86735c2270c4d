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


class Tenant:
    def __init__(self, key: str, company_id: str) -> None:
        self.company_id = company_id
        self.headers = {"Authorization": f"Bearer {key}"}
        self.cursor: str | None = None
        self.seen: list[int] = []
        self.created: list[int] = []
        self.deleted: set[int] = set()


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
        url = "/api/assets?limit=20" + (f"&cursor={t.cursor}" if t.cursor else "")
        with self.client.get(url, name="/api/assets", headers=t.headers, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"HTTP {r.status_code}")
                return
            try:
                body = json.loads(r.content or b"{}")
            except ValueError:
                r.failure("not JSON")
                return
            t.cursor = body.get("next_cursor")
            t.seen = ([a["id"] for a in body.get("data", [])] + t.seen)[:200]

    @task(25)
    def get_by_id(self) -> None:
        t = self._tenant()
        if not t.seen:
            return self.browse()
        asset_id = random.choice(t.seen)
        with self.client.get(f"/api/assets/{asset_id}", name="/api/assets/{id}", headers=t.headers,
                             catch_response=True) as r:
            if r.status_code == 404 and asset_id in t.deleted:
                r.success()  # deleted by this run after the page was read

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
        victim = t.created.pop(random.randrange(len(t.created)))
        t.deleted.add(victim)
        with self.client.request("DELETE", "/api/assets/delete", name="/api/assets/delete",
                                 json={"ids": [victim]}, headers=t.headers, catch_response=True) as r:
            if r.status_code == 200:
                record("d", victim)
            else:  # it may or may not have happened: not counted as lost either way
                record("u", victim)
                r.failure(f"HTTP {r.status_code}")
