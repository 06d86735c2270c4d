"""Numbers a user can trust (issue 18): failures timed apart, data owned per generator process, worker
progress and identity, opskit's own report.html, locustfile runs named for themselves."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from opskit.loadtest.aggregate import Aggregator, StepWindow
from opskit.loadtest.context import share
from opskit.loadtest.recorder import Recorder
from opskit.loadtest.results import build
from opskit.runmodel import read

ROOT = Path(__file__).parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def test_failed_requests_are_timed_apart_from_the_latency_percentiles() -> None:
    """90 answers at 40 ms and 10 refused connections at 1 ms: p50 is 40 ms (not pulled down by the
    failures), the failures have their own block, and every request is still counted."""
    rec = Recorder(0.0)
    for i in range(90):
        rec.record("GET /x", 40.0, None, 0.1 + i / 1000)
    for i in range(10):
        rec.record("GET /x", 1.0, "connection_refused", 0.2 + i / 1000)
    agg = Aggregator([StepWindow(0, "s", 0.0, 1.0, 100.0, None)])
    agg.ingest({"proc": "0", "seconds": rec.drain(1.5, final=True), "final": True,
                "worker": {"id": "local", "host": "h", "pid": 7}})
    doc = build(agg, {"scenario": "t", "model": "closed"}, duration_s=1.0, intended=None, processes=1)
    agg_block = doc["aggregate"]
    assert agg_block["requests"] == 100 and agg_block["failures"] == 10
    assert 39.9 <= agg_block["latency_ms"]["p50"] <= 40.1 and 39.9 <= agg_block["latency_ms"]["p95"] <= 40.1
    assert 0.99 <= agg_block["failure_latency_ms"]["p50"] <= 1.01
    assert doc["timeline"][0]["requests"] == 100 and doc["timeline"][0]["latency_ms"]["p50"] >= 39.9
    assert doc["steps"][0]["requests"] == 100 and doc["steps"][0]["latency_ms"]["p50"] >= 39.9
    run = read(doc)
    assert run.total.failure_latency_ms["p50"] is not None and run.run.valid
    assert [(w.proc, w.id, w.host, w.pid) for w in run.generator.workers] == [("0", "local", "h", 7)]


def test_a_run_where_every_request_failed_is_invalid() -> None:
    rec = Recorder(0.0)
    for i in range(5):
        rec.record("GET /x", 1.4, "connection_refused", 0.1 + i / 100)
    agg = Aggregator([StepWindow(0, "s", 0.0, 1.0, 5.0, None)])
    agg.ingest({"proc": "0", "seconds": rec.drain(1.5, final=True), "final": True})
    doc = build(agg, {"scenario": "t", "model": "closed"}, duration_s=1.0, intended=None, processes=1)
    assert doc["run"]["valid"] is False
    assert doc["run"]["invalid_reason"] == "no request succeeded (5 failed: connection_refused 5)"
    assert doc["aggregate"]["latency_ms"]["p50"] is None


@pytest.mark.slow
def test_connection_refused_answers_nothing(invoke, tmp_path: Path) -> None:
    out = tmp_path / "refused"
    result = invoke("loadtest", "run", "http-get", "--host", "http://127.0.0.1:9", "--rate", "20", "--duration", "2s",
                    "--out", str(out))
    assert result.exit_code == 3
    assert result.stdout == ""  # no table, no "run: valid", no p50 of refusals
    errors = [line for line in result.stderr.splitlines() if line.startswith("opskit: error:")]
    assert len(errors) == 1 and errors[0].startswith("opskit: error: no request succeeded: all 40 failed "
                                                     "(connection_refused 40)")
    assert _results(out)["aggregate"]["latency_ms"]["p50"] is None
    assert "no request succeeded" in (out / "report.html").read_text()


def test_each_process_owns_its_data() -> None:
    tenants = ["a", "b", "c"]
    assert share(tenants, 0, 1) == (tenants, share(tenants, 0, 1)[1])
    mine0, s0 = share(tenants, 0, 2)
    mine1, s1 = share(tenants, 1, 2)
    assert (mine0, mine1) == (["a", "c"], ["b"]) and not s0.shared and s0.owns(3)  # own tenants: every id
    # more processes than tenants: shared tenants, every id belongs to exactly one process
    shares = [share(tenants, i, 4)[1] for i in range(4)]
    assert all(s.shared for s in shares)
    for asset_id in range(1, 50):
        assert sum(s.owns(asset_id) for s in shares) == 1
    assert not shares[0].owns("not-an-id")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 3])  # 3: more processes than the smoke service's 2 tenants
def test_generator_processes_never_read_what_another_deleted(invoke, tmp_path: Path, processes: int) -> None:
    """The whole traffic mix (reads, creates, deletes) on the embedded service from several processes: no
    404 at all (before, a process read ids another had just deleted: 0.4-1% of reads failed)."""
    out = tmp_path / "smoke"
    result = invoke("loadtest", "run", "smoke", "--rate", "100", "--duration", "8s", "--processes", str(processes),
                    "--out", str(out))
    assert result.exit_code == 0, result.stderr
    doc = _results(out)
    assert doc["endpoints"]["DELETE /api/assets/delete"]["requests"] > 20
    assert doc["endpoints"]["GET /api/assets/{id}"]["requests"] > 100
    assert doc["aggregate"]["failures_by_kind"] == {}
    workers = doc["generator"]["workers"]
    assert [w["proc"] for w in workers] == [str(i) for i in range(processes)]
    assert len({w["pid"] for w in workers}) == len({w["id"] for w in workers}) == processes


@pytest.mark.slow
def test_a_locustfile_run_has_its_own_name_and_keeps_method_prefixed_names(invoke, fast_server,
                                                                             tmp_path: Path) -> None:
    lf = tmp_path / "mine.py"
    lf.write_text("from locust import task\nfrom locust.contrib.fasthttp import FastHttpUser\n\n"
                  "class Mine(FastHttpUser):\n    @task\n    def ping(self):\n"
                  "        self.client.get('/ping', name='GET /api/ping')\n")
    out = tmp_path / "mine"
    result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--locustfile", str(lf),
                    "--rate", "20", "--duration", "2s", "--out", str(out), "--output", "json")
    assert result.exit_code == 0, result.stderr
    doc = _results(out)
    assert doc["run"]["scenario"] == "mine" and doc["run"]["run_id"].endswith("-mine")
    assert list(doc["endpoints"]) == ["GET /api/ping"]  # not "GET GET /api/ping"
    named = tmp_path / "named"
    result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--locustfile", str(lf),
                    "--name", "checkout", "--rate", "20", "--duration", "2s", "--out", str(named))
    assert result.exit_code == 0, result.stderr
    assert _results(named)["run"]["scenario"] == "checkout"


def test_name_is_for_locustfile_runs(invoke, tmp_path: Path) -> None:
    result = invoke("loadtest", "run", "smoke", "--name", "x", "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.stderr.strip() == ("opskit: error: --name names a --locustfile run; a scenario from "
                                     "loadtests/ has its own name")
    result = invoke("loadtest", "run", "http-get", "--locustfile", str(tmp_path / "x.py"), "--name", "a b",
                    "--out", str(tmp_path / "y"))
    assert result.exit_code == 2 and "--name 'a b': use letters" in result.stderr


class _Lines:
    """A child's stderr, line by line, readable with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(proc.stderr,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            self.q.put(line)

    def wait_for(self, text: str, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.q.get(timeout=0.5)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"{text!r} not seen in: {''.join(self.seen)}")

    def rest(self) -> str:
        time.sleep(0.2)  # the reader thread drains what the exited process left
        while not self.q.empty():
            self.seen.append(self.q.get())
        return "".join(self.seen)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _popen(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "opskit", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _stop(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()
        for stream in (p.stdout, p.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.slow
def test_a_distributed_run_says_what_it_waits_for_and_names_its_worker(fast_server, tmp_path: Path) -> None:
    port = _free_port()
    out = tmp_path / "dist"
    master = _popen("loadtest", "run", "http-get", "--host", fast_server.url, "--path", "/", "--rate", "20",
                    "--duration", "2s", "--expect-workers", "1", "--master-port", str(port), "--out", str(out))
    worker = None
    try:
        said = _Lines(master)
        # the master says what is missing at once (then every 5 s), not after 60 s of silence
        line = said.wait_for("waiting for workers", timeout=30)
        assert "1 remote" in line and f"--master-port {port}" in line
        worker = _popen("loadtest", "worker", "--master", "127.0.0.1", "--master-port", str(port))
        progress = _Lines(worker)
        progress.wait_for("connected to the master at 127.0.0.1")
        progress.wait_for("running http-get (open model")
        progress.wait_for("done: ")
        assert master.wait(timeout=60) == 0, said.rest()
        assert worker.wait(timeout=30) == 0
        assert "the master ended the run" in progress.rest() and "Traceback" not in progress.rest()
    finally:
        _stop(master, *([worker] if worker else []))
    workers = _results(out)["generator"]["workers"]
    assert len(workers) == 2 and {w["host"] for w in workers} == {socket.gethostname()}
    assert sum(w["id"].startswith(socket.gethostname() + "_") for w in workers) == 2  # Locust's client ids


@pytest.mark.slow
def test_sigterm_stops_a_waiting_worker_without_a_traceback() -> None:
    worker = _popen("loadtest", "worker", "--master", "127.0.0.1", "--master-port", str(_free_port()))
    try:
        said = _Lines(worker)
        said.wait_for("waiting for the master at 127.0.0.1")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 130
        text = said.rest()
    finally:
        _stop(worker)
    assert "Traceback" not in text and "ConnectionError" not in text
    assert "stopped (SIGTERM)" in text and "opskit: error: worker stopped" in text


def _example_run() -> dict:
    rec = Recorder(0.0)
    for sec in range(4):
        for i in range(20):
            ok = i % 10
            rec.record("GET /api/assets", 5.0 + sec, None if ok else "http_500", sec + i / 40)
        rec.arrival(sec + 0.5, 0.001)
        rec.finished()
    agg = Aggregator([StepWindow(0, "low", 0.0, 2.0, 10.0, None), StepWindow(1, "high", 2.0, 2.0, 20.0, None)])
    agg.ingest({"proc": "0", "seconds": rec.drain(4.5, final=True), "final": True, "cpu": [(1.0, 20.0)],
                "worker": {"id": "local", "host": "h", "pid": 1}})
    return build(agg, {"scenario": "step", "model": "open", "target": "http://127.0.0.1:1", "run_id": "r1"},
                 duration_s=4.0, intended=4, processes=1)


def test_the_report_is_built_from_the_run_model_and_self_contained() -> None:
    from opskit.loadtest.report import GateLine, render

    html = render(read(_example_run()), gate=[GateLine("error_rate < 1%", "fail", "10%", "< 1%")])
    assert html.count("<svg") == 4  # rate, latency, in flight, generator CPU
    assert "<script" not in html and "src=" not in html and "href=" not in html and "@import" not in html
    assert "offered (scheduled arrivals) vs completed" in html and "intended start" in html
    for heading in ("Verdicts", "Gate: <span class=\"fail\">FAIL", "Endpoints", "Steps", "Generator health"):
        assert heading in html
    assert "<td>low</td>" in html and "<td>high</td>" in html
    assert html.count("<polyline") >= 6  # offered, completed, failed, p50, p95, p99 ...


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_the_report_a_run_writes_renders_in_headless_chromium(invoke, fast_server, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = invoke("loadtest", "run", "http-get", "--host", fast_server.url, "--path", "/", "--rate", "20",
                    "--duration", "3s", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert not (out / "locust_report.html").exists() and (out / "locust_stats.csv").exists()
    page = out / "report.html"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp_path / 'chromium-profile'}"]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=90,
                         check=True).stdout
    assert dom.count("<svg") == page.read_text().count("<svg") >= 3
    assert dom.count("<polyline") >= 5 and "run: valid" in dom


@pytest.mark.slow
def test_sigterm_stops_a_running_worker_cleanly(fast_server, tmp_path: Path) -> None:
    port = _free_port()
    master = _popen("loadtest", "run", "http-get", "--host", fast_server.url, "--path", "/", "--rate", "10",
                    "--duration", "60s", "--expect-workers", "1", "--master-port", str(port),
                    "--out", str(tmp_path / "run"))
    worker = _popen("loadtest", "worker", "--master", "127.0.0.1", "--master-port", str(port))
    try:
        said = _Lines(worker)
        said.wait_for("running http-get")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 130
        text = said.rest()
        master.send_signal(signal.SIGINT)  # the run itself is ended by its owner
        assert master.wait(timeout=60) == 130
    finally:
        _stop(master, worker)
    assert "Traceback" not in text and "ConnectionError" not in text
    assert "stopped (SIGTERM); leaving the master" in text and "waiting for the master to end" not in text
