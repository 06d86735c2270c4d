from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from opskit.errors import UsageError
from opskit.loadtest import safety
from opskit.spec.loader import parse_yaml, validate
from opskit.spec.schema import Spec

SPEC_TEXT = """
service: {name: asset-service}
targets:
  staging: {url: "https://staging.example.com", environment: staging, max_rps: 200}
  prod: {url: "https://api.example.com", environment: production}
"""


def _spec() -> Spec:
    return validate(Spec, parse_yaml(SPEC_TEXT, "opskit.yaml"))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://127.9.9.9", "http://localhost:1", "http://[::1]:80"])
def test_loopback_is_always_allowed(url: str) -> None:
    assert safety.resolve(_spec(), target=None, host=url, confirm_production=False).name == "loopback"


def test_declared_targets_and_their_limits() -> None:
    t = safety.resolve(_spec(), target="staging", host=None, confirm_production=False)
    assert (t.url, t.max_rps) == ("https://staging.example.com", 200)
    # the same target given by URL keeps its limits
    t = safety.resolve(_spec(), target=None, host="https://staging.example.com:443/", confirm_production=False)
    assert t.name == "staging" and t.max_rps == 200
    with pytest.raises(UsageError, match="production"):
        safety.resolve(_spec(), target="prod", host=None, confirm_production=False)
    assert safety.resolve(_spec(), target="prod", host=None, confirm_production=True).name == "prod"
    with pytest.raises(UsageError, match="not declared"):
        safety.resolve(_spec(), target="nope", host=None, confirm_production=False)


@pytest.mark.parametrize("url", ["http://example.org", "http://10.0.0.8:80", "http://127.0.0.1.nip.io:80"])
def test_anything_else_is_refused(url: str) -> None:
    with pytest.raises(UsageError, match="refusing"):
        safety.resolve(_spec(), target=None, host=url, confirm_production=False)


@pytest.mark.slow
def test_cli_refuses_an_undeclared_host_before_any_lookup_or_connection(invoke, monkeypatch, fast_server,
                                                                        tmp_path: Path) -> None:
    """A name that points at our own listening server, undeclared: refused with exit 2, and the server
    sees nothing, no name is resolved, no process starts."""
    lookups: list[object] = []
    spawned: list[object] = []
    real_getaddrinfo, real_popen = socket.getaddrinfo, subprocess.Popen
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: lookups.append(a) or real_getaddrinfo(*a, **k))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: spawned.append(a) or real_popen(*a, **k))
    host = f"http://127.0.0.1.nip.io:{fast_server.port}"
    result = invoke("loadtest", "run", "http-get", "--host", host, "--rate", "50", "--duration", "2s",
                    "--out", str(tmp_path / "run"))
    assert result.exit_code == 2
    assert "refusing to send load to 127.0.0.1.nip.io" in result.stderr
    assert "Traceback" not in result.stderr
    assert lookups == [] and spawned == []
    assert fast_server.connections == 0 and fast_server.requests == 0
    assert not (tmp_path / "run").exists()


def test_a_worker_only_loads_loopback_or_its_own_targets() -> None:
    import json

    allowed = json.dumps(["https://staging.example.com"])
    assert safety.worker_refusal("http://127.0.0.1:9", allowed) is None
    assert safety.worker_refusal("https://staging.example.com:443", allowed) is None
    assert "refusing" in (safety.worker_refusal("https://evil.example.com", allowed) or "")
    assert safety.worker_refusal("https://evil.example.com", None) is None  # a plain runner: the CLI checked
