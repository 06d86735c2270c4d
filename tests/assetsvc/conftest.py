from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
from click.testing import CliRunner

from opskit.cli import cli
from opskit.localservice import LocalService

# small limits so the limit paths are cheap to reach
SERVICE_ARGS = ["--rate-limits", "free=5/h", "--max-csv-mb", "1", "--max-json-mb", "0.25"]


def create_key(db: str, company: str, tier: str) -> str:
    result = CliRunner().invoke(cli, ["service", "keys", "create", "--company", company, "--tier", tier,
                                      "--db", db, "--output", "json"])
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["key"])


@pytest.fixture
def new_key(service: LocalService):
    """Create a key for the shared service's store: new_key(company, tier) -> key."""
    return lambda company, tier: create_key(str(service.db_path), company, tier)


@pytest.fixture(scope="session")
def service() -> Iterator[LocalService]:
    with LocalService(workers=2, tenants=3, extra_args=SERVICE_ARGS) as svc:
        yield svc


class Api:
    """An httpx client bound to one tenant's key."""

    def __init__(self, base: str, key: str | None) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=base, headers=headers, timeout=30)

    def __getattr__(self, name: str):  # get/post/delete/request of the client
        return getattr(self.http, name)

    def delete_ids(self, ids: list[object]) -> httpx.Response:
        return self.http.request("DELETE", "/api/assets/delete", json={"ids": ids})


@pytest.fixture
def api_a(service: LocalService) -> Iterator[Api]:
    api = Api(service.url, service.keys[0]["key"])
    yield api
    api.http.close()


@pytest.fixture
def api_b(service: LocalService) -> Iterator[Api]:
    api = Api(service.url, service.keys[1]["key"])
    yield api
    api.http.close()


@pytest.fixture
def api_c(service: LocalService) -> Iterator[Api]:
    """company-3: used by tests that count rows, so other tests' writes do not disturb them."""
    api = Api(service.url, service.keys[2]["key"])
    yield api
    api.http.close()
