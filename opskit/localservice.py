"""Start the reference asset service on loopback for load tests, monitors, playbooks and the demo.

The toolkit side of the service: it never imports opskit.assetsvc (the toolkit talks to the service only
over HTTP, as to the real one); it runs the CLI in subprocesses instead::

    from opskit.localservice import LocalService

    with LocalService(workers=2, seed_assets=10_000, tenants=2) as svc:
        httpx.get(f"{svc.url}/api/assets", headers={"Authorization": f"Bearer {svc.key}"})
        os.kill(svc.pid, signal.SIGTTIN)      # one more worker (see /health "workers")

`keys` holds one `{"key", "company_id", "tier"}` per tenant (companies company-1 .. company-N, the ones
`opskit service seed` fills); `key` is the first key. Without `db` the store lives in a temporary
directory removed by stop().
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import TypedDict

from opskit import children
from opskit.errors import RuntimeFailure, UsageError

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


class ServiceKey(TypedDict):
    """What `opskit service keys create --output json` prints."""

    key: str
    company_id: str
    tier: str


class LocalService:
    def __init__(self, workers: int = 1, db: str | os.PathLike[str] | None = None, seed_assets: int = 0,
                 tenants: int = 1, tier: str = "internal", host: str = "127.0.0.1", port: int = 0,
                 extra_env: dict[str, str] | None = None, extra_args: list[str] | None = None,
                 spec: str | os.PathLike[str] | None = None, cache: str | None = None) -> None:
        if workers < 1 or tenants < 1 or seed_assets < 0:
            raise UsageError("LocalService needs workers >= 1, tenants >= 1 and seed_assets >= 0")
        self.workers = workers
        self.seed_assets = seed_assets
        self.tenants = tenants
        self.tier = tier
        self.host = host
        self.port = port
        self.extra_env = dict(extra_env or {})
        self.extra_args = list(extra_args or [])
        self.spec = spec  # histogram bounds come from its service.latency_buckets_ms (else ./opskit.yaml if any)
        # a postgresql:// URL is passed to the service as it is (its password through extra_env's PGPASSWORD)
        self.db_url = str(db) if db is not None and "://" in str(db) else None
        self._db = Path(db) if db is not None and self.db_url is None else None
        self.cache = cache  # a redis:// URL passed as --cache (its password through extra_env's REDIS_PASSWORD)
        self._tmp: str | None = None
        self._proc: children.Child | None = None
        self.url = ""
        self.pid = 0
        self.keys: list[ServiceKey] = []
        self.db_path = Path()

    @property
    def key(self) -> str:
        return self.keys[0]["key"] if self.keys else ""

    @property
    def db(self) -> str:
        """The --db the service runs on: the SQLite file, or the PostgreSQL URL."""
        return self.db_url or str(self.db_path)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.running

    def start(self) -> LocalService:
        if self._proc is not None:
            return self
        self._tmp = tempfile.mkdtemp(prefix="opskit-localsvc-")
        try:
            self.db_path = self._db if self._db is not None else Path(self._tmp) / "assets.db"
            if self.seed_assets:
                self._cli("seed", "--assets", str(self.seed_assets), "--companies", str(self.tenants),
                          "--db", self.db, "--output", "json")
            self.keys = [
                json.loads(self._cli("keys", "create", "--company", f"company-{i}", "--tier", self.tier,
                                     "--db", self.db, "--output", "json"))
                for i in range(1, self.tenants + 1)
            ]
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self) -> None:
        assert self._tmp is not None
        ready = Path(self._tmp) / "ready.json"
        ready.unlink(missing_ok=True)  # left behind by a killed run
        argv = [sys.executable, "-m", "opskit", "service", "run", "--host", self.host, "--port", str(self.port),
                "--db", self.db, "--workers", str(self.workers), "--ready-file", str(ready),
                *(["--spec", str(self.spec)] if self.spec is not None else []),
                *(["--cache", self.cache] if self.cache else []), *self.extra_args]
        stderr = Path(self._tmp) / "service.stderr"
        stderr.unlink(missing_ok=True)  # the log of this start only (restart() starts again)
        # a process group of its own: Ctrl-C in the caller's terminal must not reach the workers first
        self._proc = children.start(argv, env=self._env(), log=stderr, stdout="null")
        self._proc.wait_ready(ready.exists, timeout_s=START_TIMEOUT_S, what="the asset service")
        info = json.loads(ready.read_text())
        self.url, self.pid = info["url"], int(info["pid"])

    def stop(self) -> None:
        """SIGTERM (drain), then SIGKILL to the whole process group after a deadline; remove the temp dir."""
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.stop(timeout_s=STOP_TIMEOUT_S)
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def kill(self) -> None:
        """kill -9 the supervisor and its workers (crash tests); the store is kept unless it was temporary."""
        if self._proc is not None:
            self._proc.kill()
        self._proc = None

    def restart(self) -> LocalService:
        """Start the service again on the same store and keys (after kill() or a stop of the process)."""
        if self.running:
            raise UsageError("the service is still running")
        if self._tmp is None:
            raise UsageError("the service was stopped and its temporary store removed")
        self._launch()
        return self

    def __enter__(self) -> LocalService:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # helpers
    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("OPSKIT_SERVICE_DB", None)  # the store is the one given here
        env.pop("OPSKIT_SERVICE_CACHE", None)  # and so is the cache, or none
        env.pop("OPSKIT_SPEC", None)  # the caller's spec is passed explicitly or not at all
        if self._tmp is not None:  # the service's run dir lands in ours: removed by stop() even after kill()
            env["TMPDIR"] = self._tmp
        env.update(self.extra_env)
        return env

    def _cli(self, *args: str) -> str:
        argv = [sys.executable, "-m", "opskit", "service", *args]
        done = subprocess.run(argv, capture_output=True, env=self._env(), timeout=300, check=False)
        if done.returncode != 0:
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
            raise RuntimeFailure(f"opskit service {args[0]} failed (exit {done.returncode}): {' | '.join(tail)}")
        return done.stdout.decode()
