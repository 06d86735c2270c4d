"""The run's live /metrics for Prometheus (`loadtest run --metrics-port`): the exposition itself, a real
run scraped while it goes and after, a real Prometheus (`monitor up --loadtest`) answering every query
of the committed load-test dashboard, and the usage errors."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from opskit.alerts import loadtest_metrics as m
from opskit.loadtest import exporter, hdr
from opskit.runmodel import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "dashboards" / "loadtest.json"


def parse(text: str) -> dict[str, list[Any]]:
    """Exposition text -> {sample name: [Sample, ...]} with prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def value(samples: dict[str, list[Any]], metric: str, /, **labels: str) -> float:
    found = [s.value for s in samples.get(metric, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (metric, labels, found)
    return float(found[0])


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["query"] for v in doc["templating"]["list"] if v.get("type") == "query"]
    return [e for e in exprs if "opskit_loadtest_" in e]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(view: exporter.RunView) -> str:
    from prometheus_client import CollectorRegistry, generate_latest

    reg = CollectorRegistry(auto_describe=False)
    reg.register(exporter._Collector(lambda: view))
    return generate_latest(reg).decode()


def make_view(hist: Any, errors: int = 0, **over: Any) -> exporter.RunView:
    base: dict[str, Any] = dict(
        run_id="r1", scenario="smoke", model="open", running=True, elapsed_s=2.5, duration_s=8.0, target_rps=10.0,
        users=3, in_flight=3, scheduled=25, dropped=2, step_index=1, step_name="x5",
        endpoints={"GET /api/assets/{id}": exporter.EndpointView(hist, errors)}, cpu={"0": 12.5, "1": 30.0})
    return exporter.RunView(**{**base, **over})


def test_the_exposition_is_the_hdr_data() -> None:
    h = hdr.new()
    for ms in (1, 2, 3, 4, 7, 30, 30, 120, 600, 3000):
        hdr.record_ms(h, ms)
    s = parse(render(make_view(h, errors=2)))
    ep = {"run_id": "r1", "scenario": "smoke", "name": "/api/assets/{id}", "method": "GET"}
    # the histogram holds the 10 successful requests; the 2 failures are counted apart (issue 18)
    assert value(s, m.REQUESTS, **ep) == 12 and value(s, m.FAILURES, **ep) == 2
    buckets = {b.labels["le"]: b.value for b in s[m.RESPONSE_TIME + "_bucket"]}
    # cumulative counts at the service's bucket bounds
    assert (buckets["0.005"], buckets["0.01"], buckets["0.025"], buckets["0.05"]) == (4, 5, 5, 7)
    assert (buckets["0.2"], buckets["0.5"], buckets["1.0"], buckets["2.5"], buckets["5.0"]) == (8, 8, 9, 9, 10)
    assert buckets["+Inf"] == 10 == value(s, m.RESPONSE_TIME + "_count", **ep)
    assert value(s, m.RESPONSE_TIME + "_sum", **ep) == pytest.approx(3.797, rel=1e-3)
    p50, p95, p99 = hdr.values_at(h, [50, 95, 99])
    assert value(s, m.LATENCY_SUMMARY, quantile="0.5", **ep) == p50 / 1e6
    assert value(s, m.LATENCY_SUMMARY, quantile="0.99", **ep) == p99 / 1e6
    assert value(s, m.AGGREGATE_LATENCY_SUMMARY, quantile="0.95") == p95 / 1e6
    assert value(s, m.DROPPED) == 2 and value(s, m.SCHEDULED) == 25 and value(s, m.TARGET_RPS) == 10
    assert value(s, m.GENERATOR_CPU, proc="1") == 30 and value(s, m.STEP, step="x5") == 1
    assert value(s, m.USERS) == 3 and value(s, m.RUNNING) == 1


def test_an_empty_run_exports_zeroes_not_gaps() -> None:
    s = parse(render(make_view(hdr.new(), running=False, endpoints={}, cpu={}, step_index=None)))
    assert value(s, m.DROPPED) == 2 and value(s, m.RUNNING) == 0
    assert m.REQUESTS not in s and m.LATENCY_SUMMARY not in s  # no endpoint seen yet: no series


@pytest.mark.parametrize(("endpoint", "expected"), [
    ("GET /api/assets/{id}", ("GET", "/api/assets/{id}")),
    ("POST /api/assets/upload", ("POST", "/api/assets/upload")),
    ("my task", ("", "my task")),
    ("/health", ("", "/health")),
])
def test_split_endpoint(endpoint: str, expected: tuple[str, str]) -> None:
    assert exporter.split_endpoint(endpoint) == expected


def test_monitor_config_has_the_loadtest_job(tmp_path: Path) -> None:
    from opskit.monitor import config as cfg

    text = cfg.render_config(job="asset-service", port=19090, targets_path=str(tmp_path / "t.json"),
                             rule_files=[], scrape_interval_s=15,
                             loadtest_targets_path=str(tmp_path / "loadtest-targets.json"))
    import yaml

    jobs = {j["job_name"]: j for j in yaml.safe_load(text)["scrape_configs"]}
    assert jobs[m.LOADTEST_JOB]["file_sd_configs"][0]["files"] == [str(tmp_path / "loadtest-targets.json")]
    if shutil.which("promtool"):
        (tmp_path / "t.json").write_text("[]\n")
        (tmp_path / "loadtest-targets.json").write_text(cfg.targets_file([cfg.parse_target("127.0.0.1:9646")]))
        conf = tmp_path / "prometheus.yml"
        conf.write_text(text)
        done = subprocess.run(["promtool", "check", "config", str(conf)], capture_output=True, text=True,
                              check=False, cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr


def test_metrics_options_are_checked_before_any_load(invoke, tmp_path: Path) -> None:
    r = invoke("loadtest", "run", "smoke", "--metrics-linger", "5s", "--out", str(tmp_path / "a"))
    assert r.exit_code == 2 and "--metrics-linger needs --metrics-port" in r.stderr
    r = invoke("loadtest", "run", "smoke", "--metrics-port", "0", "--metrics-linger", "soon",
               "--out", str(tmp_path / "b"))
    assert r.exit_code == 2 and "--metrics-linger" in r.stderr
    r = invoke("loadtest", "run", "smoke", "--metrics-port", "70000")
    assert r.exit_code == 2
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_taken_metrics_port_is_refused_before_anything_starts(invoke, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = invoke("loadtest", "run", "smoke", "--metrics-port", str(port), "--out", str(tmp_path / "run"))
        with pytest.raises(OSError):  # and the runner's own bind (a port taken in between) fails the same way
            exporter.serve(lambda: make_view(hdr.new()), port)
    assert r.exit_code == 2, r.stderr
    assert f"--metrics-port {port}: cannot listen on 127.0.0.1:{port}" in r.stderr
    assert not (tmp_path / "run").exists()


def test_serve_answers_on_its_own_registry() -> None:
    import httpx
    from prometheus_client import REGISTRY

    endpoint = exporter.serve(lambda: make_view(hdr.new(), run_id="own"), 0)
    try:
        text = httpx.get(endpoint.url, timeout=5, trust_env=False).text
    finally:
        endpoint.close()
    assert value(parse(text), m.DROPPED, run_id="own") == 2
    assert "process_cpu_seconds_total" not in text and "python_info" not in text  # not the global registry
    assert REGISTRY.get_sample_value(m.DROPPED, {"run_id": "own", "scenario": "smoke"}) is None


CONTRACT = [("schema_version",), ("run", "model"), ("run", "valid"), ("aggregate", "requests"),
            ("aggregate", "latency_ms", "p99"), ("aggregate", "latency_ms", "p999"), ("endpoints",), ("timeline",),
            ("steps",), ("generator", "dropped"), ("generator", "cpu_max")]


def _prom_query(client: Any, url: str, expr: str, at: float) -> list[Any]:
    """The dashboard's query as Grafana sends it (all runs, all scenarios), evaluated at `at`: a moment
    the runner was still serving (once it stops, Prometheus marks its gauges stale)."""
    expr = (expr.replace("$__rate_interval", "1m").replace('"$run_id"', '".*"').replace('"$scenario"', '".*"'))
    body = client.get(f"{url}/api/v1/query", params={"query": expr, "time": f"{at:.3f}"}).json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def _wait_until_scraping(url: str, job: str) -> None:
    """Until Prometheus has tried the job's target once (an `up` sample, 0 while nothing listens yet):
    Prometheus applies new targets on a 5-second tick, so its first scrape comes seconds after it starts."""
    import httpx

    deadline = time.monotonic() + 30
    while not httpx.get(f"{url}/api/v1/query", params={"query": f'up{{job="{job}"}}'},
                        trust_env=False).json()["data"]["result"]:
        assert time.monotonic() < deadline, f"Prometheus never scraped job {job}"
        time.sleep(0.3)


def _final_sample_time(client: Any, url: str, run_id: str, deadline: float) -> float:
    """When Prometheus stored a scrape of the lingering metrics: opskit_loadtest_running 0 *after* a 1 (the
    exporter also serves 0 before the run starts, when no request counter exists yet)."""
    while True:
        body = client.get(f"{url}/api/v1/query", params={"query": f'{m.RUNNING}{{run_id="{run_id}"}}[2m]'}).json()
        points = sorted((float(t), float(v)) for r in body["data"]["result"] for t, v in r["values"])
        running = [t for t, v in points if v == 1]
        after = [t for t, v in points if v == 0 and running and t > running[-1]]
        if after:
            return after[-1]
        assert time.monotonic() < deadline, ("Prometheus never stored the final scrape", points)
        time.sleep(0.3)


def _label_values(client: Any, url: str, query: str) -> list[str]:
    match = re.fullmatch(r"label_values\((.*), (\w+)\)", query)
    assert match, query
    series = match.group(1).replace('"$scenario"', '".*"')
    body = client.get(f"{url}/api/v1/series", params={"match[]": series}).json()
    return sorted({s[match.group(2)] for s in body["data"]})


def _check_results_contract(r: dict[str, Any], out: Path, stdout: str) -> None:
    for path in CONTRACT:
        doc: Any = r
        for key in path:
            doc = doc[key]
    assert r["schema_version"] == SCHEMA_VERSION
    assert r["run"]["model"] == "open" and r["run"]["valid"] is True and r["run"]["target_name"] == "embedded"
    assert r["aggregate"]["requests"] == r["generator"]["sent"] == 40
    assert r["aggregate"]["failures"] == 0, r["aggregate"]["failures_by_kind"]
    # the whole mix, named by route template like the spec's SLOs
    assert {"GET /api/assets", "GET /api/assets/{id}", "POST /api/assets"} <= set(r["endpoints"])
    assert sum(e["requests"] for e in r["endpoints"].values()) == r["aggregate"]["requests"]
    assert [row["t"] for row in r["timeline"]][:4] == list(range(4))
    assert r["steps"][0]["requests"] == r["aggregate"]["requests"]
    for name in ("locust_stats.csv", "locust_failures.csv", "report.html"):
        assert (out / name).stat().st_size > 0
    assert "GET /api/assets" in stdout and "run: valid" in stdout
    assert not list(out.glob(".results.json.*"))  # atomic write left no temporary file


@pytest.mark.slow
def test_smoke_run_scraped_live_and_by_prometheus(invoke, tmp_path: Path) -> None:
    """The smoke scenario on the embedded service with /metrics on: scraped during the run, the final
    numbers equal results.json, and a real Prometheus (`monitor up --loadtest`) answers every query of
    the committed load-test dashboard."""
    import httpx

    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    state = tmp_path / "state"
    prom = None
    if shutil.which("prometheus"):
        up = invoke("monitor", "up", "--spec", str(ROOT / "opskit.yaml"), "--port", "0", "--scrape-interval", "1s",
                    "--state-dir", str(state), "--rules", str(tmp_path / "none-*.yml"), "--loadtest", metrics_url,
                    "--output", "json")
        assert up.exit_code == 0, up.stderr
        prom = json.loads(up.stdout)["url"]
        assert json.loads(up.stdout)["loadtest_targets"] == [metrics_url]
        _wait_until_scraping(prom, m.LOADTEST_JOB)  # else a 4 s run can end before Prometheus's first scrape
    out = tmp_path / "smoke"
    holder: dict[str, Any] = {}
    thread = threading.Thread(target=lambda: holder.update(result=invoke(
        "loadtest", "run", "smoke", "--duration", "4s", "--metrics-port", str(port), "--metrics-linger", "3s",
        "--out", str(out))))
    try:
        thread.start()
        with httpx.Client(timeout=5, trust_env=False) as client:
            live: dict[str, list[Any]] = {}
            deadline = time.monotonic() + 60
            while not live.get(m.REQUESTS) or value(live, m.RUNNING) != 1:  # poll until requests are counted
                assert time.monotonic() < deadline and thread.is_alive(), "no live metrics during the run"
                try:
                    live = parse(client.get(metrics_url).text)
                except httpx.TransportError:
                    live = {}
                time.sleep(0.2)
            assert value(live, m.TARGET_RPS) == 10 and value(live, m.STEP, step="smoke") == 0
            assert 0 < sum(s.value for s in live[m.REQUESTS]) < 40
            run_id = live[m.REQUESTS][0].labels["run_id"]
            assert live[m.REQUESTS][0].labels["scenario"] == "smoke"
            # every metric the dashboard queries is served, with the labels the queries select on
            for expr in dashboard_exprs():
                for name in re.findall(r"opskit_loadtest_\w+", expr):
                    assert name in live, (name, expr)
                    assert {"run_id", "scenario"} <= set(live[name][0].labels), name
            assert {"name", "method", "le"} <= set(live[m.RESPONSE_TIME + "_bucket"][0].labels)

            # after the run: results.json is written and /metrics lingers with the final numbers
            while not (out / "results.json").exists():
                assert time.monotonic() < deadline and thread.is_alive(), "no results.json"
                time.sleep(0.2)
            final = parse(client.get(metrics_url).text)
            results = json.loads((out / "results.json").read_text())
            for endpoint, ep in results["endpoints"].items():
                method, name = exporter.split_endpoint(endpoint)
                labels = {"name": name, "method": method, "run_id": run_id}
                assert value(final, m.REQUESTS, **labels) == ep["requests"], endpoint
                assert value(final, m.RESPONSE_TIME + "_count", **labels) == ep["requests"]
                assert value(final, m.FAILURES, **labels) == ep["failures"]
                for q, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
                    assert value(final, m.LATENCY_SUMMARY, quantile=q, **labels) * 1000 == pytest.approx(
                        ep["latency_ms"][key], abs=1e-3)
            assert sum(s.value for s in final[m.REQUESTS]) == results["aggregate"]["requests"]
            for q, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
                assert value(final, m.AGGREGATE_LATENCY_SUMMARY, quantile=q) * 1000 == pytest.approx(
                    results["aggregate"]["latency_ms"][key], abs=1e-3)
            assert value(final, m.DROPPED) == results["generator"]["dropped"]
            assert value(final, m.SCHEDULED) == results["generator"]["scheduled"]
            assert value(final, m.RUNNING) == 0 and value(final, m.TARGET_RPS) == 0
            assert results["run"]["metrics_url"] == metrics_url and results["run"]["run_id"] == run_id
            if shutil.which("promtool"):
                lint = subprocess.run(["promtool", "check", "metrics"], input=client.get(metrics_url).text,
                                      capture_output=True, text=True, check=False)
                assert lint.returncode == 0, lint.stdout + lint.stderr

            if prom is not None:  # the real Prometheus scraped it as job opskit-loadtest: every query has data
                prom_deadline = time.monotonic() + 30  # the lingering scrapes arrive within seconds
                at = _final_sample_time(client, prom, run_id, prom_deadline)
                panels = [e for e in dashboard_exprs() if "label_values" not in e]
                while missing := [e for e in panels if not _prom_query(client, prom, e, at)]:
                    assert time.monotonic() < prom_deadline, missing
                    time.sleep(0.5)
                series = _prom_query(client, prom, f'{m.REQUESTS}{{run_id="{run_id}"}}', at)
                assert {s["metric"]["job"] for s in series} == {m.LOADTEST_JOB}
                for query in (e for e in dashboard_exprs() if e.startswith("label_values")):
                    assert _label_values(client, prom, query) in (["smoke"], [run_id])
        thread.join(timeout=60)
        result = holder["result"]
        assert result.exit_code == 0, result.stderr
        _check_results_contract(results, out, result.stdout)
        assert f"metrics: {metrics_url}" in result.stderr and "serving the final metrics" in result.stderr
    finally:
        thread.join(timeout=60)
        if prom is not None:
            invoke("monitor", "down", "--state-dir", str(state))
    with pytest.raises(httpx.TransportError):  # nothing left listening once the command returned
        httpx.get(metrics_url, timeout=2, trust_env=False)
