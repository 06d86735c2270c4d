"""Writes (issue 16 item 2): POST /api/assets with one asset per request, wrk -t1 -c32, 2 workers, on the
PostgreSQL backend (the stack's, started by `opskit stack up`'s code), with the SQLite service of the same
run as the anchor (its 2,876 req/s class must hold). Each line: req/s, p95 (wrk's own percentile, from a
Lua done() hook), errors (non-201 answers + socket errors), and the durability check: every id answered
201 is looked up in the store after the service was killed with SIGKILL right after the run, and
after a second, short run whose service is killed halfway through (`answered / found`).

    .venv/bin/python benchmarks/bench_writes.py [--duration 10] [--rounds 3] [--cache] [--baseline-rev REV]
        [--out benchmarks/results/writes.md]
"""

from __future__ import annotations

import argparse
import json
import os
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_assetsvc import baseline_tree  # noqa: E402
from bench_pgstack import Stack  # noqa: E402

from opskit.localservice import LocalService  # noqa: E402

# one asset per request; every 201's id is kept (one table per wrk thread, copied out in done())
POST_LUA = r'''
wrk.method = "POST"
wrk.body = '{"address": "1 Bench St, Springfield", "latitude": 39.78, "longitude": -89.65}'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
ids = {}
statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 then
    local id = string.match(body, '"id":(%d+)')
    if id then ids[#ids + 1] = id end
  end
end
function done(summary, latency, requests)
  local f = io.open(os.getenv("WRK_OUT"), "w")
  f:write(string.format("p95_us %d\n", latency:percentile(95)))
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("statuses")) do f:write(string.format("status %s %d\n", status, n)) end
    for _, id in ipairs(t:get("ids")) do f:write("id ", id, "\n") end
  end
  f:close()
end
'''


def wrk_post(url: str, key: str, duration: int, tmp: Path, kill: LocalService | None = None) -> dict[str, Any]:
    """wrk's figures and the ids it was answered 201; with `kill`, that service gets SIGKILL halfway."""
    script, out = tmp / "post.lua", tmp / "wrk.out"
    script.write_text(POST_LUA)
    out.unlink(missing_ok=True)
    argv = ["wrk", "-t1", "-c32", f"-d{duration}s", "--latency", "-H", f"Authorization: Bearer {key}",
            "-s", str(script), f"{url}/api/assets"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "WRK_OUT": str(out)})
    if kill is not None:
        time.sleep(duration / 2)
        kill.kill()
    text, _ = proc.communicate(timeout=duration + 60)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    ids: list[int] = []
    statuses: dict[str, int] = {}
    p95_ms = 0.0
    for line in out.read_text().splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "id":
            ids.append(int(rest))
        elif kind == "status":
            code, n = rest.split()
            statuses[code] = statuses.get(code, 0) + int(n)
        elif kind == "p95_us":
            p95_ms = int(rest) / 1000
    bad = sum(n for code, n in statuses.items() if code != "201")
    return {"rps": rps, "p95_ms": p95_ms, "errors": bad + (sum(map(int, sock.groups())) if sock else 0),
            "statuses": statuses, "ids": ids}


def stored(db: str, ids: list[int]) -> int:
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as conn:
            return int(conn.execute("SELECT count(*) FROM assets WHERE id = ANY(%s::bigint[])", (ids,)).fetchone()[0])
    conn = sqlite3.connect(db)
    try:
        conn.execute("CREATE TEMP TABLE answered (id INTEGER PRIMARY KEY)")
        conn.executemany("INSERT INTO answered VALUES (?)", [(i,) for i in ids])
        return int(conn.execute("SELECT count(*) FROM assets JOIN answered USING (id)").fetchone()[0])
    finally:
        conn.close()


def transactions(db: str, ids: list[int]) -> int:
    """How many transactions stored these ids (PostgreSQL: created_at is now(), the transaction's start,
    the same for every row of one commit); SQLite: one per id (each write commits alone)."""
    if not db.startswith("postgresql://"):
        return len(ids)
    import psycopg

    with psycopg.connect(db, autocommit=True) as conn:
        return int(conn.execute("SELECT count(DISTINCT created_at) FROM assets WHERE id = ANY(%s::bigint[])",
                                (ids,)).fetchone()[0])


def measure(svc: LocalService, duration: int, tmp: Path) -> dict[str, Any]:
    """One wrk run, then SIGKILL the service at once and count the answered ids the store holds; then a
    shorter run with SIGKILL halfway through it (requests in flight, batches committing): every id
    answered before the kill must be stored."""
    out = wrk_post(svc.url, svc.key, duration, tmp)
    svc.kill()
    ids = out.pop("ids")
    out["per_commit"] = len(ids) / max(1, transactions(svc.db, ids))  # the grouping achieved
    out["answered"], out["found"] = len(ids), stored(svc.db, ids)
    svc.restart()
    crash = wrk_post(svc.url, svc.key, 4, tmp, kill=svc)
    out["crash_answered"], out["crash_found"] = len(crash["ids"]), stored(svc.db, crash["ids"])
    svc.restart()
    return out


def run(stack: Stack, duration: int, rounds: int, cache: bool, tmp: Path,
        baseline_rev: str | None) -> list[dict[str, Any]]:
    services = {"sqlite": LocalService(workers=2),
                "postgresql": LocalService(workers=2, db=stack.pg, extra_env=stack.env)}
    if baseline_rev:  # the service as committed at REV, on the same PostgreSQL (same schema)
        env = {**stack.env, "PYTHONPATH": str(baseline_tree(baseline_rev, tmp))}
        services[f"postgresql at {baseline_rev}"] = LocalService(workers=2, db=stack.pg, extra_env=env)
    if cache:
        services["postgresql+redis"] = LocalService(workers=2, db=stack.pg, extra_env=stack.env, cache=stack.redis)
    out = []
    try:
        for svc in services.values():
            svc.start()
        for i in range(rounds):
            one: dict[str, Any] = {"loadavg": Path("/proc/loadavg").read_text().split()[0]}
            order = list(services.items())
            for name, svc in order if i % 2 == 0 else order[::-1]:  # none always goes first
                one[name] = measure(svc, duration, tmp)
            out.append(one)
            print(json.dumps({"round": i + 1, **one}), flush=True)
    finally:
        for svc in services.values():
            svc.stop()
    return out


def report(rounds: list[dict[str, Any]], argv: str, before: str, after: str) -> str:
    names = [k for k in rounds[0] if k != "loadavg"]
    lines = ["# Writes: POST /api/assets, one asset per request (issue 16 item 2)", "",
             f"- {os.cpu_count()} cores, shared with other work; /proc/loadavg before: {before}; after: {after}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", f"- command: `{argv}`",
             "- wrk -t1 -c32 on loopback, 2 workers per service; durable = ids answered 201 / found in the store "
             "after SIGKILL of the service right after the run; durable (kill mid-load) = the same for a 4 s run "
             "whose service got SIGKILL after 2 s (its errors are the kill's, not counted)", "",
             "| round (load) | service | req/s | p95 ms | errors | durable | durable, kill mid-load | x sqlite | "
             "201s per commit |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for i, r in enumerate(rounds, 1):
        for n in names:
            m = r[n]
            lines.append(f"| {i} ({r['loadavg']}) | {n} | {m['rps']:,.0f} | {m['p95_ms']:.1f} | {m['errors']} | "
                         f"{m['found']:,}/{m['answered']:,} | {m['crash_found']:,}/{m['crash_answered']:,} | "
                         f"{m['rps'] / r['sqlite']['rps']:.2f} | {m['per_commit']:.1f} |")
    for n in names:
        runs = [r[n] for r in rounds]
        lines.append(f"\n{n}: median {statistics.median(m['rps'] for m in runs):,.0f} req/s, worst p95 "
                     f"{max(m['p95_ms'] for m in runs):.1f} ms, errors {sum(m['errors'] for m in runs)}; missing "
                     f"after SIGKILL {sum(m['answered'] - m['found'] for m in runs)} of "
                     f"{sum(m['answered'] for m in runs):,} answered, after SIGKILL mid-load "
                     f"{sum(m['crash_answered'] - m['crash_found'] for m in runs)} of "
                     f"{sum(m['crash_answered'] for m in runs):,}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cache", action="store_true", help="also the PostgreSQL service with the Redis cache")
    ap.add_argument("--baseline-rev", default=None, help="also the PostgreSQL service as committed at this revision")
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    args = ap.parse_args()
    out = Path(args.out).resolve() if args.out else None
    before = Path("/proc/loadavg").read_text().strip()
    tmp = Path(tempfile.mkdtemp(prefix="bench-writes-"))
    # `python -m opskit` puts the working directory first on sys.path: an empty one, so a baseline's
    # PYTHONPATH wins for it and the installed (this) tree for the others
    cwd = os.getcwd()
    os.chdir(tmp)
    stack = Stack()
    try:
        rounds = run(stack, args.duration, args.rounds, args.cache, tmp, args.baseline_rev)
    finally:
        stack.down()
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(rounds, "python benchmarks/bench_writes.py " + " ".join(sys.argv[1:]), before,
                  Path("/proc/loadavg").read_text().strip())
    print(text)
    if out is not None:
        out.write_text(text + "\n")


if __name__ == "__main__":
    main()
