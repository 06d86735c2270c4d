"""The asset service's hot path against the bare stack, as ratios measured in the same run.

The anchor is a bare Starlette hello-world on the same uvicorn + uvloop + httptools stack (the `app` below),
2 workers like the service. For each service, each round runs wrk -t1 -c64 against, in turn: the
hello-world, the service's cached list page (GET /api/assets?limit=50 with --assets stored), its /health,
and writes (POST /api/assets, one asset per request, wrk -c32, SQLite). --baseline-rev adds the service as
committed at REV (repeatable: one per step of a change), so each step's ratios come from the same run.
Every ratio is to the hello-world run just before it; the median over rounds is reported. Absolute rates
move about 2x between machines of this kind and with the load of a shared one; same-run ratios much less.

    .venv/bin/python benchmarks/bench_hotpath.py [--assets 1000000] [--duration 8] [--rounds 3]
        [--baseline-rev REV ...] [--db FILE] [--out benchmarks/results/hotpath.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_assetsvc import baseline_tree, wrk  # noqa: E402

from opskit.localservice import LocalService  # noqa: E402


# the anchor: what every request through uvicorn + Starlette costs before the service does anything
async def _hello(request: Any) -> Any:
    from starlette.responses import PlainTextResponse

    return PlainTextResponse("Hello, world!")


def _make_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(routes=[Route("/", _hello)])


app = _make_app()


class BareStack:
    """`uvicorn bench_hotpath:app --workers 2` on uvloop + httptools, on a free loopback port."""

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.pid = 0

    def __enter__(self) -> BareStack:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench_hotpath:app", "--app-dir", str(Path(__file__).parent),
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(self.workers), "--loop", "uvloop",
             "--http", "httptools", "--no-access-log", "--log-level", "warning"],
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        self.url = f"http://127.0.0.1:{port}"
        self.pid = self.proc.pid
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/").status_code == 200:
                    time.sleep(0.5)  # let the second worker come up too
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the bare hello-world did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _service(seeded: Path, src: Path | None, tmp: Path, name: str) -> LocalService:
    # a copy each: writes grow the WAL, and one service's checkpoints must not land in the other's runs
    db = tmp / f"{name}.db"
    shutil.copyfile(seeded, db)
    env: dict[str, str] = {}
    if src is not None:
        env["PYTHONPATH"] = str(src)  # `python -m opskit` puts the cwd first on sys.path: start from tmp
    cwd = os.getcwd()
    os.chdir(tmp if src is not None else cwd)
    try:
        return LocalService(workers=2, db=db, tenants=1, extra_env=env).start()
    finally:
        os.chdir(cwd)


def workers_cpu_s(parent: int) -> float:
    """User + system CPU seconds of a server's worker processes (the children of `parent`)."""
    total = 0.0
    for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def measured(parent: int, url: str, duration: int, key: str | None = None, script: Path | None = None,
             connections: int = 64) -> dict[str, float]:
    """A wrk run plus the workers' CPU microseconds per request: the server's own cost per request, which
    moves much less with the machine's load than the rate does (the rate also depends on what the
    other processes leave to wrk and the server)."""
    before = workers_cpu_s(parent)
    out = wrk(url, duration, key, script, connections)
    out["cpu_us"] = (workers_cpu_s(parent) - before) / max(1.0, out["rps"] * duration) * 1e6
    return out


def post_script(tmp: Path) -> Path:
    """wrk: POST /api/assets with one asset per request (the writes figure: wrk -c32)."""
    body = json.dumps({"address": "1 Bench St, Springfield", "latitude": 39.78, "longitude": -89.65})
    script = tmp / "post.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n'
                      'wrk.headers["Content-Type"] = "application/json"\n')
    return script


def run(db: Path, duration: int, rounds: int, revs: list[str], tmp: Path) -> dict[str, Any]:
    services = {"service": _service(db, None, tmp, "service")}
    try:
        for rev in revs:
            services[rev] = _service(db, baseline_tree(rev, tmp), tmp, rev)
        results: list[dict[str, dict[str, float]]] = []
        with BareStack() as bare:
            for svc in services.values():  # warm each page cache and key cache
                for _ in range(3):
                    httpx.get(f"{svc.url}/api/assets?limit=50", headers={"Authorization": f"Bearer {svc.key}"})
            for i in range(rounds):
                one = {"loadavg": {"rps": os.getloadavg()[0]}}
                order = list(services.items())
                for name, svc in order if i % 2 == 0 else order[::-1]:  # none always goes first
                    # the anchor right before each service's runs: the load of a shared machine moves
                    one[f"{name}_bare"] = measured(bare.pid, bare.url + "/", duration)
                    one[f"{name}_list"] = measured(svc.pid, f"{svc.url}/api/assets?limit=50", duration, svc.key)
                    one[f"{name}_health"] = measured(svc.pid, f"{svc.url}/health", duration)
                    one[f"{name}_write"] = measured(svc.pid, f"{svc.url}/api/assets", duration, svc.key,
                                                    post_script(tmp), connections=32)
                results.append(one)
                print(json.dumps({"round": i + 1, **{k: v["rps"] for k, v in one.items()}}), flush=True)
    finally:
        for svc in services.values():
            svc.stop()
    return {"rounds": results, "names": list(services)}


def report(res: dict[str, Any], argv: str, loadavg: str) -> str:
    rounds = res["rounds"]
    per_round = ", ".join(f"{r['loadavg']['rps']:.1f}" for r in rounds)
    lines = ["# Asset service hot path vs the bare stack", "",
             f"- machine: {os.cpu_count()} cores, {platform.python_implementation()} {platform.python_version()}, "
             f"load average before: {loadavg}; per round: {per_round}",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", f"- command: `{argv}`",
             "- wrk -t1 -c64 on loopback (writes: -c32, POST /api/assets, one asset per request, SQLite), 2 workers "
             "each; wrk shares the cores with the server it measures; non-2xx counts a write's 201 as 2xx", "",
             "- CPU/req: the server's workers' CPU microseconds per request (median); vs bare: the hello-world's "
             "CPU per request over this run's (above 1: cheaper than the bare stack)", "",
             "| run | req/s (median) | p50 ms | p99 ms | non-2xx + socket errors | vs bare, per round "
             "| vs bare (median) | CPU/req us | CPU vs bare |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|"]
    runs = [(n, p) for n in res["names"] for p in ("bare", "list", "health", "write")]
    for name, part in runs:
        run_name = f"{name}_{part}"
        rps = [r[run_name]["rps"] for r in rounds]
        ratios = [r[run_name]["rps"] / r[f"{name}_bare"]["rps"] for r in rounds]
        cpu = statistics.median(r[run_name]["cpu_us"] for r in rounds)
        cpu_ratio = statistics.median(r[f"{name}_bare"]["cpu_us"] / r[run_name]["cpu_us"] for r in rounds)
        errors = sum(r[run_name]["non_2xx"] + r[run_name]["socket_errors"] for r in rounds)
        p50 = statistics.median(r[run_name].get("p50_ms", 0) for r in rounds)
        p99 = statistics.median(r[run_name].get("p99_ms", 0) for r in rounds)
        lines.append(f"| {run_name} | {statistics.median(rps):,.0f} | {p50:.2f} | {p99:.2f} | {errors:.0f} | "
                     f"{', '.join(f'{x:.2f}' for x in ratios)} | **{statistics.median(ratios):.2f}** | {cpu:.0f} | "
                     f"{cpu_ratio:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--assets", type=int, default=1_000_000)
    ap.add_argument("--db", type=Path, default=None, help="an already seeded store (else one is seeded)")
    ap.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--baseline-rev", action="append", default=[],
                    help="also measure the service as committed at this revision (repeatable: one per step)")
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    args = ap.parse_args()
    loadavg = " ".join(f"{x:.2f}" for x in os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix="bench-hotpath-"))
    try:
        db = args.db
        if db is None:
            db = tmp / "hot.db"
            subprocess.run([sys.executable, "-m", "opskit", "service", "seed", "--assets", str(args.assets),
                            "--companies", "10", "--db", str(db)], check=True)
        res = run(db.resolve(), args.duration, args.rounds, args.baseline_rev, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(res, "python benchmarks/bench_hotpath.py " + " ".join(sys.argv[1:]), loadavg)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
