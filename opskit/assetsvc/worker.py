"""One worker process: uvicorn (uvloop + httptools) serving the app on the socket the supervisor bound.

Started only by the supervisor (`python -m opskit.assetsvc.worker`), which passes the listening socket's
fd, a pipe to report readiness on, and the settings as JSON in the environment.
"""

from __future__ import annotations

import asyncio
import os
import socket

from opskit.assetsvc.config import ServiceConfig

FD_ENV = "ASSETSVC_FD"
READY_FD_ENV = "ASSETSVC_READY_FD"
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


def main() -> None:
    config = ServiceConfig.from_env()
    _die_with_supervisor(config.supervisor_pid)
    # must be set before prometheus_client is imported: it picks its value class at import
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = config.metrics_dir
    import uvicorn

    from opskit.assetsvc.app import create_app
    from opskit.assetsvc.metrics import Metrics
    from opskit.assetsvc.sqlite import SQLiteStorage

    sock = socket.socket(fileno=int(os.environ[FD_ENV]))
    ready_fd = int(os.environ[READY_FD_ENV])
    app = create_app(config, SQLiteStorage(config.db_path), Metrics(config))

    class Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
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
        app, loop="uvloop", http="httptools", lifespan="off", access_log=False, log_level="warning",
        timeout_graceful_shutdown=30, server_header=False, date_header=True,
    )
    Server(uconfig).run(sockets=[sock])


if __name__ == "__main__":
    main()
