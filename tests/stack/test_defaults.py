"""The default PromQL of the database and Redis rows (opskit/alerts/defaults.py): a spec that leaves those
rows' queries out gets the stack's queries, and the promtool cases opskit generates for them pass."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.alerts.defaults import Context, default_for

ROOT = Path(__file__).resolve().parents[2]
STACK_ROWS = {("api", "memory_utilization"), ("database", "cpu_utilization"), ("database", "iops"),
              ("database", "storage_utilization"), ("redis", "memory_utilization"), ("redis", "connections")}


def _spec_without_stack_queries() -> dict[str, Any]:
    spec = yaml.safe_load((ROOT / "opskit.yaml").read_text())
    for row in spec["thresholds"]:
        if (row["resource"], row["metric"]) in STACK_ROWS:
            row.get("queries", {}).pop("prometheus", None)
    return spec


def _ctx(selector: str) -> Context:
    return Context(selector, "asset-service", "2m", (0.1, 0.5, 1.0), 12)


def test_database_and_redis_rows_default_to_the_stacks_exporters() -> None:
    cpu = default_for("cpu_utilization", "database")
    assert cpu is not None
    assert cpu.expr(_ctx('job="database"'), "cpu_utilization") == (
        '100 * sum(rate(namedprocess_namegroup_cpu_seconds_total{job="process",groupname="postgres"}[2m]))'
        ' / count(node_cpu_seconds_total{job="node",mode="idle"})')
    iops = default_for("iops", "database")
    assert iops is not None
    assert 'node_disk_reads_completed_total{job="node"}' in iops.expr(_ctx('job="database"'), "iops")
    storage = default_for("storage_utilization", "database", 100)
    assert storage is not None
    assert storage.expr(_ctx('job="database"'), "x") == '100 * sum(pg_database_size_bytes{job="postgres"}) / 1e+11'
    memory = default_for("memory_utilization", "redis")
    assert memory is not None
    assert "(redis_memory_max_bytes{job=\"redis\"} > 0) or redis_total_system_memory_bytes" in memory.expr(
        _ctx('job="redis"'), "x")  # never a division by a 0 maxmemory
    connections = default_for("connections", "redis")
    assert connections is not None and connections.expr(_ctx('job="redis"'), "x") == (
        'sum(redis_connected_clients{job="redis"})')


def test_a_selected_database_host_and_a_missing_capacity_keep_the_host_defaults() -> None:
    cpu = default_for("cpu_utilization", "database")
    assert cpu is not None
    assert 'node_cpu_seconds_total{job="node",role="db",mode="idle"}' in cpu.expr(_ctx('job="node",role="db"'), "x")
    storage = default_for("storage_utilization", "database")  # no resources.database.capacity
    assert storage is not None and "node_filesystem_avail_bytes" in storage.expr(_ctx('job="database"'), "x")
    assert default_for("memory_utilization", "api") is default_for("memory_utilization")


@pytest.mark.slow
def test_rendered_defaults_have_promtool_cases_that_pass(invoke, tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed: run scripts/setup.sh")
    spec = tmp_path / "opskit.yaml"
    spec.write_text(yaml.safe_dump(_spec_without_stack_queries(), sort_keys=False))
    # the rows that still write their own query (api cpu, p95) get generated cases as well: nothing hand-kept
    rendered = invoke("alerts", "render", "--spec", str(spec))
    assert rendered.exit_code == 0, rendered.stderr
    for key in ("database.cpu_utilization", "database.iops", "database.storage_utilization",
                "redis.memory_utilization", "redis.connections"):
        assert f"{key}: no queries.prometheus: default query" in rendered.stderr
    generated = (tmp_path / "alerts" / "tests" / "thresholds.test.yml").read_text()
    for series in ("namedprocess_namegroup_cpu_seconds_total", "pg_database_size_bytes", "redis_memory_max_bytes",
                   "redis_connected_clients"):
        assert series in generated
    result = invoke("alerts", "test", "--spec", str(spec), "--output", "json")
    failed = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert result.exit_code == 0 and failed == [], failed
