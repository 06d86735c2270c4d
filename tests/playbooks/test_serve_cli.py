"""`opskit playbook serve` as a command: its bad options, its token file, and the process itself (started
and stopped by pid), and the auto_apply field's rule."""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path

import httpx
import pytest

OPSKIT = str(Path(sys.executable).parent / "opskit")


def _serve(kit, *args: str):
    return kit.run("playbook", "serve", "--state-dir", str(kit.state), *args)


@pytest.mark.parametrize(("args", "message"), [
    (["--cooldown", "soon"], "--cooldown"),
    (["--service", "http://10.1.2.3:8000"], "loopback service only"),
    (["--token-file", "/nonexistent/token"], "cannot read it"),
    (["--approve", "sometimes"], "sometimes"),
])
def test_bad_options_are_usage_errors(kit, args, message):
    res = _serve(kit, *args)
    assert res.exit_code == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_a_short_token_file_and_a_busy_port_are_refused(kit, tmp_path):
    short = tmp_path / "token"
    short.write_text("abc\n")
    res = _serve(kit, "--token-file", str(short))
    assert res.exit_code == 2 and "at least 16 characters" in res.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        res = _serve(kit, "--port", str(busy.getsockname()[1]))
    assert res.exit_code == 2 and "cannot listen on 127.0.0.1" in res.stderr


def test_the_server_makes_a_private_token_answers_on_loopback_and_stops_on_sigterm(tmp_path):
    from opskit import children
    from opskit.monitor.process import free_port

    port, state = free_port(), tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "OPSKIT_SPEC"}
    with children.start([OPSKIT, "playbook", "serve", "--port", str(port), "--state-dir", str(state)], env=env,
                        log=tmp_path / "serve.log", cwd=tmp_path) as child:
        child.wait_ready(lambda: _answers(f"http://127.0.0.1:{port}/health"), timeout_s=30, what="serve")
        token = state / "receiver" / "token"
        assert stat.S_IMODE(token.stat().st_mode) == 0o600 and len(token.read_text().strip()) >= 32
        denied = httpx.post(f"http://127.0.0.1:{port}/alerts", content=b"{}", trust_env=False)
        assert denied.status_code == 401
        assert child.stop() == 0  # SIGTERM: a clean stop
    log = (tmp_path / "serve.log").read_text()
    assert token.read_text().strip() not in log  # the token is never logged
    assert "warning: no opskit.yaml here and no --spec" in log  # no spec: no alert can be matched to its row


def test_auto_apply_needs_risk_low(kit):
    path = kit.write("risky", """\
apiVersion: opskit/v1
kind: Playbook
metadata: {name: risky, description: d, risk: medium, auto_apply: true}
steps:
  - {id: s, action: http.request, with: {url: "http://127.0.0.1:9/x"}}
""")
    res = kit.run("show", str(path))
    assert res.exit_code == 2 and "auto_apply: true needs risk: low" in res.stderr


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False
