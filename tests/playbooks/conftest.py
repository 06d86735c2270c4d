"""Fixtures for the playbook tests: a recording stand-in for kubectl/docker on PATH, a loopback HTTP
recording server, playbook files in a temporary directory, and the CLI called in-process."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from opskit.cli import cli
from opskit.metrics.base import MetricRequest, Sample, Series

HERE = Path(__file__).parent


class Steady:
    """A metrics source answering one value for everything (stands in for Prometheus in these tests)."""

    name = "steady"

    def __init__(self, value: float) -> None:
        self.value = value

    def read(self, request: MetricRequest, *, now: dt.datetime) -> Series:
        return Series(request.resource, request.metric, (Sample(self.value, now),))

    def replicas(self, resource: str) -> int | None:
        return None


@dataclass
class StandIn:
    bindir: Path
    log: Path
    rules_file: Path

    def rules(self, rules: list[dict[str, Any]]) -> None:
        self.rules_file.write_text(json.dumps(rules))

    def calls(self, tool: str | None = None) -> list[list[str]]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r["argv"] for r in rows if tool is None or r["tool"] == tool]


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    source = (HERE / "standin.py").read_text()
    for tool in ("kubectl", "docker"):
        script = bindir / tool
        script.write_text(f"#!{sys.executable}\n{source}")
        script.chmod(0o755)
    s = StandIn(bindir, tmp_path / "standin.log", tmp_path / "standin-rules.json")
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STANDIN_LOG", str(s.log))
    monkeypatch.setenv("STANDIN_RULES", str(s.rules_file))
    return s


@dataclass
class Recorder:
    """A real HTTP server on 127.0.0.1:0 that records every request and answers from routes."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    # (method, path) -> list of (status, body) answered in turn; the last one repeats
    routes: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)

    def route(self, method: str, path: str, *answers: tuple[int, Any]) -> None:
        self.routes[(method, path)] = list(answers)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            with lock:
                rec.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                     "body": json.loads(body) if body else None})
                answers = rec.routes.get((self.command, self.path)) or [(404, {"error": "no route"})]
                status, payload = answers.pop(0) if len(answers) > 1 else answers[0]
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@dataclass
class Kit:
    """The CLI in-process plus the state dir and journal readers, for one test."""

    tmp: Path
    state: Path

    def run(self, *args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        argv = list(args)
        if argv and argv[0] in ("plan", "apply", "resume", "runs", "list", "show"):
            argv = ["playbook", *argv, "--state-dir", str(self.state)]
        return CliRunner().invoke(cli, argv, input=input, env=env, catch_exceptions=False)

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(text)
        return path

    def run_ids(self) -> list[str]:
        root = self.state / "runs"
        return sorted(p.name for p in root.iterdir()) if root.exists() else []

    def journal(self, run_id: str | None = None) -> list[dict[str, Any]]:
        rid = run_id or self.run_ids()[-1]
        path = self.state / "runs" / rid / "journal.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def events(self, kind: str, run_id: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.journal(run_id) if e["event"] == kind]

    def end(self, run_id: str | None = None) -> dict[str, Any]:
        return self.events("run_end", run_id)[-1]


@pytest.fixture
def kit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Kit:
    # no opskit.yaml lookups from the repository: the tests' playbooks carry their own queries
    monkeypatch.chdir(tmp_path)
    return Kit(tmp_path, tmp_path / "state")
