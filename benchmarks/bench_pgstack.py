"""The asset service on the production-shaped stack (PostgreSQL + Redis, `opskit stack up`) against issue
12's figures, each beside its anchors from the same run (the machine is shared: only same-run ratios mean
anything).

- upload: a ~100 MB CSV POSTed over HTTP into the PostgreSQL-backed service (with the Redis cache), end to
  end. Anchors, on the same file in the same round: the naive SQLite loop (bench_assetsvc.naive_load) and a
  naive PostgreSQL loader (csv.reader -> validate -> one executemany of INSERTs into a table with the
  service's indexes, one transaction). The service's table is emptied between rounds.
- reads: `GET /api/assets?limit=50` with --assets stored in PostgreSQL and the Redis cache on, with wrk,
  beside a bare Starlette hello-world on uvicorn (2 workers, uvloop + httptools, same wrk settings, same
  run); once with each worker's page cache (the default) and once without it (pages from Redis).
- delete: 1,000 ids per DELETE with --assets stored; anchor: the same statement straight on PostgreSQL.

    .venv/bin/python benchmarks/bench_pgstack.py [--part all|upload|reads|delete ...] [--mb 100] [--repeat 2]
        [--baseline-rev REV] [--assets 1000000] [--duration 10] [--rounds 3] [--out benchmarks/results/pgstack.md]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
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
from bench_assetsvc import MB, _cpu_s, baseline_tree, make_csv, naive_load, wrk  # noqa: E402

from opskit.localservice import LocalService  # noqa: E402

HELLO = '''from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("Hello, world!")

app = Starlette(routes=[Route("/", hello)])
'''


class Stack:
    """`opskit stack up` in a temporary state dir; down() stops exactly what it started."""

    def __init__(self) -> None:
        from opskit.stack import runtime

        self.dir = Path(tempfile.mkdtemp(prefix="bench-pgstack-"))
        os.chmod(self.dir, 0o711)  # the stack's own user must reach it
        try:
            info = runtime.up(self.dir, fresh=True)  # stops what it started when it fails
        except BaseException:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        assert info.endpoints is not None
        self.pg, self.redis = info.endpoints.postgresql, info.endpoints.redis
        password = (runtime.home(self.dir) / "password").read_text().strip()
        self.env = {"PGPASSWORD": password, "REDIS_PASSWORD": password}
        os.environ.update(self.env)  # psycopg here and the CLI subprocesses read them
        from opskit.assetsvc.postgres import PostgresStorage

        PostgresStorage(self.pg).close()  # the schema, as the service creates it

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.pg, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def down(self) -> None:
        from opskit.stack import runtime

        runtime.down(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)


def _service(stack: Stack, **kw: Any) -> LocalService:
    return LocalService(db=stack.pg, cache=stack.redis, extra_env=stack.env, **kw)


# upload ---------------------------------------------------------------------------------------------

def naive_pg(path: Path, stack: Stack) -> dict[str, float]:
    """What people write first for PostgreSQL: every row in a list, one executemany, one commit."""
    import psycopg

    from opskit.assetsvc.postgres import SCHEMA

    table = SCHEMA[0].replace("IF NOT EXISTS assets", "naive_assets")
    stack.sql("DROP TABLE IF EXISTS naive_assets")
    stack.sql(table)
    stack.sql("CREATE INDEX ON naive_assets (company_id, id)")
    stack.sql("CREATE INDEX ON naive_assets (company_id, created_at)")
    cpu0, start = time.process_time(), time.perf_counter()
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
                rows.append(("c1", row[0].strip(), lat, lon))
    with psycopg.connect(stack.pg) as conn, conn.cursor() as cur:
        cur.executemany("INSERT INTO naive_assets (company_id, address, latitude, longitude) "
                        "VALUES (%s, %s, %s, %s)", rows)
        conn.commit()
    out = {"seconds": time.perf_counter() - start, "cpu_s": time.process_time() - cpu0, "inserted": len(rows)}
    stack.sql("DROP TABLE naive_assets")
    return out


def service_upload(path: Path, stack: Stack, src: Path | None = None) -> dict[str, float]:
    """`src`: the service from that source tree (no --cache: older trees lack it), on a table it creates
    itself and that is dropped after, so its schema never reaches the other runs."""
    if src is None:
        stack.sql("TRUNCATE assets")  # every round uploads into the same empty table
        service = _service(stack, workers=1)
    else:
        stack.sql("DROP TABLE assets")
        env = {**stack.env, "PYTHONPATH": str(src)}
        service = LocalService(db=stack.pg, extra_env=env, workers=1)
    cwd = os.getcwd()
    try:
        if src is not None:
            os.chdir(src.parent)  # `python -m opskit` puts the working directory first on sys.path
        return _timed_upload(path, service)
    finally:
        os.chdir(cwd)
        if src is not None:
            stack.sql("DROP TABLE assets")
            from opskit.assetsvc.postgres import PostgresStorage

            PostgresStorage(stack.pg).close()


def _timed_upload(path: Path, service: LocalService) -> dict[str, float]:
    with service as svc:
        worker = httpx.get(f"{svc.url}/health").json()["worker_pid"]
        cpu0 = _cpu_s(worker)
        start = time.perf_counter()
        with open(path, "rb") as body:
            r = httpx.post(f"{svc.url}/api/assets/upload", content=body, timeout=600,
                           headers={"Authorization": f"Bearer {svc.key}", "Content-Type": "text/csv"})
        took = time.perf_counter() - start
        cpu = _cpu_s(worker) - cpu0
        r.raise_for_status()
        result = r.json()
    return {"seconds": took, "cpu_s": cpu, "inserted": result["inserted"], "rejected": result["rejected"]}


def sqlite_anchor(path: Path, tmp: Path) -> dict[str, float]:
    db = tmp / "naive.db"
    cpu0 = time.process_time()
    seconds, rows = naive_load(path, db)
    db.unlink()
    return {"seconds": seconds, "cpu_s": time.process_time() - cpu0, "inserted": rows}


def bench_upload(stack: Stack, tmp: Path, size_mb: float, repeat: int, baseline_rev: str | None) -> dict[str, Any]:
    path = tmp / "assets.csv"
    rows = make_csv(path, int(size_mb * 1_000_000))
    baseline = baseline_tree(baseline_rev, tmp) if baseline_rev else None
    rounds = []
    for i in range(repeat):
        one = {"loadavg": os.getloadavg()[0], "service": service_upload(path, stack),
               "sqlite_naive": sqlite_anchor(path, tmp), "pg_executemany": naive_pg(path, stack)}
        if baseline is not None:
            one["baseline"] = service_upload(path, stack, baseline)
        rounds.append(one)
        print(json.dumps({"round": i + 1, **one}), flush=True)
    stack.sql("TRUNCATE assets")
    size = path.stat().st_size
    path.unlink()
    return {"bytes": size, "rows": rows, "rounds": rounds, "baseline_rev": baseline_rev}


# reads and deletes ----------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hello_world(tmp: Path, duration: int) -> dict[str, float]:
    """The bare Starlette/uvicorn hello-world, 2 workers, uvloop + httptools, same wrk settings."""
    (tmp / "hello_app.py").write_text(HELLO)
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "hello_app:app", "--app-dir", str(tmp), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "2", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
         "--log-level", "warning"], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the hello-world did not start")
            time.sleep(0.2)
        time.sleep(1)  # both workers up
        return wrk(f"http://127.0.0.1:{port}/", duration)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def seed(stack: Stack, assets: int) -> dict[str, str]:
    stack.sql("TRUNCATE assets")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "opskit", "service", "seed", "--assets", str(assets),
                    "--companies", "10", "--db", stack.pg], check=True)
    stack.sql("VACUUM ANALYZE assets")
    print(f"seeded {assets:,} in {time.perf_counter() - start:.1f}s", flush=True)
    return {c: json.loads(subprocess.run(
        [sys.executable, "-m", "opskit", "service", "keys", "create", "--company", c, "--tier", "internal",
         "--db", stack.pg, "--output", "json"], check=True, capture_output=True).stdout)["key"]
        for c in ("company-1", "company-2")}


def bench_reads(stack: Stack, key: str, duration: int, tmp: Path, rounds: int) -> dict[str, Any]:
    """`rounds` rounds of hello-world, then the service with its page cache, then without (pages from
    Redis), back to back: each round's ratios compare runs made under the same machine load."""
    out: list[dict[str, dict[str, float]]] = []
    for i in range(rounds):
        one = {"hello_world": hello_world(tmp, duration)}
        with _service(stack, workers=2) as svc:
            one["list_cached"] = wrk(f"{svc.url}/api/assets?limit=50", duration, key)
        with _service(stack, workers=2, extra_args=["--no-page-cache"]) as svc:
            one["list_redis"] = wrk(f"{svc.url}/api/assets?limit=50", duration, key)
        one["loadavg"] = {"rps": os.getloadavg()[0]}
        out.append(one)
        print(json.dumps({"reads_round": i + 1, **one}), flush=True)
    return {"rounds": out}


def bench_delete(stack: Stack, key: str, company: str, batches: int = 40) -> dict[str, float]:
    ids = [r[0] for r in stack.sql("SELECT id FROM assets WHERE company_id = %s ORDER BY random() LIMIT %s",
                                   (company, batches * 2000))]
    random.Random(3).shuffle(ids)
    http_ids, direct_ids = ids[: batches * 1000], ids[batches * 1000:]
    times, deleted = [], 0
    with _service(stack, workers=2) as svc, httpx.Client(
        base_url=svc.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    ) as c:
        for i in range(batches):
            chunk = http_ids[i * 1000:(i + 1) * 1000]
            start = time.perf_counter()
            r = c.request("DELETE", "/api/assets/delete", json={"ids": chunk})
            times.append((time.perf_counter() - start) * 1000)
            deleted += r.json()["deleted"]
    import psycopg

    direct = []
    with psycopg.connect(stack.pg, autocommit=True) as conn:
        for i in range(batches):
            chunk = direct_ids[i * 1000:(i + 1) * 1000]
            start = time.perf_counter()
            conn.execute("DELETE FROM assets WHERE company_id = %s AND id = ANY(%s::bigint[])", (company, chunk))
            direct.append((time.perf_counter() - start) * 1000)
    stored = stack.sql("SELECT count(*) FROM assets")[0][0]
    q = statistics.quantiles
    return {"deleted": deleted, "stored_after": stored, "p50_ms": q(times, n=100)[49], "p95_ms": q(times, n=100)[94],
            "max_ms": max(times), "direct_p50_ms": q(direct, n=100)[49], "direct_p95_ms": q(direct, n=100)[94]}


# report ---------------------------------------------------------------------------------------------

def report(results: dict[str, Any], argv: str) -> str:
    lines = ["# The asset service on PostgreSQL + Redis (issue 12)", "",
             f"- {os.cpu_count()} cores; load average before: {results['loadavg']}; "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", f"- command: `{argv}`", ""]
    up = results.get("upload")
    if up:
        rounds = up["rounds"]
        lines += ["## Upload: CSV over HTTP into PostgreSQL (target < 5 s for 100 MB)", "",
                  f"{up['bytes'] / MB:.1f} MiB, {up['rows']:,} rows, {len(rounds)} round(s), each line of a "
                  "round back to back.", "",
                  "| | median s | every run, s | CPU s of the loader (median) | rows/s |", "|---|---:|---|---:|---:|"]
        runs = [("service over HTTP, PostgreSQL COPY", "service")]
        if up.get("baseline_rev"):
            runs.append((f"the service as committed at `{up['baseline_rev']}` (before)", "baseline"))
        runs += [("anchor: naive SQLite loop (csv -> executemany)", "sqlite_naive"),
                 ("anchor: naive executemany into PostgreSQL", "pg_executemany")]
        for label, key in runs:
            secs = [r[key]["seconds"] for r in rounds]
            med = statistics.median(secs)
            lines.append(f"| {label} | {med:.2f} | {', '.join(f'{x:.2f}' for x in secs)} | "
                         f"{statistics.median(r[key]['cpu_s'] for r in rounds):.2f} | {up['rows'] / med:,.0f} |")
        others = [("sqlite_naive", "naive SQLite"), ("pg_executemany", "naive PostgreSQL executemany")]
        if up.get("baseline_rev"):
            others.append(("baseline", "before"))
        for key, name in others:
            ratios = [r[key]["seconds"] / r["service"]["seconds"] for r in rounds]
            lines.append(f"\n{name} time / service time per round: {', '.join(f'{x:.2f}' for x in ratios)}")
        lines += ["", "Load average (1 min) at each round's start: "
                  + ", ".join(f"{r['loadavg']:.1f}" for r in rounds), ""]
    rd = results.get("reads")
    if rd:
        lines += ["## GET /api/assets?limit=50, PostgreSQL + Redis (target >= 0.6x the bare hello-world)", "",
                  "wrk -t1 -c64 on loopback, 2 workers each (uvloop + httptools); wrk shares the 2 cores. Each "
                  "round runs the three lines back to back; the ratio is against that round's hello-world.", "",
                  "| round | hello-world req/s | list (page cache + Redis) req/s, p99 ms | ratio | "
                  "list (Redis only) req/s, p99 ms | ratio | load avg after |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        ratios = []
        for i, r in enumerate(rd["rounds"], 1):
            hello, cached, redis = r["hello_world"], r["list_cached"], r["list_redis"]
            ratios.append(cached["rps"] / hello["rps"])
            lines.append(f"| {i} | {hello['rps']:,.0f} | {cached['rps']:,.0f}, {cached.get('p99_ms', 0):.1f} | "
                         f"{cached['rps'] / hello['rps']:.2f} | {redis['rps']:,.0f}, {redis.get('p99_ms', 0):.1f} | "
                         f"{redis['rps'] / hello['rps']:.2f} | {r['loadavg']['rps']:.1f} |")
        errors = sum(r[k]["non_2xx"] + r[k]["socket_errors"] for r in rd["rounds"]
                     for k in ("list_cached", "list_redis"))
        lines += ["", f"Median ratio (page cache + Redis / hello-world): **{statistics.median(ratios):.2f}x**; "
                  f"non-2xx or socket errors in the service runs: {errors:.0f}.", ""]
    de = results.get("delete")
    if de:
        lines += ["## DELETE 1,000 ids (target p95 < 100 ms)", "", "| | p50 ms | p95 ms | max ms |",
                  "|---|---:|---:|---:|",
                  f"| over HTTP | {de['p50_ms']:.1f} | {de['p95_ms']:.1f} | {de['max_ms']:.1f} |",
                  f"| anchor: the same SQL straight on PostgreSQL | {de['direct_p50_ms']:.1f} | "
                  f"{de['direct_p95_ms']:.1f} | |", "",
                  f"{de['deleted']:,} deleted over HTTP; {de['stored_after']:,} stored after.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--part", choices=["all", "upload", "reads", "delete"], action="append",
                    help="repeatable [default: all]")
    ap.add_argument("--mb", type=float, default=100.0, help="upload file size in MB (10^6 bytes)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--baseline-rev", default=None,
                    help="also upload to the service as committed at this git revision (before/after)")
    ap.add_argument("--assets", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--rounds", type=int, default=3, help="read rounds (hello-world + service each)")
    ap.add_argument("--out", default=None, help="write the Markdown report here")
    args = ap.parse_args()
    parts = set(args.part or ["all"])
    if "all" in parts:
        parts = {"upload", "reads", "delete"}
    tmp = Path(tempfile.mkdtemp(prefix="bench-pgstack-work-"))
    results: dict[str, Any] = {"loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}
    stack = Stack()
    try:
        if "upload" in parts:
            results["upload"] = bench_upload(stack, tmp, args.mb, args.repeat, args.baseline_rev)
        if parts & {"reads", "delete"}:
            keys = seed(stack, args.assets)
            if "reads" in parts:
                results["reads"] = bench_reads(stack, keys["company-1"], args.duration, tmp, args.rounds)
                print(json.dumps(results["reads"]), flush=True)
            if "delete" in parts:
                results["delete"] = bench_delete(stack, keys["company-2"], "company-2")
                print(json.dumps(results["delete"]), flush=True)
    finally:
        stack.down()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(results, "python benchmarks/bench_pgstack.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
