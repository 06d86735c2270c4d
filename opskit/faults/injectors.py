"""The faults. Each one starts with inject(), ends with clear(), and is bounded on its own where it can be:
stress-ng gets a --timeout, so a hog outlives even a kill -9 of opskit by a bounded time only."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opskit import children
from opskit.errors import RuntimeFailure
from opskit.stack import parts
from opskit.stack.proxy import DelayProxy

MIB = 1024 * 1024
STRESS_SLACK_S = 30.0  # stress-ng ends by itself this long after the planned end, whatever happens to opskit
# the memory hold counts as in force once this share of the plan is resident; inject() waits for it at most
# RAMP_MAX_S, and never more than RAMP_SHARE of the window (the rest of the window is the fault itself)
HELD_SHARE = 0.95
RAMP_MAX_S = 10.0
RAMP_SHARE = 0.5
RAMP_POLL_S = 0.1


def ramp_bound(window_s: float) -> float:
    """How long inject() may wait for the memory to be resident in a window this long."""
    return min(RAMP_MAX_S, window_s * RAMP_SHARE)


def wait_resident(read: Callable[[], int | None], want: int, bound_s: float, *,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> tuple[int, float, bool]:
    """Poll read() (resident bytes; None once the holder is gone) until it reaches HELD_SHARE of want, the
    holder is gone or bound_s has passed. Returns (bytes last read, seconds waited, whether it got there)."""
    start = clock()
    got = 0
    while True:
        now = read()
        waited = clock() - start
        if now is None:
            return got, waited, False
        got = now
        if got >= want * HELD_SHARE:
            return got, waited, True
        if waited >= bound_s:
            return got, waited, False
        sleep(max(min(RAMP_POLL_S, bound_s - waited), 0.001))  # never a sleep too short to move the clock


class StopDatabase:
    kind = "database-connection-failure"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def inject(self) -> str:
        parts.stop(self.state_dir, "postgresql")
        return "PostgreSQL stopped (fast shutdown)"

    def clear(self) -> None:
        # stop first: an injection cut short (Ctrl-C mid-shutdown) leaves a server still on its way down,
        # which must not pass for the running one
        parts.stop(self.state_dir, "postgresql")
        parts.start(self.state_dir, "postgresql")


class RefuseDatabase:
    """PostgreSQL stays up, but the service's database refuses connections and its sessions are ended."""

    kind = "database-connection-failure"

    def __init__(self, admin_url: str, password: str, database: str) -> None:
        self.admin_url = admin_url  # the maintenance database: ALTER DATABASE cannot run inside the target
        self.password = password
        self.database = database

    def _sql(self, *statements: str) -> int:
        import psycopg
        from psycopg import sql

        ended = 0
        with psycopg.connect(self.admin_url, password=self.password, autocommit=True, connect_timeout=5) as conn:
            for text in statements:
                cur = conn.execute(sql.SQL(text).format(db=sql.Identifier(self.database)),
                                   {"name": self.database} if "%(name)s" in text else None)
                row = cur.fetchone() if cur.description else None
                if row is not None:
                    ended += int(row[0] or 0)
        return ended

    def inject(self) -> str:
        ended = self._sql("ALTER DATABASE {db} ALLOW_CONNECTIONS false",
                          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                          "WHERE datname = %(name)s AND pid <> pg_backend_pid()")
        return f"{ended} connection(s) to {self.database} terminated; new ones refused"

    def clear(self) -> None:
        self._sql("ALTER DATABASE {db} ALLOW_CONNECTIONS true")


class KillRedis:
    kind = "redis-cache-failure"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def inject(self) -> str:
        pid = parts.pid(self.state_dir, "redis")
        parts.kill(self.state_dir, "redis")
        return f"Redis killed (SIGKILL, pid {pid})"

    def clear(self) -> None:
        parts.kill(self.state_dir, "redis")  # finishes a kill cut short; nothing when it is gone already
        parts.start(self.state_dir, "redis")


class _Stress:
    """A stress-ng child, stopped by its pid."""

    def __init__(self, log: Path, bound_s: float) -> None:
        self.log = log
        self.bound_s = bound_s
        self.child: children.Child | None = None

    def _start(self, args: Sequence[str]) -> children.Child:
        binary = shutil.which("stress-ng")
        if binary is None:
            raise RuntimeFailure("stress-ng not found: run scripts/setup.sh as root "
                                 "(apt-get install --no-install-recommends stress-ng)")
        argv = [binary, *args, "--timeout", f"{max(1, round(self.bound_s))}s", "--quiet"]
        self.child = children.start(argv, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, log=self.log)
        return self.child

    def clear(self) -> None:
        child, self.child = self.child, None
        if child is not None:
            child.kill()  # SIGKILL to its whole group at once: hogs hold nothing worth a clean exit


class CpuHogs(_Stress):
    kind = "high-cpu-load"

    def __init__(self, service_pids: Sequence[int], *, load_pct: float, hogs: int | None, log: Path,
                 bound_s: float) -> None:
        super().__init__(log, bound_s)
        self.service_pids = list(service_pids)
        self.load_pct = load_pct
        self.hogs = hogs

    def cores(self) -> list[int]:
        import psutil

        found: set[int] = set()
        for pid in self.service_pids:
            try:
                found.update(psutil.Process(pid).cpu_affinity() or [])
            except (psutil.Error, AttributeError):
                continue
        return sorted(found) or list(range(os.cpu_count() or 1))

    def inject(self) -> str:
        cores = self.cores()
        hogs = self.hogs or len(cores)
        self._start(["--cpu", str(hogs), "--cpu-load", str(round(self.load_pct)),
                     "--taskset", ",".join(map(str, cores))])
        return f"stress-ng: {hogs} CPU hog(s) at {self.load_pct:g}% on core(s) {','.join(map(str, cores))}"


class HoldMemory(_Stress):
    kind = "memory-pressure"

    def __init__(self, *, until_pct: float, max_bytes: float, log: Path, bound_s: float,
                 ramp_bound_s: float = RAMP_MAX_S) -> None:
        super().__init__(log, bound_s)
        self.until_pct = until_pct
        self.max_bytes = max_bytes
        self.ramp_bound_s = ramp_bound_s
        self.held = 0  # bytes planned
        self.held_bytes: int | None = None  # bytes resident when inject() returned (the report's figure)

    def plan(self) -> int:
        """Bytes to hold: up to until_pct of the host's memory in use, never above max_bytes."""
        import psutil

        mem = psutil.virtual_memory()
        used = mem.total - mem.available
        return int(max(0.0, min(self.max_bytes, mem.total * self.until_pct / 100.0 - used)))

    def resident(self) -> int | None:
        """Resident bytes of the stress-ng child and its workers (by pid, not by name); None once it ended."""
        import psutil

        child = self.child
        if child is None or child.poll() is not None:
            return None
        try:
            root = psutil.Process(child.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:  # a worker that just ended holds nothing
                continue
        return total

    def inject(self) -> str:
        want = self.plan()
        to = f"host memory to {self.until_pct:g}% in use"
        if want < 16 * MIB:
            self.held, self.held_bytes = 0, 0
            return f"memory already at {self.until_pct:g}% in use: nothing held"
        self.held = want
        # one worker maps the bytes resident (--vm-populate), then sleeps holding them (--vm-hang 0); the
        # mapping takes seconds on a busy host, and the fault is in force only once it is done: wait for it
        child = self._start(["--vm", "1", "--vm-bytes", f"{want // MIB}M", "--vm-populate", "--vm-hang", "0"])
        got, waited, done = wait_resident(self.resident, want, self.ramp_bound_s)
        self.held_bytes = got
        if done:
            return f"stress-ng: holding {got / MIB:.0f} MiB resident after {waited:.1f} s ({to})"
        if child.poll() is not None:  # what it had is gone with it
            self.held_bytes = 0
            return (f"stress-ng ended (exit {child.returncode}) after {waited:.1f} s: nothing of {want / MIB:.0f} MiB "
                    f"held (see {self.log})")
        return f"stress-ng: holding {got / MIB:.0f} of {want / MIB:.0f} MiB after {waited:.1f} s, still mapping ({to})"


class SlowDatabase:
    kind = "network-latency-spike"

    def __init__(self, proxy: DelayProxy, delay_s: float) -> None:
        self.proxy = proxy
        self.delay_s = delay_s

    def inject(self) -> str:
        self.proxy.set_delay(self.delay_s)
        return (f"{self.delay_s * 1000:g} ms added to every PostgreSQL round trip (proxy 127.0.0.1:"
                f"{self.proxy.port} -> {self.proxy.upstream[1]})")

    def clear(self) -> None:
        self.proxy.set_delay(0.0)
