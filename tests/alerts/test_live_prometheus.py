"""The rendered rules inside a real Prometheus scraping the real asset service: every rule evaluates without
error, and the SLO recording rules find the service's series (route labels and `le` spellings match)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from .conftest import ALERTS

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("prometheus"), reason="prometheus not installed")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def prometheus(tmp_path: Path, target: str):
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in sorted(ALERTS.glob("*.rules.yml"))],
        "scrape_configs": [{"job_name": "asset-service", "static_configs": [{"targets": [target]}]}],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def query(url: str, expr: str) -> list[dict]:
    try:
        r = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5)
    except httpx.TransportError:
        return []
    return r.json()["data"]["result"] if r.status_code == 200 else []


def test_rules_evaluate_against_the_real_service(tmp_path):
    from opskit.localservice import LocalService

    with LocalService(workers=1, seed_assets=20) as svc:
        headers = {"Authorization": f"Bearer {svc.key}"}
        first = httpx.get(f"{svc.url}/api/assets", headers=headers, timeout=10).json()["data"][0]["id"]
        with prometheus(tmp_path, svc.url.removeprefix("http://")) as prom:
            wanted = {
                ("list-assets", "availability"), ("list-assets", "latency-p95"),
                ("get-asset", "availability"), ("get-asset", "latency-p95"),
            }
            found: set[tuple[str, str]] = set()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and found != wanted:
                httpx.get(f"{svc.url}/api/assets", headers=headers, timeout=10)
                httpx.get(f"{svc.url}/api/assets/{first}", headers=headers, timeout=10)
                found = {(s["metric"]["slo"], s["metric"]["sli"])
                         for s in query(prom, "slo:sli_error:ratio_rate5m") if s["value"][1] != "NaN"} & wanted
                time.sleep(0.5)  # pacing the traffic, not waiting for a result: the loop polls with a deadline
            assert found == wanted, (tmp_path / "prometheus.log").read_text()[-2000:]
            # all requests were fast 200s: nothing burns, the budget is whole
            for s in query(prom, 'slo:sli_error:ratio_rate5m{slo="list-assets"}'):
                assert float(s["value"][1]) == 0.0
            rules = httpx.get(f"{prom}/api/v1/rules", timeout=5).json()["data"]["groups"]
            evaluated = [r for g in rules for r in g["rules"]]
            assert len(evaluated) == sum(len(g["rules"]) for p in ALERTS.glob("*.rules.yml")
                                         for g in yaml.safe_load(p.read_text())["groups"])
            assert [r["name"] for r in evaluated if r["health"] == "err"] == []
            firing = {r["name"] for r in evaluated if r.get("type") == "alerting" and r["state"] != "inactive"}
            assert not firing & {"AssetServiceTargetDown", "AssetServiceTargetMissing", "AssetServiceMetricsAbsent"}
