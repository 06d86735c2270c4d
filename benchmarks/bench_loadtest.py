"""Benchmark: the open-model generator's requests per CPU-second against bare Locust FastHttpUser,
the anchor, measured in the same run against the same fast loopback target.

    .venv/bin/python benchmarks/bench_loadtest.py [--seconds 10] [--users 10]

The target (opskit.loadtest.stallserver with no stall, uvloop) is pinned to CPU 1 and each generator
to CPU 0 with taskset when there are two cores. Throughput is normalised by the generator's own CPU
time in a steady window (psutil samples; start-up and the final report left out), so other load on
a shared machine changes both sides alike (mostly: it still adds noise, run it a few times):

  bare      locust -f (10 FastHttpUser users, no wait) --headless: closed loop, as fast as it can
  auto      opskit's runner, open model at the bare run's req/s with an in-flight cap of 10x users:
            arrivals on schedule, each timed from its intended start, HDR-recorded (tick auto, the default)
  open      the same with a fixed 1 ms tick (open2, open5: 2 and 5 ms)
  closed    opskit's runner, closed model with the same users: Locust plus opskit's recording only

Prints one line per side and the ratio open/bare (target >= 0.90). `--sides open,bare` runs fewer sides;
`--compare DIR` adds "other": the open model (1 ms tick) run from another copy of the source tree (a
directory holding `opskit/` and `loadtests/`, e.g. a copy taken before a change), for before/after
figures measured in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

BARE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

class Bare(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
"""


def pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else []


def run_measured(argv: list[str], **kw: object) -> tuple[list[tuple[float, float]], str]:
    """Run to completion, sampling the process's CPU seconds twice a second: ([(wall, cpu_s)], stdout).
    Start-up (imports) and the final report are left out by measuring a steady window only."""
    import threading

    import psutil

    samples: list[tuple[float, float]] = []
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, **kw)  # type: ignore[call-overload]
        ps = psutil.Process(proc.pid)

        def sample() -> None:
            while proc.poll() is None:
                try:
                    t = ps.cpu_times()
                    samples.append((time.time(), t.user + t.system))
                except psutil.Error:
                    return
                time.sleep(0.5)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        proc.wait()
        th.join()
        out.seek(0)
        text = out.read().decode()
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{argv[:4]} failed with {proc.returncode}")
    return samples, text


def interp(points: list[tuple[float, float]], t: float) -> float:
    points = sorted(points)
    for (t0, v0), (t1, v1) in zip(points, points[1:], strict=False):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * ((t - t0) / (t1 - t0) if t1 > t0 else 0.0)
    raise SystemExit(f"no sample around {t}")


def window(requests: list[tuple[float, float]], cpu: list[tuple[float, float]], start: float,
           seconds: float) -> dict[str, float]:
    """Requests and CPU seconds between 2 s after the start and 1 s before the end."""
    a = start + 2.0
    b = min(start + seconds - 1.0, max(t for t, _ in requests), max(t for t, _ in cpu))
    n = interp(requests, b) - interp(requests, a)
    c = interp(cpu, b) - interp(cpu, a)
    return {"requests": n, "cpu_s": c, "rps": n / (b - a), "per_cpu_s": n / c, "cpu_pct": 100 * c / (b - a)}


def start_target() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen([*pin(1), PY, "-m", "opskit.loadtest.stallserver", "--stall", "0", "--service", "0"],
                            stdout=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}"


def bare(url: str, seconds: float, users: int, tmp: Path) -> dict[str, float]:
    import csv

    lf = tmp / "bare.py"
    lf.write_text(BARE)
    cpu, _ = run_measured([*pin(0), PY, "-m", "locust", "-f", str(lf), "--headless", "-u", str(users),
                           "-r", str(users), "-t", f"{seconds:g}s", "--host", url, "--only-summary",
                           "--csv", str(tmp / "bare"), "--loglevel", "ERROR"], cwd=tmp)
    with open(tmp / "bare_stats_history.csv") as fh:
        rows = [r for r in csv.DictReader(fh) if r["Name"] == "Aggregated"]
    counts = [(float(r["Timestamp"]), float(r["Total Request Count"])) for r in rows]
    start = counts[0][0]
    return window(counts, cpu, start, seconds)


def opskit_run(url: str, seconds: float, rate: float | None, cap: int, tmp: Path, users: int = 0,
               tick_s: float | None = 0.001, root: Path = ROOT) -> dict[str, float]:
    out_dir = tmp / ("open" if rate else "closed")
    cfg = {"scenario": "bench", "model": "open" if rate else "closed", "host": url,
           "locustfile": str(root / "loadtests" / "http_get.py"), "user_classes": None,
           "stages": [{"name": "bench", "duration_s": seconds, "start_rate": rate, "end_rate": rate,
                       "users": None if rate else users}],
           "max_in_flight": cap, "timeout_s": 5.0, "tick_s": tick_s, "spawn_rate": 10, "workers": 0, "local_workers": 0,
           "out_dir": str(out_dir), "ui": False, "params": {"path": "/"}, "run": {"scenario": "bench"}}
    path = tmp / f"cfg-{cfg['model']}.json"
    path.write_text(json.dumps(cfg))
    cpu, _ = run_measured([*pin(0), PY, "-m", "opskit.loadtest.runner", str(path)], cwd=root)
    r = json.loads((out_dir / "results.json").read_text())
    from datetime import datetime

    start = datetime.fromisoformat(r["run"]["started_at"].replace("Z", "+00:00")).timestamp()
    cumulative, total = [(start, 0.0)], 0
    for row in r["timeline"]:
        total += row["requests"]
        cumulative.append((start + row["t"] + 1, float(total)))
    return {**window(cumulative, cpu, start, seconds), "dropped": r["generator"]["dropped"],
            "p99_ms": r["aggregate"]["latency_ms"]["p99"], "valid": r["run"]["valid"]}


def main() -> None:
    import statistics

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--cap", type=int, default=0, help="in-flight cap of the open model [default: 10 x users]")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds; medians are reported")
    ap.add_argument("--sides", default="auto,open,open5,closed", help="which opskit sides to run (bare always runs)")
    ap.add_argument("--compare", type=Path, help="also run the open model from this source tree ('other')")
    args = ap.parse_args()
    sides = [x for x in args.sides.split(",") if x] + (["other"] if args.compare else [])
    cap = args.cap or args.users * 10
    rounds: list[dict[str, dict[str, float]]] = []
    target, url = start_target()

    def run_side(side: str, rate: float) -> dict[str, float]:
        if side == "closed":
            return opskit_run(url, args.seconds, None, args.users, tmp, users=args.users)
        ticks = {"auto": None, "open": 0.001, "open2": 0.002, "open5": 0.005, "other": 0.001}
        return opskit_run(url, args.seconds, rate, cap, tmp, tick_s=ticks[side],
                          root=args.compare if side == "other" else ROOT)

    try:
        with tempfile.TemporaryDirectory() as t:
            tmp = Path(t)
            for _ in range(args.repeat):
                b = bare(url, args.seconds, args.users, tmp)
                rounds.append({"bare": b, **{side: run_side(side, b["rps"]) for side in sides}})
    finally:
        target.terminate()
        target.wait(10)

    def med(side: str, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    def ratio(side: str) -> list[float]:
        return [r[side]["per_cpu_s"] / r["bare"]["per_cpu_s"] for r in rounds]

    print(f"machine: {os.cpu_count()} cpus, load average {os.getloadavg()[0]:.2f}, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{args.repeat} interleaved rounds of {args.seconds:g} s, medians")
    labels = {"bare": f"bare FastHttpUser ({args.users} users, closed)",
              "auto": f"opskit open model at the bare req/s, tick auto (default), cap {cap}",
              "open": f"opskit open model at the bare req/s, 1 ms tick, cap {cap}",
              "open2": f"opskit open model at the bare req/s, 2 ms tick, cap {cap}",
              "open5": f"opskit open model at the bare req/s, 5 ms tick, cap {cap}",
              "closed": f"opskit closed model ({args.users} users)",
              "other": f"open model from {args.compare}, 1 ms tick, cap {cap}"}
    for side, label in labels.items():
        if side != "bare" and side not in sides:
            continue
        extra = f", dropped {med(side, 'dropped'):.0f}" if side.startswith(("open", "other", "auto")) else ""
        print(f"{label}: {med(side, 'rps'):.0f} req/s at {med(side, 'cpu_pct'):.0f}% CPU, "
              f"{med(side, 'per_cpu_s'):.0f} req per CPU-second{extra}")
    for side in sides:
        rs = ratio(side)
        print(f"ratio {side}/bare per CPU-second: median {statistics.median(rs):.2f} "
              f"(rounds: {', '.join(f'{x:.2f}' for x in rs)})" + ("  target >= 0.90" if side == "auto" else ""))


if __name__ == "__main__":
    main()
