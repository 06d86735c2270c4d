"""Keep-alive users who think for seconds (seed 000's 10,000 users, scaled down): do connections stay open?

Runs the loadtests/users-10k.yaml scenario with opskit's own generator (`opskit loadtest run users-10k
--users N --duration D --host URL`) against a 2-worker service, once with the service's idle keep-alive
timeout (--keep-alive-timeout, 75 s by default) and once with uvicorn's old 5 s, back to back. While each
runs it samples the server side of the loopback connections (/proc/net/tcp: ESTABLISHED sockets on the
service's port) every second: the open connections and the distinct client ports seen. Kept connections
show as about N distinct ports; reconnecting users as about one per request. Also the workers' open files
and resident memory at the peak, for the per-connection cost behind the 10,000-user figure.

    .venv/bin/python benchmarks/bench_keepalive.py [--users 500] [--duration 60] [--timeouts 75,5]
        [--out benchmarks/results/keepalive.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from opskit.localservice import LocalService

ESTABLISHED = "01"


def server_side(port: int) -> list[int]:
    """Client ports of the ESTABLISHED connections whose local port is `port` (the service's side)."""
    ports = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            local, remote, state = f[1], f[2], f[3]
            if state == ESTABLISHED and int(local.rsplit(":", 1)[1], 16) == port:
                ports.append(int(remote.rsplit(":", 1)[1], 16))
    return ports


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


def one(keep_alive: int, users: int, duration: int, tmp: Path) -> dict[str, Any]:
    with LocalService(workers=2, seed_assets=5000, tenants=1,
                      extra_args=["--keep-alive-timeout", str(keep_alive)]) as svc:
        port = int(svc.url.rsplit(":", 1)[1])
        pids = sorted({httpx.get(f"{svc.url}/health").json()["worker_pid"] for _ in range(20)})
        idle = worker_usage(pids)
        samples: list[int] = []
        seen: set[int] = set()
        peak: dict[str, int] = {"fds": 0, "rss": 0}
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                ports = server_side(port)
                samples.append(len(ports))
                seen.update(ports)
                use = worker_usage(pids)
                if use["fds"] > peak["fds"]:
                    peak.update(use)

        out = tmp / f"run-{keep_alive}"
        env = {**os.environ, "OPSKIT_API_KEYS": f"company-1={svc.key}"}  # keys never in argv
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        subprocess.run([sys.executable, "-m", "opskit", "loadtest", "run", "users-10k", "--host", svc.url,
                        "--users", str(users), "--duration", f"{duration}s", "--out", str(out)],
                       env=env, check=False, stdout=subprocess.DEVNULL)
        stop.set()
        sampler.join()
        res = json.loads((out / "results.json").read_text())
    agg = res["aggregate"]
    held = samples[len(samples) // 2:]  # after the ramp
    return {"keep_alive_s": keep_alive, "requests": agg["requests"], "failures": agg["failures"],
            "rps": agg["rps"], "p50_ms": agg["latency_ms"]["p50"], "p95_ms": agg["latency_ms"]["p95"],
            "p99_ms": agg["latency_ms"]["p99"], "open_median": statistics.median(held) if held else 0,
            "open_min": min(held) if held else 0, "distinct_connections": len(seen),
            "fds_per_conn": (peak["fds"] - idle["fds"]) / max(1, users),
            "rss_per_conn_kb": (peak["rss"] - idle["rss"]) / max(1, users) / 1024}


def report(rows: list[dict[str, Any]], argv: str, users: int) -> str:
    lines = ["# Keep-alive users (users-10k scenario, scaled down)", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average before: "
             f"{os.getloadavg()[0]:.1f}", f"- command: `{argv}`",
             f"- {users} users, 2 workers, opskit's generator (closed model, one FastHttpUser = one connection)", "",
             "| keep-alive timeout | requests | failures | req/s | p50 ms | p95 ms | p99 ms | open conns (median, min) "
             "| distinct connections | fds / conn | worker RSS / conn |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['keep_alive_s']} s | {r['requests']:,} | {r['failures']} | {r['rps']:.1f} | "
                     f"{r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['open_median']:.0f}, "
                     f"{r['open_min']} | {r['distinct_connections']:,} | {r['fds_per_conn']:.2f} | "
                     f"{r['rss_per_conn_kb']:.1f} KiB |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--users", type=int, default=500)
    ap.add_argument("--duration", type=int, default=60, help="seconds per run")
    ap.add_argument("--timeouts", default="75,5", help="keep-alive timeouts to compare, seconds")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-keepalive-") as tmp:
        for t in (int(x) for x in args.timeouts.split(",")):
            rows.append(one(t, args.users, args.duration, Path(tmp)))
            print(json.dumps(rows[-1]), flush=True)
    text = report(rows, "python benchmarks/bench_keepalive.py " + " ".join(sys.argv[1:]), args.users)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
