"""The host source against this machine (psutil, real readings)."""

from __future__ import annotations

import datetime as dt
import socket

import psutil
import pytest

from opskit.metrics.base import MetricRequest
from opskit.metrics.host import HostSource

NOW = dt.datetime.now(dt.UTC)


def read(src: HostSource, query: str | None, now=NOW):
    return src.read(MetricRequest("host", "m", query), now=now)


def test_cpu_and_iops_over_a_short_interval():
    src = HostSource(interval_s=0.2)
    cpu = read(src, "cpu")
    assert not cpu.no_data and 0.0 <= cpu.latest <= 100.0
    iops = read(src, "disk_iops")
    if psutil.disk_io_counters() is not None:
        assert not iops.no_data and iops.latest >= 0.0


def test_memory_and_disk_match_psutil(tmp_path):
    src = HostSource(interval_s=0.0)
    mem = read(src, "memory").latest
    assert mem == pytest.approx(psutil.virtual_memory().percent, abs=5.0)
    disk = read(src, f"disk:{tmp_path}").latest
    assert disk == pytest.approx(psutil.disk_usage(str(tmp_path)).percent, abs=1.0)


def test_connections_see_a_real_established_connection():
    src = HostSource(interval_s=0.0)
    before = read(src, "connections:ESTABLISHED").latest
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname()) as client:
            conn, _ = server.accept()
            with conn:
                during = read(src, "connections:ESTABLISHED").latest
                listen = read(src, "connections:LISTEN").latest
                assert client.fileno() > 0
    assert during >= before + 2 - 1e-9 or during >= 2  # both ends of the loopback connection
    assert listen >= 1


@pytest.mark.parametrize(("query", "why"), [(None, "no host reading"), ("gpu", "unknown host reading"),
                                            ("disk:/no/such/path", "No such file")])
def test_bad_readings_are_no_data(query, why):
    s = read(HostSource(interval_s=0.0), query)
    assert s.no_data and why in (s.error or "")


def test_scale_check_from_host(invoke, tmp_path):
    spec = tmp_path / "opskit.yaml"
    spec.write_text(f"""
service: {{name: asset-service}}
thresholds:
  - {{resource: box, metric: disk_utilization, scale_up: 100%, scale_down: 0%, queries: {{host: "disk:{tmp_path}"}}}}
  - {{resource: box, metric: memory_utilization, scale_up: 100%, scale_down: 0%, queries: {{host: memory}}}}
resources: {{box: {{min: 1, max: 4, current: 2}}}}
""")
    result = invoke("scale", "check", "--spec", str(spec), "--source", "host", "--interval", "0",
                    "--state-dir", str(tmp_path / "state"), "--output", "json")
    import json

    doc = json.loads(result.stdout)
    assert doc["decisions"][0]["decision"] == "hold"
    assert doc["decisions"][0]["value"] == pytest.approx(psutil.disk_usage(str(tmp_path)).percent, abs=1.0)
    assert doc["decisions"][1]["value"] > 0
    # live sources remember the desired count for the stabilization window
    assert (tmp_path / "state" / "scaling-history.json").exists()
    assert result.exit_code == 0  # nothing can be outside 0..100%: every row holds
    assert doc["resources"]["box"] | {} == {**doc["resources"]["box"], "current": 2, "recommended": 2}
