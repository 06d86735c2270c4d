"""The supervisor: binds the listening socket once and runs N worker processes that share it.

gunicorn-style signals: SIGTERM/SIGINT drain and stop, SIGTTIN adds a worker, SIGTTOU removes one
(the newest, which stops accepting and finishes what it holds while the others keep serving). A worker
that dies unexpectedly is replaced. The run directory (worker count, pids, multiprocess metrics,
rate-limit state) lives only as long as the run.
"""

from __future__ import annotations

import dataclasses
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from opskit.assetsvc.config import CONFIG_ENV, ServiceConfig
from opskit.assetsvc.worker import FD_ENV, READY_FD_ENV

START_TIMEOUT_S = 60.0
MAX_QUICK_DEATHS = 5  # workers that die within QUICK_S of starting, in a row, before giving up
QUICK_S = 2.0


class SupervisorError(RuntimeError):
    pass


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    started: float
    ready: bool = False
    retiring: bool = False


@dataclass
class Supervisor:
    config: ServiceConfig  # run_dir and supervisor_pid are filled in by run()
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    graceful_timeout_s: float = 30.0
    on_ready: Callable[[str, int], None] | None = None
    on_event: Callable[[str], None] | None = None
    _workers: dict[int, _Worker] = field(default_factory=dict)
    _target: int = 0
    _signals: list[int] = field(default_factory=list)
    _quick_deaths: int = 0
    _retired_cpu: float = 0.0

    def run(self) -> None:
        from opskit.assetsvc.stores import open_storage

        store = open_storage(self.config.db_path)  # create the schema once, before workers race for it
        try:
            store.discard_unfinished_uploads()  # rows of uploads a killed worker left half done
        finally:
            store.close()
        remove_stale_run_dirs()
        run_dir = tempfile.mkdtemp(prefix="assetsvc-")
        try:
            os.makedirs(os.path.join(run_dir, "metrics"))
            self.config = dataclasses.replace(self.config, run_dir=run_dir, supervisor_pid=os.getpid())
            sock = socket.create_server((self.host, self.port), backlog=2048)
            try:
                self._serve(sock)
            finally:
                sock.close()
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)

    # the loop
    def _serve(self, sock: socket.socket) -> None:
        sock.set_inheritable(True)
        self._sock = sock
        self._ready_r, self._ready_w = os.pipe()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        os.set_blocking(wake_r, False)
        os.set_blocking(self._ready_r, False)
        old_wakeup = signal.set_wakeup_fd(wake_w)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGTTIN, signal.SIGTTOU, signal.SIGCHLD, signal.SIGHUP)
        previous = {s: signal.signal(s, self._on_signal) for s in handled}
        try:
            self._target = self.workers
            for _ in range(self.workers):
                self._spawn()
            self._wait_ready()
            host, port = sock.getsockname()[:2]
            self._publish()
            if self.on_ready:
                self.on_ready(f"http://{host}:{port}", self._count())
            while True:
                readable, _, _ = select.select([wake_r, self._ready_r], [], [], 1.0)
                if wake_r in readable:
                    _drain(wake_r)
                if self._ready_r in readable:
                    self._read_ready()
                if self._handle_signals():
                    break
                self._reap()
            self._stop_all()
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for s, h in previous.items():
                signal.signal(s, h)
            for fd in (wake_r, wake_w, self._ready_r, self._ready_w):
                os.close(fd)

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> bool:
        """Act on pending signals; True when the service should stop."""
        while self._signals:
            signum = self._signals.pop(0)
            if signum in (signal.SIGTERM, signal.SIGINT):
                self._event(f"signal {signal.Signals(signum).name}: draining {self._count()} worker(s)")
                return True
            if signum == signal.SIGTTIN:
                self._target += 1
                self._spawn()
                self._event(f"SIGTTIN: adding a worker ({self._target} wanted)")
            elif signum == signal.SIGTTOU:
                if self._target <= 1:
                    self._event("SIGTTOU ignored: the last worker stays")
                    continue
                self._target -= 1
                self._retire_one()
                self._event(f"SIGTTOU: removing a worker ({self._target} wanted)")
            # SIGCHLD: reaped by the loop; SIGHUP: ignored (no config to reload)
        return False

    def _spawn(self) -> None:
        env = dict(os.environ)
        env[CONFIG_ENV] = self.config.to_json()
        env[FD_ENV] = str(self._sock.fileno())
        env[READY_FD_ENV] = str(self._ready_w)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        # glibc gives each thread that allocates its own malloc arena (up to 8 per core) and keeps what
        # they once held: uploads, writes, stats and /metrics run in threads, and 100 concurrent uploads
        # left each worker at 240 MB instead of 120 MB. Two arenas; an operator's own setting wins
        env.setdefault("MALLOC_ARENA_MAX", "2")
        proc = subprocess.Popen(  # argv list, no shell; the worker inherits exactly the two fds it needs
            [sys.executable, "-m", "opskit.assetsvc.worker"],
            env=env, pass_fds=(self._sock.fileno(), self._ready_w), stdin=subprocess.DEVNULL,
        )
        self._workers[proc.pid] = _Worker(proc, time.monotonic())
        self._publish()

    def _retire_one(self) -> None:
        live = [w for w in self._workers.values() if not w.retiring]
        newest = max(live, key=lambda w: w.started)
        newest.retiring = True
        newest.proc.send_signal(signal.SIGTERM)
        self._publish()

    def _read_ready(self) -> None:
        try:
            data = os.read(self._ready_r, 4096)
        except BlockingIOError:
            return
        for token in data.split():
            worker = self._workers.get(int(token))
            if worker is not None:
                worker.ready = True
                self._quick_deaths = 0
        self._publish()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(w.ready for w in self._workers.values()):
            if time.monotonic() > deadline:
                self._stop_all()
                raise SupervisorError(f"workers did not start within {START_TIMEOUT_S:.0f}s")
            readable, _, _ = select.select([self._ready_r], [], [], 0.2)
            if readable:
                self._read_ready()
            for pid, worker in list(self._workers.items()):
                code = worker.proc.poll()
                if code is not None:
                    self._stop_all()
                    raise SupervisorError(f"worker {pid} exited with code {code} while starting (see its errors above)")
            if any(s in (signal.SIGTERM, signal.SIGINT) for s in self._signals):
                self._stop_all()
                raise SupervisorError("stopped while starting")

    def _reap(self) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            worker = self._workers.pop(pid, None)
            if worker is None:
                continue
            self._retired_cpu += usage.ru_utime + usage.ru_stime
            self._forget(pid)
            self._discard_uploads(pid)  # also after a clean exit: a drain can end mid-upload
            if worker.retiring:
                continue
            code = os.waitstatus_to_exitcode(status)
            self._event(f"worker {pid} died (exit {code}); starting a replacement")
            if time.monotonic() - worker.started < QUICK_S:
                self._quick_deaths += 1
                if self._quick_deaths >= MAX_QUICK_DEATHS:
                    self._signals.append(signal.SIGTERM)
                    self._event("workers keep dying at start; stopping")
                    return
            self._spawn()

    def _discard_uploads(self, pid: int) -> None:
        import sqlite3

        from opskit.assetsvc.sqlite import SQLiteStorage

        try:
            store = SQLiteStorage(self.config.db_path)
            try:
                rows = store.discard_unfinished_uploads(pid)
            finally:
                store.close()
        except sqlite3.Error as exc:  # busy: the next start cleans up instead
            self._event(f"could not remove the unfinished uploads of worker {pid}: {exc}")
            return
        if rows:
            self._event(f"removed {rows} rows of unfinished uploads of worker {pid}")

    def _forget(self, pid: int) -> None:
        from prometheus_client import multiprocess

        # live gauges of the dead process go; its counters and histograms stay (they are history)
        multiprocess.mark_process_dead(pid, self.config.metrics_dir)
        _write(self.config.retired_cpu_file, f"{self._retired_cpu:.6f}")
        self._publish()

    def _stop_all(self) -> None:
        for w in self._workers.values():
            if w.proc.poll() is None:
                w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.graceful_timeout_s
        while self._workers and time.monotonic() < deadline:
            self._reap_quiet()
            time.sleep(0.05)
        for w in self._workers.values():
            w.proc.kill()
        while self._workers:
            self._reap_quiet()
            time.sleep(0.01)

    def _reap_quiet(self) -> None:
        for pid, w in list(self._workers.items()):
            if w.proc.poll() is not None:
                self._workers.pop(pid)

    def _count(self) -> int:
        return sum(1 for w in self._workers.values() if w.ready and not w.retiring)

    def _publish(self) -> None:
        _write(self.config.workers_file, str(self._count()))
        pids = [os.getpid(), *self._workers]
        _write(os.path.join(self.config.run_dir, "pids"), " ".join(map(str, pids)))

    def _event(self, text: str) -> None:
        if self.on_event:
            self.on_event(text)


def remove_stale_run_dirs() -> None:
    """Run directories of supervisors that were killed (kill -9 leaves no chance to clean up)."""
    import glob

    for path in glob.glob(os.path.join(tempfile.gettempdir(), "assetsvc-*")):
        try:
            with open(os.path.join(path, "pids")) as f:
                supervisor = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # not one of ours, or still starting
        if not os.path.exists(f"/proc/{supervisor}") and os.path.isdir("/proc/self"):
            shutil.rmtree(path, ignore_errors=True)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _write(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
