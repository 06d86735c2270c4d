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


def create_key(db: str, company: str, tier: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, ["service", "keys", "create", "--company", company, "--tier", tier,
                                      "--db", db, "--output", "json"], env=env)
    assert result.exit_code == 0, result.stderr
    return str(json.loads(result.stdout)["key"])


@pytest.fixture
def new_key(service: LocalService):
    """Create a key for the shared service's store: new_key(company, tier) -> key."""
    return lambda company, tier: create_key(service.db, company, tier, service.extra_env)


@pytest.fixture(scope="session")
def postgresql() -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh PostgreSQL started by `opskit stack up`'s code: (URL, environment with its password)."""
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from opskit.stack import config as stack_config
    from opskit.stack import runtime

    if not os.access(Path(stack_config.PG_BINDIR) / "postgres", os.X_OK) or shutil.which("redis-server") is None:
        pytest.skip("PostgreSQL 15 / the stack packages are not installed: run scripts/setup.sh")
    state_dir = Path(tempfile.mkdtemp(prefix="opskit-assetsvc-pg-"))
    os.chmod(state_dir, 0o711)  # the stack's unprivileged user must reach it
    try:
        info = runtime.up(state_dir)
        assert info.endpoints is not None
        password = (runtime.home(state_dir) / "password").read_text().strip()
        yield info.endpoints.postgresql, {"PGPASSWORD": password}
    finally:
        runtime.down(state_dir)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def pg_store(postgresql, monkeypatch):
    """The PostgreSQL storage on the session's real PostgreSQL, its connection settings in the env."""
    from opskit.assetsvc.postgres import PostgresStorage

    url, env = postgresql
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = PostgresStorage(url)
    yield s
    s.close()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest) -> Iterator[LocalService]:
    """The shared two-worker service, once on each store: every test that uses it runs on both."""
    if request.param == "postgresql":
        url, env = request.getfixturevalue("postgresql")
        svc = LocalService(workers=2, tenants=3, extra_args=SERVICE_ARGS, db=url, extra_env=env)
    else:
        svc = LocalService(workers=2, tenants=3, extra_args=SERVICE_ARGS)
    with svc:
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
