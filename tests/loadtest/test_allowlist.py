"""Every request a generator sends is checked against the run's allowlist (real Locust runs against real
loopback servers: the target, and another loopback port that is not declared)."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


class Server:
    """A loopback HTTP server: /away redirects to `away_to`, /here to its own /ok; anything else is 200."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.away_to = ""
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.hits[self.path] += 1
                location = {"/away": server.away_to, "/here": "/ok"}.get(self.path)
                self.send_response(302 if location else 200)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[tuple[Server, Server]]:
    with Server() as target, Server() as other:
        target.away_to = other.url + "/stolen"
        yield target, other


LOCUSTFILE = '''
import os
from locust import HttpUser, constant, task
from locust.contrib.fasthttp import FastHttpUser

OTHER = os.environ["OPSKIT_TEST_OTHER"]


class Fast(FastHttpUser):
    wait_time = constant(0.1)

    @task
    def away(self):
        self.client.get("/away", name="fast away")

    @task
    def here(self):
        self.client.get("/here", name="fast here")

    @task
    def absolute(self):
        self.client.get(OTHER + "/direct", name="fast absolute")


class Plain(HttpUser):
    wait_time = constant(0.1)

    @task
    def away(self):
        self.client.get("/away", name="plain away")

    @task
    def absolute(self):
        self.client.get(OTHER + "/direct", name="plain absolute")
'''


def test_requests_go_only_to_the_target(invoke, servers: tuple[Server, Server], tmp_path: Path) -> None:
    """A redirect to another origin is not followed (the 302 is the response), a same-origin one is, and an
    absolute URL to an undeclared host is refused and counted as a failure named for it; both clients."""
    target, other = servers
    lf = tmp_path / "lf.py"
    lf.write_text(LOCUSTFILE)
    out = tmp_path / "run"
    result = invoke("loadtest", "run", "http-get", "--host", target.url, "--locustfile", str(lf), "--users", "2",
                    "--duration", "3s", "--out", str(out), env={"OPSKIT_TEST_OTHER": other.url})
    assert result.exit_code == 0, result.stderr
    assert sum(other.hits.values()) == 0  # neither the redirect nor the absolute URL reached it
    endpoints = json.loads((out / "results.json").read_text())["endpoints"]
    for client in ("fast", "plain"):
        away, absolute = endpoints[f"GET {client} away"], endpoints[f"GET {client} absolute"]
        assert away["requests"] > 0 and away["failures"] == 0  # the 302 itself, a success
        assert absolute["requests"] > 0 and absolute["failures"] == absolute["requests"]
        assert absolute["failures_by_kind"] == {"refused: host not declared": absolute["requests"]}
    assert endpoints["GET fast here"]["failures"] == 0
    # a same-origin redirect is followed (the end of the run may cut one hop per user between the two)
    assert target.hits["/ok"] > 0 and 0 <= target.hits["/here"] - target.hits["/ok"] <= 2
    failures = (out / "locust_failures.csv").read_text()
    assert "refused: host not declared" in failures


def test_a_declared_target_may_be_called_by_absolute_url(invoke, servers: tuple[Server, Server],
                                                         tmp_path: Path) -> None:
    """Declared under targets: in the spec, the other server takes absolute URLs; redirects to it are
    still not followed (a redirect never leaves the origin it was sent to)."""
    target, other = servers
    text = (Path(__file__).parents[2] / "opskit.yaml").read_text()
    spec = tmp_path / "opskit.yaml"
    spec.write_text(text.replace("targets:", f"targets:\n  other: {{url: '{other.url}', environment: dev}}", 1))
    lf = tmp_path / "lf.py"
    lf.write_text(LOCUSTFILE)
    out = tmp_path / "run"
    result = invoke("loadtest", "run", "http-get", "--host", target.url, "--locustfile", str(lf), "--users", "2",
                    "--duration", "2s", "--out", str(out), "--spec", str(spec), env={"OPSKIT_TEST_OTHER": other.url})
    assert result.exit_code == 0, result.stderr
    endpoints = json.loads((out / "results.json").read_text())["endpoints"]
    assert endpoints["GET fast absolute"]["failures"] == 0 and endpoints["GET plain absolute"]["failures"] == 0
    assert other.hits["/direct"] > 0 and other.hits["/stolen"] == 0


def test_origins_are_read_from_the_url_text() -> None:
    from opskit.loadtest.safety import origin

    assert origin("http://127.0.0.1:8000/x") == origin("HTTP://127.0.0.1:8000") == ("http", "127.0.0.1", 8000)
    assert origin("https://Example.com/a") == ("https", "example.com", 443)
    assert origin("http://127.0.0.1:8000@evil.example/") == ("http", "evil.example", 80)  # userinfo is no host
    assert origin("http://127.0.0.1:80001/") == origin("http://h:x/") == ("", "", 0)  # no readable port: none
