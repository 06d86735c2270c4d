"""One worker process: uvicorn (uvloop + httptools) serving the app on the socket the supervisor bound.

Started only by the supervisor (`python -m opskit.assetsvc.worker`), which passes the listening socket's
fd, a pipe to report readiness on, and the settings as JSON in the environment.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import Callable

from opskit.assetsvc.config import ServiceConfig

FD_ENV = "ASSETSVC_FD"
READY_FD_ENV = "ASSETSVC_READY_FD"
BURST_PAUSE_S = 0.001  # long enough for another woken worker to accept, short against a request
BURST_GAP_S = 0.01  # an accept after this long without one starts a burst (> BURST_PAUSE_S)
BURST_WINDOW_S = 0.2  # the first this long of a burst is shared out
ERROR_PAUSE_S = 0.05
SWITCH_INTERVAL_S = 0.001  # the GIL switch interval in workers (see main)
DRAIN_S = 2.0  # at most this long a stopping worker lets keep-alive clients leave after one more answer


def _die_with_supervisor(supervisor_pid: int) -> None:
    """Linux: get SIGTERM when the supervisor goes, even by kill -9, so no worker outlives it."""
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the supervisor still stops its workers on every normal exit
    if os.getppid() != supervisor_pid:  # it died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class FairAcceptor:
    """Accepts from the shared listening socket one connection at a time, leaving bursts to share.

    uvloop (libuv) accepts every queued connection on each readiness event, so whichever worker wakes
    first took a whole burst (a load generator opening its connections) and the keep-alive clients stayed
    on it. Here a worker takes one and, early in a burst and while other workers serve, stops accepting
    for BURST_PAUSE_S so the others, woken by the same event, take the next. Duck-types the
    asyncio.Server methods uvicorn calls (close, wait_closed).
    """

    def __init__(self, sock: socket.socket, factory: Callable[[], asyncio.Protocol], workers_file: str) -> None:
        self._loop = asyncio.get_running_loop()
        self._workers_file = workers_file
        self._sock, self._factory = sock, factory
        self._closed = False
        self._last_accept = self._burst_start = float("-inf")
        sock.setblocking(False)
        self._loop.add_reader(sock.fileno(), self._accept)

    def _accept(self) -> None:
        try:
            conn, _ = self._sock.accept()
        except (BlockingIOError, InterruptedError):
            return  # another worker took it
        except ConnectionAbortedError:
            return  # the client gave up while queued
        except OSError:  # out of fds: the socket stays readable, so back off instead of spinning
            self._pause(ERROR_PAUSE_S)
            return
        conn.setblocking(False)
        self._loop.create_task(self._loop.connect_accepted_socket(self._factory, conn))
        now = self._loop.time()
        if now - self._last_accept > BURST_GAP_S:
            self._burst_start = now
        self._last_accept = now
        if now - self._burst_start < BURST_WINDOW_S and self._others_serve():
            # early in a burst: pause accepting briefly so the other workers, woken by the same event,
            # take the next connections (requests on connections already held are served meanwhile).
            # Only at the start: under steady connect-per-request load every worker is accepting
            # anyway, and pausing there would cap each worker's accept rate (1,500 vs 5,100 req/s)
            self._pause(BURST_PAUSE_S)

    def _others_serve(self) -> bool:
        try:
            with open(self._workers_file) as f:
                return int(f.read() or 0) > 1
        except (OSError, ValueError):
            return False

    def _pause(self, seconds: float) -> None:
        self._loop.remove_reader(self._sock.fileno())
        self._loop.call_later(seconds, self._rearm)

    def _rearm(self) -> None:
        if not self._closed:
            self._loop.add_reader(self._sock.fileno(), self._accept)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._sock.fileno())

    async def wait_closed(self) -> None:
        return None


def _raise_open_files_limit() -> None:
    """Every open connection is a file: lift the soft limit to the hard one (10,000 keep-alive users on
    one worker need about 10,050), as nginx's worker_rlimit_nofile does."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):  # a kernel cap below it: serve with what we have
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main() -> None:
    config = ServiceConfig.from_env()
    _die_with_supervisor(config.supervisor_pid)
    _raise_open_files_limit()
    # an upload's parser and writer threads share the interpreter with the event loop: each time the loop
    # comes back from epoll or SQLite it waits for them to give up the GIL, up to the switch interval
    # (5 ms by default) per runnable thread. 1 ms cut the p95 of another tenant's reads during 100
    # concurrent uploads in each of 3 A/B pairs (94/88/46 ms against 132/99/170 ms) at no cost to the uploads
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # must be set before prometheus_client is imported: it picks its value class at import
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = config.metrics_dir
    import uvicorn

    from opskit.assetsvc.app import create_app
    from opskit.assetsvc.httpguard import guarded_protocol
    from opskit.assetsvc.metrics import Metrics
    from opskit.assetsvc.stores import open_storage

    sock = socket.socket(fileno=int(os.environ[FD_ENV]))
    ready_fd = int(os.environ[READY_FD_ENV])
    app = create_app(config, open_storage(config.db_path, config.cache_url, config.run_dir), Metrics(config))

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=[])  # uvicorn binds nothing; FairAcceptor accepts instead
            if self.started:
                uconfig = self.config

                def protocol() -> asyncio.Protocol:
                    return uconfig.http_protocol_class(  # type: ignore[call-arg]
                        config=uconfig, server_state=self.server_state, app_state=self.lifespan.state,
                    )

                self.servers = [FairAcceptor(sock, protocol, config.workers_file)]  # type: ignore[list-item]
                os.write(ready_fd, f"{os.getpid()}\n".encode())

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # stop accepting (the other workers share the socket and take the new connections), then
            # answer each open connection's next request with "Connection: close"; only connections idle
            # for the whole window are closed by uvicorn's own shutdown below
            for server in self.servers:
                server.close()
            app.draining = True
            deadline = asyncio.get_running_loop().time() + DRAIN_S
            while self.server_state.connections and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            await super().shutdown(sockets=sockets)

    uconfig = uvicorn.Config(
        app, loop="uvloop", lifespan="off",
        http=guarded_protocol(config.max_header_bytes, config.max_headers),
        access_log=False, log_level="warning",
        # nothing here reads the client address, and X-Forwarded-* rewriting costs every request
        proxy_headers=False,
        timeout_graceful_shutdown=30, server_header=False, date_header=True,
        timeout_keep_alive=config.keep_alive_s,
    )
    Server(uconfig).run(sockets=[sock])


if __name__ == "__main__":
    main()
