"""Keep-alive users who think for seconds (seed 000's 10,000 users): do connections stay open, and does it hold?

Runs the loadtests/users-10k.yaml scenario with opskit's own generator (`opskit loadtest run users-10k
--users N --duration D --processes P --host URL`) against a 2-worker service. While each run goes it samples
the server side of the loopback connections every second (`ss`, filtered in the kernel: ESTABLISHED sockets
on the service's port): the open connections and the distinct client ports seen. Kept connections show as
about N distinct ports; reconnecting users as about one per request. Also the workers' open files and
resident memory at the peak (the per-connection cost), the workers' CPU over the run, the generator's CPU
and loop lag (results.json), and the machine's load average before and after (the machine may be shared).

    .venv/bin/python benchmarks/bench_keepalive.py --full     # the real thing: 10,000 users for 180 s
        (2 generator processes, keep-alive 75 s), after its anchor, the same script's 500 users for 60 s
    .venv/bin/python benchmarks/bench_keepalive.py [--users 500] [--duration 60] [--timeouts 75,5]
        [--processes 1] [--out benchmarks/results/keepalive.md]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from opskit.localservice import LocalService

FULL_USERS, FULL_DURATION_S, FULL_PROCESSES = 10_000, 180, 2
ANCHOR_USERS, ANCHOR_DURATION_S = 500, 60
NOT_CONNECTION = ("http_", "timeout", "check_failed")  # failure kinds that are not a connection's failure


def server_side(port: int) -> list[int]:
    """Client ports of the ESTABLISHED connections whose local port is `port` (the service's side); the
    kernel filters, so 10,000 connections cost one 10,000-line read, not a parse of every socket's row."""
    out = subprocess.run(["ss", "-tnH", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=False).stdout
    return [int(line.split()[-1].rsplit(":", 1)[1]) for line in out.splitlines() if line.strip()]


def worker_usage(pids: list[int]) -> dict[str, int]:
    fds = rss = 0
    for pid in pids:
        try:
            fds += len(os.listdir(f"/proc/{pid}/fd"))
            status = Path(f"/proc/{pid}/status").read_text()
            rss += int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) * 1024
        except (OSError, StopIteration):
            continue
    return {"fds": fds, "rss": rss}


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def service_buckets(url: str) -> dict[float, float]:
    """The service's own request-duration histogram for GET /api/assets (cumulative count per bucket bound,
    every status), from its /metrics: how long the service took, apart from the generator's timing."""
    out: dict[float, float] = {}
    for line in httpx.get(f"{url}/metrics", timeout=60).text.splitlines():
        if (line.startswith("http_request_duration_seconds_bucket{") and 'route="/api/assets"' in line
                and 'method="GET"' in line):
            m = re.search(r'le="([^"]+)"', line)
            if m:
                le = float(m.group(1))
                out[le] = out.get(le, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


def service_view(before: dict[float, float], after: dict[float, float]) -> dict[str, Any]:
    d = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in after}
    total = d.get(float("inf"), 0.0)
    if not total:
        return {"service_requests": 0, "service_within_5ms": None, "service_within_200ms": None,
                "service_p95_le_ms": None}
    p95 = next((le for le in sorted(d) if d[le] >= 0.95 * total), float("inf"))
    return {"service_requests": int(total), "service_within_5ms": round(100 * d.get(0.005, 0.0) / total, 2),
            "service_within_200ms": round(100 * d.get(0.2, 0.0) / total, 2), "service_p95_le_ms": 1000 * p95}


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass(frozen=True)
class Setup:
    users: int
    duration_s: int
    keep_alive_s: int
    processes: int


def one(s: Setup, tmp: Path) -> dict[str, Any]:
    with LocalService(workers=2, seed_assets=5000, tenants=1,
                      extra_args=["--keep-alive-timeout", str(s.keep_alive_s)]) as svc:
        port = int(svc.url.rsplit(":", 1)[1])
        pids = sorted(c.pid for c in psutil.Process(svc.pid).children())
        idle = worker_usage(pids)
        samples: list[tuple[float, int]] = []  # (wall clock, open connections)
        seen: set[int] = set()
        peak: dict[str, int] = {"fds": 0, "rss": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                ports = server_side(port)
                samples.append((time.time(), len(ports)))
                seen.update(ports)
                use = worker_usage(pids)
                if use["fds"] > peak["fds"]:
                    peak.update(use)

        out = tmp / f"run-{s.users}-{s.keep_alive_s}"
        env = {**os.environ, "OPSKIT_API_KEYS": f"company-1={svc.key}"}  # keys never in argv
        load_before = load1()
        buckets_before = service_buckets(svc.url)
        cpu_before, t0 = cpu_seconds(pids), time.monotonic()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        subprocess.run([sys.executable, "-m", "opskit", "loadtest", "run", "users-10k", "--host", svc.url,
                        "--users", str(s.users), "--duration", f"{s.duration_s}s", "--processes", str(s.processes),
                        "--out", str(out)], env=env, check=False, stdout=subprocess.DEVNULL)
        stop.set()
        sampler.join()
        service_cpu = (cpu_seconds(pids) - cpu_before) / max(time.monotonic() - t0, 1e-9)
        load_after = load1()
        served = service_view(buckets_before, service_buckets(svc.url))
        res = json.loads((out / "results.json").read_text())
    agg, gen, run = res["aggregate"], res["generator"], res["run"]
    # the run's second half: after the ramp and the users' first requests, before the users stop
    start, end = (datetime.fromisoformat(run[k].replace("Z", "+00:00")).timestamp() for k in ("started_at", "ended_at"))
    held = [n for t, n in samples if start + s.duration_s / 2 <= t <= min(end, start + s.duration_s) - 1]
    kinds = agg["failures_by_kind"]
    steady = [r for r in res["timeline"] if s.duration_s / 2 <= r["t"] < s.duration_s and r["requests"]]
    lags = sorted(r["lag_max_ms"] for r in res["timeline"])
    return {"users": s.users, "duration_s": s.duration_s, "keep_alive_s": s.keep_alive_s, "processes": s.processes,
            "load_before": load_before, "load_after": load_after,
            "requests": agg["requests"], "failures": agg["failures"], "failures_by_kind": kinds,
            "connection_errors": sum(v for k, v in kinds.items() if not k.startswith(NOT_CONNECTION)),
            "rps": agg["rps"], "p50_ms": agg["latency_ms"]["p50"], "p95_ms": agg["latency_ms"]["p95"],
            "p99_ms": agg["latency_ms"]["p99"],
            "steady_p95_median_ms": statistics.median(r["p95"] for r in steady) if steady else None,
            "steady_p95_worst_ms": max(r["p95"] for r in steady) if steady else None,
            "open_median": statistics.median(held) if held else 0, "open_min": min(held) if held else 0,
            "distinct_connections": len(seen),
            "fds_per_conn": (peak["fds"] - idle["fds"]) / max(1, s.users),
            "rss_per_conn_kb": (peak["rss"] - idle["rss"]) / max(1, s.users) / 1024,
            "service_cpu_pct": round(100 * service_cpu, 1), **served,
            "generator_cpu_mean": gen["cpu_mean"], "generator_cpu_max": gen["cpu_max"],
            "generator_lag_max_ms": gen["lag_max_ms"],
            "generator_lag_p95_ms": lags[int(0.95 * (len(lags) - 1))] if lags else None,
            "valid": run["valid"], "limited_by": run["limited_by"], "invalid_reason": run["invalid_reason"]}


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def report(rows: list[dict[str, Any]], argv: str) -> str:
    lines = ["# Keep-alive users (users-10k scenario)", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; command: `{argv}`",
             "- 2 service workers; opskit's generator (closed model, one FastHttpUser = one connection); the "
             "machine may be shared: load average (1 min) before and after each run", "",
             "| users, run, keep-alive, generator processes | load before -> after | requests | failures "
             "(connection errors) | req/s | p50 / p95 / p99 ms | steady p95 ms (median, worst second) "
             "| open conns (median, min) | distinct connections | fds / conn | worker RSS / conn | service CPU "
             "| generator CPU mean / max per process | generator loop lag ms (p95 s, max) | valid, limited_by "
             "| service's own timing: within 5 ms, within 200 ms, p95 at most |",
             "|---|---|---:|---|---:|---|---|---|---:|---:|---:|---:|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['users']:,}, {r['duration_s']} s, {r['keep_alive_s']} s, {r['processes']} "
            f"| {r['load_before']:.1f} -> {r['load_after']:.1f} | {r['requests']:,} "
            f"| {r['failures']} ({r['connection_errors']}) | {r['rps']:.1f} "
            f"| {_ms(r['p50_ms'])} / {_ms(r['p95_ms'])} / {_ms(r['p99_ms'])} "
            f"| {_ms(r['steady_p95_median_ms'])}, {_ms(r['steady_p95_worst_ms'])} "
            f"| {r['open_median']:,.0f}, {r['open_min']:,} | {r['distinct_connections']:,} "
            f"| {r['fds_per_conn']:.2f} | {r['rss_per_conn_kb']:.1f} KiB | {r['service_cpu_pct']:.0f}% of a core "
            f"| {r['generator_cpu_mean']}% / {r['generator_cpu_max']}% "
            f"| {_ms(r['generator_lag_p95_ms'])}, {_ms(r['generator_lag_max_ms'])} "
            f"| {'yes' if r['valid'] else 'no'}, {r['limited_by']} "
            f"| {r['service_within_5ms']}%, {r['service_within_200ms']}%, {_ms(r['service_p95_le_ms'])} ms |")
    reasons = [f"- {r['users']:,} users: {r['invalid_reason']}" for r in rows if r["invalid_reason"]]
    kinds = [f"- {r['users']:,} users, failures by kind: {r['failures_by_kind']}" for r in rows if r["failures"]]
    return "\n".join(lines + [""] + reasons + kinds) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--full", action="store_true",
                    help=f"the real run: {FULL_USERS:,} users for {FULL_DURATION_S} s with {FULL_PROCESSES} generator "
                         f"processes, keep-alive 75 s, after the anchor ({ANCHOR_USERS} users, {ANCHOR_DURATION_S} s)")
    ap.add_argument("--users", type=int, default=ANCHOR_USERS)
    ap.add_argument("--duration", type=int, default=ANCHOR_DURATION_S, help="seconds per run")
    ap.add_argument("--timeouts", default="75,5", help="keep-alive timeouts to compare, seconds")
    ap.add_argument("--processes", type=int, default=1, help="generator processes")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.full:
        setups = [Setup(ANCHOR_USERS, ANCHOR_DURATION_S, 75, FULL_PROCESSES),
                  Setup(FULL_USERS, FULL_DURATION_S, 75, FULL_PROCESSES)]
    else:
        setups = [Setup(args.users, args.duration, int(t), args.processes) for t in args.timeouts.split(",")]
    rows = []
    runs = Path(tempfile.mkdtemp(prefix="bench-keepalive-"))  # kept: each run's results.json and Locust logs
    for s in setups:
        rows.append(one(s, runs))
        print(json.dumps(rows[-1]), flush=True)
    print(f"run folders: {runs}", flush=True)
    text = report(rows, "python benchmarks/bench_keepalive.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
