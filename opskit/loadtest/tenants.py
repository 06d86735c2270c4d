"""What the asset service's locustfiles share (loadtests/assets.py, faults.py): a simulated tenant, and the
reads every one of them makes. No locust import: the locustfile passes its user's client in."""

from __future__ import annotations

import json
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from locust.contrib.fasthttp import FastHttpSession


class Tenant:
    def __init__(self, key: str, company_id: str) -> None:
        self.company_id = company_id
        self.headers = {"Authorization": f"Bearer {key}"}
        self.cursor: str | None = None
        self.seen: list[int] = []  # ids read from pages, for get-by-id
        self.created: list[int] = []  # ids this run created, for delete
        self.deleted: set[int] = set()  # a page read before a delete may still list these

    def remember(self, ids: list[int], into: list[int], keep: int = 500) -> None:
        into.extend(ids)
        if len(into) > keep:
            del into[: len(into) - keep]

    def victim(self) -> int:
        """One of the ids this run created, to delete now (remembered as deleted)."""
        victim = self.created.pop(random.randrange(len(self.created)))
        self.deleted.add(victim)
        return victim


def browse_page(client: FastHttpSession, t: Tenant, limit: int) -> list[int] | None:
    """GET the tenant's next page of assets (its cursor moves on): the page's ids, or None when the answer
    was not a page (the request is marked failed)."""
    url = f"/api/assets?limit={limit}" + (f"&cursor={t.cursor}" if t.cursor else "")
    with client.get(url, name="/api/assets", headers=t.headers, catch_response=True) as r:
        if r.status_code != 200:
            r.failure(f"HTTP {r.status_code}")
            return None
        try:
            body = json.loads(r.content or b"{}")
        except ValueError:
            r.failure("not JSON")
            return None
        t.cursor = body.get("next_cursor")
        return [a["id"] for a in body.get("data", [])]


def get_seen(client: FastHttpSession, t: Tenant) -> None:
    """GET one asset the tenant has read from a page."""
    asset_id = random.choice(t.seen)
    with client.get(f"/api/assets/{asset_id}", name="/api/assets/{id}", headers=t.headers,
                    catch_response=True) as r:
        if r.status_code == 404 and asset_id in t.deleted:
            r.success()  # this run deleted it after reading the page: not the service's fault
