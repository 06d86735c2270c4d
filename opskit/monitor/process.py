"""Starting, finding and stopping the local Prometheus. Never a system service: a child process of
`opskit monitor up` in its own session, listening on loopback, with everything under the state dir:

    <state-dir>/prometheus/prometheus.yml   generated config      targets.json  file_sd targets
    <state-dir>/prometheus/data/            TSDB                  prometheus.log
    <state-dir>/prometheus/state.json       pid, its start time and argv: `down` stops exactly that process
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit import children
from opskit.errors import RuntimeFailure, UsageError

if TYPE_CHECKING:
    import psutil

DEFAULT_PORT = 19090  # not 9090: a developer's own Prometheus often has that one
BINARY_ENV = "OPSKIT_PROMETHEUS"


@dataclass(frozen=True)
class ServerState:
    """A server `monitor up` started (Prometheus, Alertmanager): what `down` and `status` need to find
    exactly it again (pid + start time, and the config it was started with)."""

    pid: int
    port: int
    create_time: float
    config: str
    argv: list[str]
    started_at: float

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def identity(self) -> children.Identity:
        return children.Identity(self.pid, self.create_time)

    def runs_our_config(self, proc: psutil.Process) -> bool:
        return f"--config.file={self.config}" in proc.cmdline()


@dataclass(frozen=True)
class State(ServerState):
    targets: list[str]
    rule_files: list[str]


def home(state_dir: Path) -> Path:
    return Path(state_dir) / "prometheus"


def read_state(state_dir: Path) -> State | None:
    path = home(state_dir) / "state.json"
    try:
        raw = json.loads(path.read_text())
        return State(**raw)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        return None  # unreadable state is no state: `up` starts afresh, `down` has nothing to stop


def state_problem(state_dir: Path) -> str | None:
    """Why a state.json that exists cannot be used (read_state then answers None), or None. A person
    should hear of it: a Prometheus started before the file was damaged may still be running."""
    path = home(state_dir) / "state.json"
    if not path.exists():
        return None
    try:
        State(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError) as exc:
        return (f"{path} is unreadable ({type(exc).__name__}: {exc}); a Prometheus opskit started earlier "
                f"may still be running: look for --config.file={home(state_dir).resolve()}/prometheus.yml "
                f"in `ps`, stop it, then remove the file")
    return None


def write_state(state_dir: Path, state: State) -> None:
    from opskit.atomicio import write_atomic

    write_atomic(home(state_dir) / "state.json", json.dumps(asdict(state), indent=2) + "\n")


def clear_state(state_dir: Path) -> None:
    (home(state_dir) / "state.json").unlink(missing_ok=True)


def is_ours(state: State) -> bool:
    """The pid is alive and is the very process we started (same start time, our config), not a reuse."""
    return state.identity.alive(state.runs_our_config)


def find_binary() -> str:
    from opskit import proc

    return proc.find_binary(os.environ.get(BINARY_ENV) or "prometheus",
                            f"Debian: apt-get install prometheus, or set {BINARY_ENV} to its path")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def check_rules(paths: Sequence[Path]) -> tuple[list[str], list[str]]:
    """Split rule files into those promtool accepts and warnings for those it rejects (a broken rule file
    would stop Prometheus from starting; monitoring without those rules beats no monitoring)."""
    from opskit.alerts import tools

    have_promtool = shutil.which("promtool") is not None
    good, warnings = [], []
    for p in paths:
        if have_promtool:
            passed, _, output = tools.check_rules(p)
            if not passed:
                tail = output.splitlines()[-1:] or ["rejected"]
                warnings.append(f"{p}: promtool rejects it, not loaded: {tail[0]}")
                continue
        good.append(str(p.resolve()))
    return good, warnings


def start(
    state_dir: Path, *, port: int, config_text: str, targets_text: str, targets: list[str], rule_files: list[str],
    retention: str = "7d", ready_timeout_s: float = 30.0,
) -> State:
    binary = find_binary()
    root = home(state_dir).resolve()
    (root / "data").mkdir(parents=True, exist_ok=True)
    write_files(state_dir, config_text, targets_text)
    config = str(root / "prometheus.yml")
    argv = [
        binary, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", f"--storage.tsdb.retention.time={retention}",
        "--web.enable-lifecycle",  # lets `monitor up` reload new targets and rules over HTTP
    ]
    # outlives this invocation: `monitor down` (another process) stops it by the identity in state.json
    child = children.start(argv, env=dict(os.environ), log=root / "prometheus.log", cwd=root)
    state = State(pid=child.pid, port=port, create_time=child.identity.create_time, config=config,
                  argv=argv, started_at=time.time(), targets=targets, rule_files=rule_files)
    write_state(state_dir, state)
    try:
        child.wait_ready(lambda: ready(state.url), timeout_s=ready_timeout_s, what="prometheus",
                         tail_lines=3)
    except RuntimeFailure:
        clear_state(state_dir)
        raise
    return state


def write_files(state_dir: Path, config_text: str, targets_text: str) -> None:
    from opskit.atomicio import write_atomic

    root = home(state_dir)
    write_atomic(root / "targets.json", targets_text)
    write_atomic(root / "prometheus.yml", config_text)


def reload(state: ServerState, what: str = "Prometheus") -> None:
    """Make the running server read its config again (Prometheus and Alertmanager answer /-/reload alike)."""
    import httpx

    try:
        resp = httpx.post(f"{state.url}/-/reload", timeout=10, trust_env=False)
    except httpx.HTTPError as exc:
        raise RuntimeFailure(f"cannot reload {what} at {state.url}: {exc}") from None
    if resp.status_code != 200:
        raise RuntimeFailure(f"{what} rejected the new config: {resp.text.strip()[:300]}")


def ready(url: str) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/-/ready", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def stop(state_dir: Path, state: State, *, timeout_s: float = 15.0) -> bool:
    """Stop the process `up` started (SIGTERM, then SIGKILL after timeout_s). False if it was not running."""
    ours = children.stop_identity(state.identity, timeout_s=timeout_s, matches=state.runs_our_config)
    clear_state(state_dir)
    return ours


def log_tail(state_dir: Path, lines: int = 3) -> str:
    try:
        text = (home(state_dir) / "prometheus.log").read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [ln for ln in text.strip().splitlines() if ln.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


def pick_port(requested: int | None) -> int:
    if requested == 0:
        return free_port()
    port = DEFAULT_PORT if requested is None else requested
    if not 0 < port < 65536:
        raise UsageError(f"--port: expected 0..65535, got {port}")
    if port_in_use(port):
        raise UsageError(f"127.0.0.1:{port} is in use; choose another with --port (0 picks a free one)")
    return port
