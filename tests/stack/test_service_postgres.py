"""The asset service on the stack's PostgreSQL: a database that goes away is a 503 with Retry-After, never a
traceback, and the service serves again once the database is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from opskit.exitcodes import ExitCode
from opskit.localservice import LocalService
from opskit.stack import daemons, runtime

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg_service(stack_dir: Path) -> Iterator[LocalService]:
    info = runtime.status(stack_dir)
    assert info.endpoints is not None
    password = (runtime.home(stack_dir) / "password").read_text().strip()
    with LocalService(workers=1, tenants=1, db=info.endpoints.postgresql, extra_env={"PGPASSWORD": password}) as svc:
        yield svc


def test_a_wrong_database_url_is_one_line_and_exit_2(invoke, stack_dir: Path) -> None:
    closed = runtime._free_port(set())
    result = invoke("service", "keys", "create", "--company", "c", "--db", f"postgresql://opskit@127.0.0.1:{closed}/x")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.count("\n") == 1 and "cannot open the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_database_down_is_503_with_retry_after_then_it_serves_again(stack_dir: Path, pg_service: LocalService) -> None:
    headers = {"Authorization": f"Bearer {pg_service.key}"}
    stats = f"{pg_service.url}/api/companies/company-1/stats"
    with httpx.Client(headers=headers, timeout=15, trust_env=False) as client:
        assert client.post(f"{pg_service.url}/api/assets",
                           json=[{"address": "1 Main St", "latitude": 40.7, "longitude": -74.0}]).status_code == 201
        assert client.get(stats).json()["assets"] >= 1
        record = next(r for r in runtime.read_state(runtime.home(stack_dir)).running  # type: ignore[union-attr]
                      if r.name == "postgresql")
        assert daemons.stop_part(record)
        started = time.monotonic()
        down = client.get(stats)
        assert down.status_code == 503, down.text
        assert down.headers["Retry-After"] == "1" and "retry" in down.json()["error"]
        assert time.monotonic() - started < 12  # within the request timeout
        write = client.post(f"{pg_service.url}/api/assets",
                            json={"address": "2 Down St", "latitude": 1, "longitude": 2})
        assert write.status_code == 503 and write.headers["Retry-After"] == "1", write.text  # a batch's error
        again = runtime.up(stack_dir)
  # the rest is stopped and all of it started on the same ports
        assert again.running
        deadline = time.monotonic() + 15
        while (answer := client.get(stats)).status_code != 200:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.1)
        assert answer.json()["assets"] >= 1
        # and the worker's write batcher takes writes again
        assert client.post(f"{pg_service.url}/api/assets",
                           json={"address": "3 Back St", "latitude": 1, "longitude": 2}).status_code == 201
