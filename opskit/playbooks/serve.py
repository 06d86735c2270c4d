"""The HTTP side of `opskit playbook serve`: Alertmanager's webhook on loopback, guarded by a bearer token.

The handler only authenticates, parses and queues: it answers at once (Alertmanager times out and retries
slow receivers). One dispatcher thread decides for each notification in turn (so deduplication sees every
earlier decision), and each run it starts gets its own thread, so a long playbook stalls nothing."""

from __future__ import annotations

import hmac
import json
import queue
import signal
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opskit.playbooks.alertmsg import MAX_BODY, Notification, PayloadError, parse
from opskit.playbooks.alertruns import Receiver

PATH = "/alerts"
HOST = "127.0.0.1"  # never another interface: the endpoint starts playbooks
DEFAULT_PORT = 19095


class Server:
    def __init__(self, receiver: Receiver, *, token: str, port: int, say: Callable[[str], None]) -> None:
        self.receiver, self.say = receiver, say
        self.inbox: queue.Queue[Notification | None] = queue.Queue()
        self.httpd = ThreadingHTTPServer((HOST, port), _handler(token, self.inbox))
        self.httpd.daemon_threads = True
        self._threads = [threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True),
                         threading.Thread(target=self._dispatch, name="dispatch")]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}{PATH}"

    def start(self) -> Server:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        """Stop taking notifications, finish the ones queued, then let running playbooks stop safely."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.inbox.put(None)
        self._threads[1].join()
        self.receiver.close()

    def serve_until_signalled(self, banner: str) -> None:
        """Start, say the banner, and serve until SIGINT or SIGTERM; then stop as stop() does."""
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        self.start()
        self.say(banner)
        stopping.wait()
        self.say("stopping: no new notifications; running playbooks stop at their next safe point")
        self.stop()

    def _dispatch(self) -> None:
        while (n := self.inbox.get()) is not None:
            try:
                self.receiver.handle(n)
            except Exception as exc:  # one notification that breaks must not stop the next ones
                self.say(f"notification {n.group_key}: not handled: {type(exc).__name__}: {exc}")


def _handler(token: str, inbox: queue.Queue[Notification | None]) -> type[BaseHTTPRequestHandler]:
    expected = f"Bearer {token}".encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "opskit-playbook-serve"
        sys_version = ""

        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            if self.path in ("/health", "/-/ready"):
                self._answer(HTTPStatus.OK, {"status": "ok"})
            else:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST Alertmanager webhooks to {PATH}"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path.split("?")[0] != PATH:
                self._answer(HTTPStatus.NOT_FOUND, {"error": f"POST Alertmanager webhooks to {PATH}"})
                return
            given = (self.headers.get("Authorization") or "").encode()
            if not hmac.compare_digest(given, expected):
                self._answer(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong bearer token"},
                             {"WWW-Authenticate": 'Bearer realm="opskit"'})
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._answer(HTTPStatus.LENGTH_REQUIRED, {"error": "Content-Length required"})
                return
            if length < 0 or length > MAX_BODY:
                self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"at most {MAX_BODY} bytes"})
                return
            try:
                notification = parse(self.rfile.read(length))
            except PayloadError as exc:
                self._answer(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            inbox.put(notification)
            self._answer(HTTPStatus.OK, {"status": "accepted", "alerts": len(notification.alerts)})

        def _answer(self, status: HTTPStatus, body: dict[str, object],
                    headers: dict[str, str] | None = None) -> None:
            data = (json.dumps(body) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # the receiver says what it did with each alert; access lines would only repeat it

    return Handler
