"""The reference asset service: the system under test of opskit.

Self-contained on purpose: it imports nothing from the rest of opskit, so it could be lifted out and
deployed as it is. The toolkit talks to it only over HTTP and /metrics (see opskit.localservice).

Layout: config (settings shared by supervisor and workers), storage (the Storage protocol and its
SQLite implementation), validation and upload (pure parsing of assets, streamed CSV/JSON), ratelimit,
metrics, app (the Starlette ASGI app), worker (one uvicorn process) and supervisor (binds the socket,
runs N workers, resizes on SIGTTIN/SIGTTOU), seed (fast realistic data).
"""

__all__: list[str] = []
