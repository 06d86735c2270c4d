"""Live parts for the metrics tests: the reference asset service and a Prometheus started by
`opskit monitor up` scraping it every second. Both are stopped by the fixtures."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner


@pytest.fixture(scope="module")
def service() -> Iterator[object]:
    from opskit.localservice import LocalService

    with LocalService(workers=2) as svc:
        yield svc


def burst(svc, n: int) -> None:
    """n real requests to the service, one after another."""
    with httpx.Client(base_url=svc.url, headers={"Authorization": f"Bearer {svc.key}"}, trust_env=False) as c:
        for _ in range(n):
            c.get("/api/assets", params={"limit": 5}).raise_for_status()


class Load:
    """Requests in a loop on a thread for as long as the `with` block runs."""

    def __init__(self, svc) -> None:
        self.svc = svc
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.svc.url, headers={"Authorization": f"Bearer {self.svc.key}"},
                          trust_env=False) as c:
            while not self.stop.is_set():
                c.get("/api/assets", params={"limit": 5})
                self.sent += 1

    def __enter__(self) -> Load:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


def spec_file(tmp: Path, svc_url: str, extra: str = "") -> Path:
    p = tmp / "opskit.yaml"
    p.write_text(f"""
service: {{name: asset-service, url: "{svc_url}"}}
thresholds:
  - resource: api
    metric: request_rate
    scale_up: 1000000
    scale_down: 0.000001
    queries:
      prometheus: sum(rate(http_request_duration_seconds_count{{job="asset-service"}}[5s]))
      scrape: rate(http_request_duration_seconds_count)
  - resource: api
    metric: response_time_p95
    scale_up: 60s
    scale_down: 0.000001ms
    queries:
      prometheus: >-
        1000 * histogram_quantile(0.95,
        sum by (le) (rate(http_request_duration_seconds_bucket{{job="asset-service"}}[5s])))
      scrape: 1000 * histogram_quantile(0.95, http_request_duration_seconds)
resources:
  api:
    min: 1
    max: 8
    replicas_query: {{prometheus: 'sum(assetsvc_workers{{job="asset-service"}})', scrape: assetsvc_workers}}
{extra}""")
    return p


@pytest.fixture(scope="module")
def prometheus(service, tmp_path_factory) -> Iterator[dict]:
    """`opskit monitor up` on a free port, scrape interval 1s; `monitor down` afterwards."""
    from opskit.cli import cli

    tmp = tmp_path_factory.mktemp("prom")
    spec = spec_file(tmp, service.url)
    state = tmp / "state"
    runner = CliRunner()
    result = runner.invoke(cli, ["monitor", "up", "--spec", str(spec), "--port", "0", "--scrape-interval", "1s",
                                 "--state-dir", str(state), "--output", "json"])
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    try:
        yield {**info, "spec": spec, "state_dir": state}
    finally:
        down = runner.invoke(cli, ["monitor", "down", "--state-dir", str(state)])
        assert down.exit_code == 0, down.stderr


def poll(fn, *, timeout_s: float = 20.0, every_s: float = 0.2):
    """fn() until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s")
        time.sleep(every_s)
