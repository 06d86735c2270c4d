"""100 concurrent CSV uploads (seed 000: e.g. 100 x 1 MB at once) while another tenant reads.

A 2-worker service (--max-uploads per worker, 2 by default; up to --upload-queue more wait at most
--upload-queue-wait for a slot, then 503 with Retry-After). N clients each POST the same ~1 MB CSV at the
same moment; a client answered 429/503 waits Retry-After and tries again, until it succeeds or `--tries`
are used. Meanwhile a second tenant reads `GET /api/assets?limit=50` at a fixed rate from a separate
process. Anchor, same run: that reader alone, before the uploads. Reported: every answer's status
(anything but 200, 429/503 with Retry-After is a failure), the p95 of single attempts and of the time
until each upload succeeded, the service's peak resident memory (supervisor + workers, sampled every
50 ms) over its idle size, the reader's p95 with and without the uploads, and the machine's load average
(/proc/loadavg) before and after: the figures are only comparable within a run on a shared machine.

    .venv/bin/python benchmarks/bench_uploads.py [--uploads 100] [--mb 1] [--read-rate 50]
        [--max-uploads 2] [--upload-queue 64] [--upload-queue-wait 10] [--service-arg=--opt=value ...]
        [--out benchmarks/results/uploads.md]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_assetsvc import make_csv  # noqa: E402

from opskit.localservice import LocalService  # noqa: E402


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[94] if len(values) >= 2 else (values[0] if values else 0.0)


def reader(url: str, key: str, rate: float, stop: str) -> None:
    """--reader mode (own process, so the uploads' client does not slow it): GETs at `rate` until the file
    `stop` exists (at most 300 s); prints [wall time sent, latency ms] pairs."""
    lat, errors = [], 0
    gap = 1.0 / rate
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        start = time.perf_counter()
        n = 0
        while (now := time.perf_counter()) - start < 300 and not os.path.exists(stop):
            due = start + n * gap
            if due > now:
                time.sleep(due - now)
            try:
                ok = c.get("/api/assets?limit=50").status_code == 200
            except httpx.HTTPError:
                ok = False
            # from the intended start: a slow answer delays the next ones, which count that wait too
            lat.append((time.time(), (time.perf_counter() - max(due, start)) * 1000))
            errors += not ok
            n += 1
    print(json.dumps({"latencies_ms": lat, "errors": errors}))


def read_while(url: str, key: str, rate: float, stop: Path, work: Any) -> tuple[dict[str, Any], Any, float, float]:
    """Run the reader process while `work()` runs; its reads sent during the work, and what work returned."""
    stop.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, __file__, "--reader", url, str(rate), str(stop)],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "BENCH_READ_KEY": key})
    time.sleep(1.0)  # the reader's start-up is not part of the measured window
    t0 = time.time()
    result = work()
    t1 = time.time()
    stop.touch()
    out = json.loads(proc.communicate()[0])
    inside = [ms for at, ms in out["latencies_ms"] if t0 <= at <= t1]
    return {"latencies_ms": inside, "errors": out["errors"]}, result, t0, t1


def rss_of(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += int(next(x for x in status.splitlines() if x.startswith("VmRSS:")).split()[1]) * 1024
    return total


async def uploads(url: str, key: str, body: bytes, n: int, tries: int) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        gate = asyncio.Event()

        async def one() -> dict[str, Any]:
            attempts: list[tuple[int | str, float, str | None]] = []
            await gate.wait()
            start = time.perf_counter()
            for _ in range(tries):
                t0 = time.perf_counter()
                try:
                    r = await client.post("/api/assets/upload", content=body, headers={
                        "Authorization": f"Bearer {key}", "Content-Type": "text/csv"})
                    status: int | str = r.status_code
                    retry = r.headers.get("retry-after")
                except httpx.HTTPError as exc:
                    status, retry = type(exc).__name__, None
                attempts.append((status, time.perf_counter() - t0, retry))
                if status in (429, 503) and retry is not None:
                    await asyncio.sleep(float(retry))
                    continue
                break
            return {"attempts": attempts, "done_s": time.perf_counter() - start, "ok": attempts[-1][0] == 200}

        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await asyncio.sleep(0.2)  # every client waiting at the gate: they start together
        gate.set()
        return list(await asyncio.gather(*tasks))


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def bench(n: int, mb: float, read_rate: float, service_args: list[str], tries: int, tmp: Path) -> dict[str, Any]:
    csv_path = tmp / "upload.csv"
    rows = make_csv(csv_path, int(mb * 1_000_000))
    body = csv_path.read_bytes()
    load_before = loadavg()
    with LocalService(workers=2, seed_assets=20_000, tenants=2, extra_args=service_args) as svc:
        pids = [int(p) for p in Path(f"/proc/{svc.pid}/task/{svc.pid}/children").read_text().split()] + [svc.pid]
        reader_key = svc.keys[1]["key"]
        stopfile = tmp / "stop"
        anchor, _, _, _ = read_while(svc.url, reader_key, read_rate, stopfile, lambda: time.sleep(10))
        idle = rss_of(pids)
        peak = [idle]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peak.append(rss_of(pids))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        busy, results, t0, t1 = read_while(svc.url, reader_key, read_rate, stopfile,
                                           lambda: asyncio.run(uploads(svc.url, svc.key, body, n, tries)))
        wall = t1 - t0
        stop.set()
        sampler.join()
    return {"rows": rows, "bytes": len(body), "uploads": results, "wall_s": wall, "idle_rss": idle,
            "peak_rss": max(peak), "reads_alone": anchor, "reads_during": busy, "n": n,
            "service_args": service_args, "read_rate": read_rate, "load": (load_before, loadavg())}


def report(r: dict[str, Any], argv: str) -> str:
    statuses: collections.Counter[str] = collections.Counter()
    retry_missing = 0
    singles = []
    for u in r["uploads"]:
        for status, secs, retry in u["attempts"]:
            statuses[str(status)] += 1
            singles.append(secs)
            if status in (429, 503) and retry is None:
                retry_missing += 1
    ok = [u["done_s"] for u in r["uploads"] if u["ok"]]
    first = collections.Counter(str(u["attempts"][0][0]) for u in r["uploads"])
    alone, during = r["reads_alone"]["latencies_ms"], r["reads_during"]["latencies_ms"]
    lines = ["# Concurrent uploads while another tenant reads", "",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average (1/5/15 min, "
             f"/proc/loadavg) before {r['load'][0]}, after {r['load'][1]}", f"- command: `{argv}`",
             f"- {r['n']} uploads of {r['bytes'] / 1e6:.2f} MB ({r['rows']:,} rows) at once; 2 workers, "
             f"`{' '.join(r['service_args'])}`; reader: another tenant, {r['read_rate']:g} GET/s", "",
             "| figure | value |", "|---|---|",
             f"| first answers | {', '.join(f'{k}: {v}' for k, v in sorted(first.items()))} |",
             f"| every answer (with retries) | {', '.join(f'{k}: {v}' for k, v in sorted(statuses.items()))} |",
             f"| 429/503 without Retry-After | {retry_missing} |",
             f"| uploads that succeeded | {len(ok)} of {r['n']} |",
             f"| single attempt p50 / p95 | {statistics.median(singles):.3f} s / {p95(singles):.3f} s |",
             f"| time to success p50 / p95 / max | {statistics.median(ok):.2f} s / {p95(ok):.2f} s / {max(ok):.2f} s |"
             if ok else "| time to success | none succeeded |",
             f"| all {r['n']} done in | {r['wall_s']:.1f} s |",
             f"| service memory (supervisor + workers) | idle {r['idle_rss'] / 2**20:.0f} MiB, peak "
             f"{r['peak_rss'] / 2**20:.0f} MiB (+{(r['peak_rss'] - r['idle_rss']) / 2**20:.0f} MiB) |",
             f"| other tenant's reads p50 / p95, alone (anchor) | {statistics.median(alone):.1f} ms / "
             f"{p95(alone):.1f} ms ({r['reads_alone']['errors']} errors) |",
             f"| other tenant's reads p50 / p95, during the uploads | {statistics.median(during):.1f} ms / "
             f"{p95(during):.1f} ms ({r['reads_during']['errors']} errors) |"]
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--reader":
        reader(sys.argv[2], os.environ["BENCH_READ_KEY"], float(sys.argv[3]), sys.argv[4])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--uploads", type=int, default=100)
    ap.add_argument("--mb", type=float, default=1.0, help="CSV size in MB (10^6 bytes)")
    ap.add_argument("--read-rate", type=float, default=50.0, help="the other tenant's GETs per second")
    ap.add_argument("--max-uploads", type=int, default=2, help="the service's --max-uploads (per worker)")
    ap.add_argument("--upload-queue", type=int, default=64, help="the service's --upload-queue (per worker)")
    ap.add_argument("--upload-queue-wait", type=float, default=10.0,
                    help="the service's --upload-queue-wait (0: refuse at once, the earlier behaviour)")
    ap.add_argument("--service-arg", action="append", default=[], help="one more service option (repeatable)")
    ap.add_argument("--tries", type=int, default=60, help="attempts per upload, honouring Retry-After")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-uploads-") as tmp:
        service_args = ["--max-uploads", str(args.max_uploads), "--upload-queue", str(args.upload_queue),
                        "--upload-queue-wait", f"{args.upload_queue_wait:g}", *args.service_arg]
        res = bench(args.uploads, args.mb, args.read_rate, service_args, args.tries, Path(tmp))
    text = report(res, "python benchmarks/bench_uploads.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
