"""Real Locust runs (seconds each) against the embedded service and the stall server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from opskit.loadtest.stallserver import StallSchedule

pytestmark = pytest.mark.slow

def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


# the smoke run on the embedded service (the results.json contract) is in test_metrics.py, exported live


@pytest.mark.parametrize("processes", [2])
def test_open_model_matches_the_analytic_truth_across_processes(invoke, stall_server, tmp_path: Path,
                                                                processes: int) -> None:
    """Stall 1 s every 5 s, 10 ms otherwise, 100 req/s for two whole cycles, two generator processes:
    the merged percentiles equal the analytic ones (no coordinated omission)."""
    out = tmp_path / "stall"
    result = invoke("loadtest", "run", "http-get", "--host", stall_server.url, "--path", "/", "--rate", "100",
                    "--duration", "10s", "--processes", str(processes), "--out", str(out))
    assert result.exit_code == 0, result.stderr
    r = _results(out)
    assert r["run"]["processes"] == processes == r["generator"]["processes"]
    assert r["aggregate"]["requests"] == 1000 == stall_server.requests
    truth = stall_server.schedule
    lat = r["aggregate"]["latency_ms"]
    for key, q in (("p90", 90), ("p95", 95), ("p99", 99)):
        expected = truth.analytic_percentile_ms(q)
        # the tolerance covers the burst at each stall's end: ~50 responses per process arrive at once
        # and are processed one after another (real queueing that the analytic model leaves out)
        assert lat[key] == pytest.approx(expected, rel=0.05, abs=20), (key, lat, expected)
    assert lat["p50"] < 40
    assert r["generator"]["dropped"] == 0 and r["run"]["valid"]
    # both processes' requests are in every second of the merged timeline
    assert sum(row["requests"] for row in r["timeline"]) == 1000


def test_analytic_truth_of_the_facts_schedule() -> None:
    s = StallSchedule(period_s=10, stall_s=2, service_s=0.010)
    assert [round(s.analytic_percentile_ms(q)) for q in (50, 90, 95, 99)] == [10, 1010, 1510, 1910]


def test_closed_model_is_labelled_and_uses_users(invoke, fast_server, tmp_path: Path) -> None:
    out = tmp_path / "closed"
    result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--path", "/", "--users", "3",
                    "--duration", "3s", "--out", str(out), "--output", "json")
    assert result.exit_code == 0, result.stderr
    r = _results(out)
    assert r["run"]["model"] == "closed" and r["run"]["users"] == 3
    assert r["generator"]["intended_rate"] is None and r["aggregate"]["requests"] > 0
    assert json.loads(result.stdout)["run"]["model"] == "closed"


def test_a_user_locustfile_runs_through_the_same_pipeline(invoke, fast_server, tmp_path: Path) -> None:
    lf = tmp_path / "mine.py"
    lf.write_text(
        "from locust import task\n"
        "from locust.contrib.fasthttp import FastHttpUser\n\n"
        "class Mine(FastHttpUser):\n"
        "    @task(3)\n"
        "    def ping(self):\n"
        "        self.client.get('/ping', name='/ping')\n\n"
        "    @task(1)\n"
        "    def missing(self):\n"
        "        with self.client.get('/missing', name='/missing', catch_response=True) as r:\n"
        "            r.failure('always')\n")
    out = tmp_path / "mine"
    result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--locustfile", str(lf),
                    "--rate", "40", "--duration", "3s", "--out", str(out))
    r = _results(out)
    assert set(r["endpoints"]) == {"GET /ping", "GET /missing"}
    assert r["aggregate"]["requests"] == 120
    assert r["endpoints"]["GET /missing"]["failures"] == r["endpoints"]["GET /missing"]["requests"] > 0
    assert r["endpoints"]["GET /ping"]["failures"] == 0
    assert result.exit_code == 0, result.stderr


def test_ctrl_c_writes_partial_results_and_stops_everything(tmp_path: Path) -> None:
    """SIGINT to a real `opskit loadtest run` on the embedded service: exit 130, results marked
    interrupted, and the runner and the embedded service are gone."""
    import re
    import threading

    out = tmp_path / "int"
    argv = [sys.executable, "-m", "opskit", "loadtest", "run", "smoke", "--duration", "60s", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[2])
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, b"")), daemon=True)
    reader.start()
    family: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # until a progress line shows requests done
            family |= {k.pid for k in psutil.Process(proc.pid).children(recursive=True)}
            if any(int(m.group(1)) > 0 for raw in list(lines)
                   if (m := re.search(rb"requests (\d+)", raw))):
                break
            time.sleep(0.1)
        else:
            pytest.fail("no progress line with requests within 90 s: " + b"".join(lines).decode())
        family |= {k.pid for k in psutil.Process(proc.pid).children(recursive=True)}
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
        reader.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    err = b"".join(lines).decode()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    r = _results(out)
    assert r["run"]["interrupted"] is True and r["run"]["valid"] is False
    assert 0 < r["run"]["duration_s"] < 30 and r["aggregate"]["requests"] > 0
    alive = [pid for pid in family if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert len(family) >= 3 and alive == []  # the runner, the service's supervisor and its worker, at least


def test_commands_other_than_loadtest_never_import_locust() -> None:
    code = ("import sys, opskit.cli, opskit.commands.loadtest, opskit.loadtest.host, opskit.loadtest.verify; "
            "bad = [m for m in ('locust', 'gevent') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_verify_command_checks_a_stall_schedule(invoke, tmp_path: Path) -> None:
    result = invoke("loadtest", "verify", "--period", "2s", "--stall", "0.5s", "--rate", "100",
                    "--out", str(tmp_path / "v"), "--output", "json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["passed"] and [r["percentile"] for r in report["percentiles"]] == ["p50", "p90", "p95", "p99"]
    p99 = next(r for r in report["percentiles"] if r["percentile"] == "p99")
    assert p99["analytic_ms"] == pytest.approx(490.0)  # 0.5 s + 10 ms - 1% x 2 s


def test_steps_keep_their_own_statistics(invoke, fast_server, tmp_path: Path) -> None:
    scenario = tmp_path / "two-steps.yaml"
    scenario.write_text(
        "description: two rates\n"
        f"locustfile: {Path(__file__).parents[2] / 'loadtests' / 'http_get.py'}\n"
        "stages:\n"
        "  - {name: low, duration: 2s, rate: 20}\n"
        "  - {name: high, duration: 2s, ramp_from: 40, rate: 80}\n")
    out = tmp_path / "steps"
    result = invoke("loadtest", "run", str(scenario), "--host", fast_server.url, "--path", "/", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    r = _results(out)
    low, high = r["steps"]
    assert (low["name"], low["rate"], high["name"], high["rate"]) == ("low", 20.0, "high", 80.0)
    assert (low["scheduled"], high["scheduled"]) == (40, 120)  # 20 x 2 s; (40 + 80) / 2 x 2 s
    assert low["requests"] + high["requests"] == r["aggregate"]["requests"] == 160
    assert abs(low["requests"] - 40) <= 2  # a request finishing just after the boundary counts there
    assert low["concurrency"] < high["concurrency"]


def test_a_remote_worker_joins_and_merges(invoke, fast_server, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    worker = subprocess.Popen([sys.executable, "-m", "opskit", "loadtest", "worker", "--master", "127.0.0.1",
                               "--master-port", str(port)], cwd=Path(__file__).parents[2],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        out = tmp_path / "dist"
        result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--path", "/", "--rate", "40",
                        "--duration", "3s", "--expect-workers", "1", "--master-port", str(port), "--out", str(out))
        assert result.exit_code == 0, result.stderr
        assert worker.wait(timeout=30) == 0  # the master ended the run and the worker with it
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stderr.close()
    r = _results(out)
    assert r["run"]["processes"] == 2  # one local process and the remote worker
    assert r["aggregate"]["requests"] == 120 == fast_server.requests


def test_a_broken_locustfile_is_reported_not_hung(invoke, tmp_path: Path) -> None:
    syntax = tmp_path / "syntax.py"
    syntax.write_text("from locust import task\ndef (:\n")
    result = invoke("loadtest", "run", "http-get", "--host", "http://127.0.0.1:9", "--locustfile", str(syntax),
                    "--rate", "5", "--duration", "2s", "--out", str(tmp_path / "a"))
    assert result.exit_code == 2 and "syntax.py: importing it failed: SyntaxError" in result.stderr
    broken = tmp_path / "broken.py"
    broken.write_text("from locust import task\nfrom locust.contrib.fasthttp import FastHttpUser\n\n"
                      "class Broken(FastHttpUser):\n"
                      "    def on_start(self):\n        raise RuntimeError('no credentials configured')\n\n"
                      "    @task\n    def t(self):\n        self.client.get('/')\n")
    result = invoke("loadtest", "run", "http-get", "--host", "http://127.0.0.1:9", "--locustfile", str(broken),
                    "--rate", "5", "--duration", "2s", "--out", str(tmp_path / "b"))
    assert result.exit_code == 3 and "no credentials configured" in result.stderr


def test_the_failover_kill_is_in_the_results_the_runner_wrote(invoke, tmp_path: Path) -> None:
    """The CLI kills a service worker mid-run and tells the runner, which writes results.json once with
    the failover block (nothing edits the file afterwards)."""
    out = tmp_path / "failover"
    result = invoke("loadtest", "run", "failover", "--duration", "6s", "--rate", "50", "--out", str(out),
                    "--output", "json")
    assert result.exit_code == 0, result.stderr
    doc = _results(out)
    failover = doc["failover"]
    assert list(doc)[-1] == "failover" and failover["killed_pid"] > 0
    assert failover["killed_at_s"] >= 2.0 and failover["errors_after_kill"] >= 0
    assert json.loads(result.stdout)["failover"] == failover
