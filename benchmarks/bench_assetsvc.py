"""The reference asset service against its seed-000 targets, each figure beside an anchor from the same run.

- upload: a ~100 MB CSV (~1.4M rows, 0.1% bad rows) POSTed over HTTP, end to end; peak RSS growth of the
  worker (VmHWM after minus VmRSS before) and its CPU seconds. Anchor: the naive loader (csv.reader ->
  validate -> executemany into an indexed SQLite table, whole file in a list) on the same file. --repeat
  rounds, each running anchor and service back to back; --baseline-rev REV adds the service as committed
  at REV (extracted with `git archive`) to every round, for before/after figures from the same run.
- reads: `GET /api/assets?limit=50` with 1M assets stored, measured with wrk on loopback, beside the same
  server's bare /health rate; once with the page cache (the default) and once without it, random cursors.
- delete: 1,000 ids per DELETE with 1M stored; anchor: the same DELETE statement straight on SQLite.

    .venv/bin/python benchmarks/bench_assetsvc.py [--part all|upload|reads|delete] [--mb 100]
        [--repeat 3] [--csv FILE] [--baseline-rev REV] [--assets 1000000] [--duration 10]
        [--out benchmarks/results/assetsvc.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from opskit.localservice import LocalService

MB = 1024 * 1024


# upload ---------------------------------------------------------------------------------------------

def make_csv(path: Path, size_bytes: int, bad_every: int = 1000) -> int:
    from opskit.assetsvc.seed import assets

    rows = 0
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["address", "latitude", "longitude"])
        for _, address, lat, lon, _ in assets(10**9, 1):
            rows += 1
            w.writerow([address, "north" if rows % bad_every == 0 else lat, lon])
            if rows % 10_000 == 0 and f.tell() >= size_bytes - 1_000_000:
                break
        while f.tell() < size_bytes - 200:
            rows += 1
            w.writerow([f"{rows} Filler Rd, Denver, CO 80202", 39.7, -104.9])
    return rows


def naive_load(path: Path, db: Path) -> tuple[float, int]:
    """What people write first: read all rows, validate, executemany, commit."""
    start = time.perf_counter()
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE assets (id INTEGER PRIMARY KEY, company_id TEXT, address TEXT, latitude REAL, "
                 "longitude REAL, created_at TEXT, updated_at TEXT)")
    conn.execute("CREATE INDEX assets_company ON assets (company_id, id)")
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            try:
                lat, lon = float(row[1]), float(row[2])
            except (ValueError, IndexError):
                continue
            if row[0].strip() and -90 <= lat <= 90 and -180 <= lon <= 180:
                now = time.strftime("%Y-%m-%dT%H:%M:%SZ")
                rows.append(("c1", row[0].strip(), lat, lon, now, now))
    conn.executemany("INSERT INTO assets (company_id, address, latitude, longitude, created_at, updated_at) "
                     "VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return time.perf_counter() - start, len(rows)


def _status(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1)) * 1024  # type: ignore[union-attr]


def _reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def baseline_tree(rev: str, tmp: Path) -> Path:
    """The opskit package as committed at `rev` (git archive: read-only), to run the old service beside the new."""
    import io
    import tarfile

    data = subprocess.run(["git", "archive", "--format=tar", rev, "opskit"], capture_output=True, check=True,
                          cwd=Path(__file__).resolve().parent.parent).stdout
    root = tmp / f"baseline-{rev}"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(root, filter="data")
    return root


def service_upload(path: Path, tmp: Path, src: Path | None = None) -> dict[str, float]:
    """POST the file to a fresh 1-worker service; `src`: run the service from that source tree instead."""
    env, cwd = {}, os.getcwd()
    if src is not None:
        # `python -m opskit` puts the working directory first on sys.path: start it from an empty one
        env["PYTHONPATH"] = str(src)
        os.chdir(tmp)
    db = tmp / f"upload-{time.monotonic_ns()}.db"
    try:
        with LocalService(workers=1, db=db, extra_env=env) as svc:
            os.chdir(cwd)
            worker = httpx.get(f"{svc.url}/health").json()["worker_pid"]
            _reset_peak(worker)
            before, cpu0 = _status(worker, "VmRSS"), _cpu_s(worker)
            start = time.perf_counter()
            with open(path, "rb") as body:
                r = httpx.post(f"{svc.url}/api/assets/upload", content=body, timeout=300,
                               headers={"Authorization": f"Bearer {svc.key}", "Content-Type": "text/csv"})
            took = time.perf_counter() - start
            r.raise_for_status()
            result = r.json()
            return {"seconds": took, "cpu_s": _cpu_s(worker) - cpu0,
                    "peak_growth_bytes": _status(worker, "VmHWM") - before,
                    "inserted": result["inserted"], "rejected": result["rejected"]}
    finally:
        os.chdir(cwd)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def anchor_upload(path: Path, tmp: Path) -> dict[str, float]:
    db = tmp / "naive.db"
    _reset_peak(os.getpid())
    rss0, cpu0 = _status(os.getpid(), "VmRSS"), time.process_time()
    seconds, rows = naive_load(path, db)
    out = {"seconds": seconds, "cpu_s": time.process_time() - cpu0,
           "peak_growth_bytes": _status(os.getpid(), "VmHWM") - rss0, "inserted": rows}
    db.unlink()
    return out


def bench_upload(tmp: Path, size_mb: float, repeat: int, csv_path: Path | None,
                 baseline_rev: str | None) -> dict[str, object]:
    """`repeat` rounds; each round runs the anchor, the service and (optionally) the baseline service back to
    back, so every ratio compares runs made under the same machine load."""
    if csv_path is None:
        path = tmp / "assets.csv"
        rows = make_csv(path, int(size_mb * 1_000_000))
    else:
        path = csv_path
        with open(path, "rb") as f:
            rows = sum(1 for _ in f) - 1  # the generated file has no quoted line breaks
    baseline = baseline_tree(baseline_rev, tmp) if baseline_rev else None
    rounds = []
    for i in range(repeat):
        one = {"loadavg": os.getloadavg()[0], "anchor": anchor_upload(path, tmp), "service": service_upload(path, tmp)}
        if baseline is not None:
            one["baseline"] = service_upload(path, tmp, baseline)
        rounds.append(one)
        print(json.dumps({"round": i + 1, **one}), flush=True)
    return {"bytes": path.stat().st_size, "rows": rows, "rounds": rounds, "baseline_rev": baseline_rev}


# reads ----------------------------------------------------------------------------------------------

def wrk(url: str, duration: int, key: str | None = None, script: Path | None = None,
        connections: int = 64) -> dict[str, float]:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if key:
        argv += ["-H", f"Authorization: Bearer {key}"]
    if script:
        argv += ["-s", str(script)]
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct, value, unit in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[f"p{pct}_ms"] = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, **lat, "non_2xx": float(bad.group(1)) if bad else 0.0,
            "socket_errors": float(sum(map(int, errors.groups()))) if errors else 0.0}


def cursor_script(tmp: Path, url: str, key: str, pages: int = 2000) -> Path:
    """A wrk script asking for random pages (each with its cursor), so no two requests hit one cache entry."""
    cursors: list[str] = []
    cursor: str | None = None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
        while len(cursors) < pages:
            page = c.get("/api/assets", params={"limit": 50, **({"cursor": cursor} if cursor else {})}).json()
            cursor = page["next_cursor"]
            if cursor is None:
                break
            cursors.append(cursor)
    lines = ",".join(f'"{c}"' for c in cursors)
    script = tmp / "cursors.lua"
    script.write_text(f"local c = {{{lines}}}\nmath.randomseed(7)\n"
                      "request = function()\n  return wrk.format(nil, '/api/assets?limit=50&cursor=' .. "
                      "c[math.random(#c)])\nend\n")
    return script


def bench_reads(db: Path, key: str, duration: int, tmp: Path) -> dict[str, dict[str, float]]:
    out = {}
    with LocalService(workers=2, db=db, tenants=1) as svc:
        out["health"] = wrk(f"{svc.url}/health", duration)
        out["list_cached"] = wrk(f"{svc.url}/api/assets?limit=50", duration, key)
    with LocalService(workers=2, db=db, tenants=1, extra_args=["--no-page-cache"]) as svc:
        script = cursor_script(tmp, svc.url, key)
        out["health_nocache"] = wrk(f"{svc.url}/health", duration)
        out["list_uncached_random_cursor"] = wrk(f"{svc.url}/api/assets?limit=50", duration, key, script)
    return out


# delete ---------------------------------------------------------------------------------------------

def bench_delete(db: Path, key: str, company: str, batches: int = 40) -> dict[str, float]:
    conn = sqlite3.connect(db)
    ids = [r[0] for r in conn.execute("SELECT id FROM assets WHERE company_id = ? ORDER BY random() LIMIT ?",
                                      (company, batches * 1000 * 2))]
    conn.close()
    random.Random(3).shuffle(ids)
    http_ids, direct_ids = ids[: batches * 1000], ids[batches * 1000:]
    times, deleted = [], 0
    with LocalService(workers=2, db=db, tenants=1) as svc, httpx.Client(
        base_url=svc.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as c:
        for i in range(batches):
            chunk = http_ids[i * 1000:(i + 1) * 1000]
            start = time.perf_counter()
            r = c.request("DELETE", "/api/assets/delete", json={"ids": chunk})
            times.append((time.perf_counter() - start) * 1000)
            deleted += r.json()["deleted"]
        total = c.get("/metrics").text
    stored = float(re.search(r"^assetsvc_assets_stored ([\d.e+]+)$", total, re.M).group(1))  # type: ignore[union-attr]
    direct = []
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous=NORMAL")
    for i in range(batches):
        chunk = direct_ids[i * 1000:(i + 1) * 1000]
        start = time.perf_counter()
        conn.execute("DELETE FROM assets WHERE company_id = ? AND id IN (SELECT value FROM json_each(?))",
                     (company, json.dumps(chunk)))
        direct.append((time.perf_counter() - start) * 1000)
    conn.close()
    q = statistics.quantiles
    assert len(direct) == batches and len(direct_ids) == batches * 1000, "not enough assets for the anchor"
    return {"deleted": deleted, "stored_after": stored, "p50_ms": q(times, n=100)[49], "p95_ms": q(times, n=100)[94],
            "max_ms": max(times), "direct_p50_ms": q(direct, n=100)[49], "direct_p95_ms": q(direct, n=100)[94]}


# report ---------------------------------------------------------------------------------------------

def upload_report(up: dict[str, Any]) -> list[str]:
    rounds = up["rounds"]
    runs = [("service over HTTP (streamed)", "service")]
    if up.get("baseline_rev"):
        runs.append((f"service as committed at `{up['baseline_rev']}` (before)", "baseline"))
    runs.append(("naive anchor (csv.reader -> validate -> executemany, indexed)", "anchor"))
    lines = ["## Upload (target: 100 MB CSV < 5 s, peak memory growth < 100 MB)", "",
             f"File: {up['bytes'] / MB:.1f} MiB, {up['rows']:,} rows (0.1% bad). {len(rounds)} round(s); each "
             "round runs every line below back to back, so the ratios compare runs made under the same load.", "",
             "| | median s | best s | every run, s | CPU s (median) | rows/s (median) | peak memory growth |",
             "|---|---:|---:|---|---:|---:|---:|"]
    for label, key in runs:
        secs = [r[key]["seconds"] for r in rounds]
        med = statistics.median(secs)
        lines.append(f"| {label} | {med:.2f} | {min(secs):.2f} | {', '.join(f'{x:.2f}' for x in secs)} | "
                     f"{statistics.median(r[key]['cpu_s'] for r in rounds):.2f} | {up['rows'] / med:,.0f} | "
                     f"{max(r[key]['peak_growth_bytes'] for r in rounds) / MB:.0f} MB |")
    ratios = [r["anchor"]["seconds"] / r["service"]["seconds"] for r in rounds]
    last = rounds[-1]["service"]
    lines += ["", f"Inserted {last['inserted']:,}, rejected {last['rejected']:,} (the anchor kept "
              f"{rounds[-1]['anchor']['inserted']:,}). Anchor time / service time, per round: "
              f"{', '.join(f'{x:.2f}' for x in ratios)}; median **{statistics.median(ratios):.2f}x** (above 1: the "
              "service, end to end over HTTP, is faster than the anchor)."]
    if up.get("baseline_rev"):
        before = [r["baseline"]["seconds"] / r["service"]["seconds"] for r in rounds]
        lines.append(f"Before time / after time, per round: {', '.join(f'{x:.2f}' for x in before)}; median "
                     f"**{statistics.median(before):.2f}x**.")
    lines += ["Load average (1 min) at the start of each round: "
              + ", ".join(f"{r['loadavg']:.1f}" for r in rounds) + ".", ""]
    return lines


def report(results: dict[str, object], argv: str) -> str:
    lines = ["# Reference asset service benchmarks", "",
             f"- machine: {platform.node()}, {os.cpu_count()} cores, {platform.python_implementation()} "
             f"{platform.python_version()}, load average before: {results['loadavg']}",
             f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", f"- command: `{argv}`", ""]
    up = results.get("upload")
    if isinstance(up, dict):
        lines += upload_report(up)
    rd = results.get("reads")
    if isinstance(rd, dict):
        lines += ["## Reads (target: GET /api/assets?limit=50 >= 10,000 req/s with 1M stored, p99 < 200 ms)", "",
                  "wrk -t1 -c64 on loopback, 2 workers; wrk shares the 2 cores with the service.", "",
                  "| run | req/s | p50 ms | p99 ms | non-2xx | vs /health |", "|---|---:|---:|---:|---:|---:|"]
        for name, base in (("health", "health"), ("list_cached", "health"), ("health_nocache", "health_nocache"),
                           ("list_uncached_random_cursor", "health_nocache")):
            r = rd[name]
            lines.append(f"| {name} | {r['rps']:,.0f} | {r.get('p50_ms', 0):.2f} | {r.get('p99_ms', 0):.2f} | "
                         f"{r['non_2xx']:.0f} | {r['rps'] / rd[base]['rps']:.2f} |")
        lines.append("")
    de = results.get("delete")
    if isinstance(de, dict):
        lines += ["## Delete (target: 1,000 ids with 1M stored, p95 < 100 ms)", "",
                  "| | p50 ms | p95 ms | max ms |", "|---|---:|---:|---:|",
                  f"| DELETE /api/assets/delete over HTTP | {de['p50_ms']:.1f} | {de['p95_ms']:.1f} | "
                  f"{de['max_ms']:.1f} |",
                  f"| anchor: the same SQL straight on SQLite | {de['direct_p50_ms']:.1f} | {de['direct_p95_ms']:.1f} "
                  f"| |", "",
                  f"{de['deleted']:,.0f} assets deleted in 1,000-id requests; {de['stored_after']:,.0f} stored after.",
                  ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["all", "upload", "reads", "delete"], default="all")
    ap.add_argument("--mb", type=float, default=100.0, help="upload file size in MB (10^6 bytes)")
    ap.add_argument("--assets", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--repeat", type=int, default=3, help="upload rounds (anchor + service each)")
    ap.add_argument("--csv", type=Path, default=None, help="upload this CSV instead of generating one")
    ap.add_argument("--baseline-rev", default=None,
                    help="also upload to the service as committed at this git revision (before/after)")
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-assetsvc-"))
    results: dict[str, object] = {"loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    try:
        if args.part in ("all", "upload"):
            results["upload"] = bench_upload(tmp, args.mb, args.repeat, args.csv, args.baseline_rev)
        if args.part in ("all", "reads", "delete"):
            db = tmp / "reads.db"
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "opskit", "service", "seed", "--assets", str(args.assets),
                            "--companies", "10", "--db", str(db)], check=True)
            print(f"seeded in {time.perf_counter() - start:.1f}s", flush=True)
            keys = {c: json.loads(subprocess.run(
                [sys.executable, "-m", "opskit", "service", "keys", "create", "--company", c, "--tier",
                 "internal", "--db", str(db), "--output", "json"], check=True, capture_output=True).stdout)["key"]
                for c in ("company-1", "company-2")}
            if args.part in ("all", "reads"):
                results["reads"] = bench_reads(db, keys["company-1"], args.duration, tmp)
                print(json.dumps(results["reads"]), flush=True)
            if args.part in ("all", "delete"):
                results["delete"] = bench_delete(db, keys["company-2"], "company-2")
                print(json.dumps(results["delete"]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(results, "python benchmarks/bench_assetsvc.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
