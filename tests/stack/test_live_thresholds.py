"""All eight threshold rows of seed 001 live: the real stack, the real asset service, a real Prometheus
started by opskit's monitor code scraping them, `scale check --source prometheus` reading every row, and
Prometheus evaluating the rendered threshold rules over the real exporters."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from opskit.localservice import LocalService

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 45.0


@pytest.fixture(scope="module")
def service() -> Iterator[LocalService]:
    with LocalService(workers=1, tenants=1) as svc:
        yield svc


@pytest.fixture(scope="module")
def live(stack_dir: Path, service: LocalService, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A spec copy whose alerts fire at once on three always-nonzero rows (so a firing alert proves the
    rule reads real series), rendered; then `monitor up` on the stack's state dir."""
    from click.testing import CliRunner

    from opskit.cli import cli

    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        pytest.skip("prometheus not installed: run scripts/setup.sh")
    work = tmp_path_factory.mktemp("live")
    spec = yaml.safe_load((ROOT / "opskit.yaml").read_text())
    spec["service"]["url"] = service.url
    spec["alerts"]["scrape_interval"] = "1s"
    spec["alerts"]["default_for"] = "1s"
    low = {("database", "storage_utilization"), ("redis", "memory_utilization"), ("redis", "connections")}
    for row in spec["thresholds"]:
        if (row["resource"], row["metric"]) in low:
            # keep each row's unit: a percent row with a bare number would lose opskit's default query
            pct = isinstance(row["scale_up"], str) and row["scale_up"].endswith("%")
            row["scale_up"], row["scale_down"], row["for"] = ("0.0000001%", "0%", "1s") if pct else (1e-9, 0, "1s")
    # [1m] rates need no more than two 1 s scrapes, and the lint wants 4 scrapes per window
    (work / "opskit.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    runner = CliRunner()
    rendered = runner.invoke(cli, ["alerts", "render", "--spec", str(work / "opskit.yaml")], catch_exceptions=False)
    assert rendered.exit_code == 0, rendered.stderr
    up = runner.invoke(cli, ["monitor", "up", "--spec", str(work / "opskit.yaml"), "--port", "0",
                             "--scrape-interval", "1s", "--rules", str(work / "alerts" / "thresholds.rules.yml"),
                             "--state-dir", str(stack_dir), "--output", "json"], catch_exceptions=False)
    assert up.exit_code == 0, up.stderr
    url = json.loads(up.stdout)["url"]
    try:
        yield {"prometheus": url, "spec": str(work / "opskit.yaml"), "work": str(work)}
    finally:
        down = runner.invoke(cli, ["monitor", "down", "--state-dir", str(stack_dir)], catch_exceptions=False)
        assert down.exit_code == 0, down.stderr


def _traffic(service: LocalService) -> None:
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {service.key}"},
                      trust_env=False, timeout=10) as client:
        for _ in range(20):
            assert client.get("/api/assets", params={"limit": 10}).status_code == 200


def test_prometheus_scrapes_the_stacks_exporters_as_their_jobs(live: dict[str, str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        targets = httpx.get(f"{live['prometheus']}/api/v1/targets", timeout=10, trust_env=False).json()
        health = {t["labels"]["job"]: t["health"] for t in targets["data"]["activeTargets"]}
        if all(health.get(job) == "up" for job in ("postgres", "redis", "node", "process", "asset-service")):
            break
        assert time.monotonic() < deadline, health
        time.sleep(0.5)


def test_scale_check_reads_all_eight_rows_from_the_real_prometheus(live: dict[str, str], service: LocalService,
                                                                   invoke) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        _traffic(service)  # the p95 and CPU rows need requests inside their rate window
        result = invoke("scale", "check", "--spec", live["spec"], "--prometheus", live["prometheus"],
                        "--state-dir", live["work"], "--output", "json")
        assert result.exit_code in (0, 1, 3), result.stderr
        doc = json.loads(result.stdout)
        rows = doc["decisions"] if "decisions" in doc else doc["rows"]
        no_data = [f"{r['resource']}.{r['metric']}" for r in rows if r["decision"] == "no_data"]
        if len(rows) == 9 and not no_data:  # seed 001's eight rows, and api's req/s against its capacity_rps
            break
        assert time.monotonic() < deadline, f"still no_data: {no_data}: {json.dumps(rows)[:1500]}"
        time.sleep(0.5)
    values = {f"{r['resource']}.{r['metric']}": r["value"] for r in rows}
    assert values["database.storage_utilization"] > 0  # a real pg_database_size_bytes, against 100 GB
    assert 0 < values["redis.memory_utilization"] < 100  # used memory against the 256 MB maxmemory
    assert values["redis.connections"] >= 1
    assert values["api.request_rate"] > 0  # the default demand query over the service's own histogram


def test_prometheus_evaluates_the_rendered_threshold_rules(live: dict[str, str]) -> None:
    want = {"DatabaseStorageUtilizationHigh", "RedisMemoryUtilizationHigh", "RedisConnectionsHigh"}
    deadline = time.monotonic() + DEADLINE_S
    while True:
        groups = httpx.get(f"{live['prometheus']}/api/v1/rules", timeout=10, trust_env=False).json()
        rules = [r for g in groups["data"]["groups"] for r in g["rules"]]
        firing = {r["name"] for r in rules if r["state"] == "firing"}
        if len(rules) == 8 and want <= firing and all(r.get("lastEvaluation", "").startswith("20") for r in rules):
            break
        assert time.monotonic() < deadline, [(r["name"], r["state"], r.get("lastError")) for r in rules]
        time.sleep(0.5)
    assert all(r["health"] == "ok" and not r.get("lastError") for r in rules), rules
    # the others read real series too: each row's query returns a sample
    for r in rules:
        query = r["query"].rsplit(") > ", 1)[0].removeprefix("(")
        data = httpx.get(f"{live['prometheus']}/api/v1/query", params={"query": query}, timeout=10,
                         trust_env=False).json()["data"]["result"]
        assert data, f"{r['name']}: {query} returned nothing"
