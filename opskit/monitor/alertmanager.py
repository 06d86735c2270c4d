"""The local Alertmanager `monitor up --alertmanager` runs beside Prometheus: Debian's binary on loopback,
never a cluster peer (--cluster.listen-address is empty), its config rendered from the spec with the
playbook route pointing at `opskit playbook serve`:

    <state-dir>/alertmanager/alertmanager.yml   generated config (checked with amtool before use)
    <state-dir>/alertmanager/data/              silences and the notification log
    <state-dir>/alertmanager/state.json         pid, start time and argv: `monitor down` stops exactly it
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from opskit import children
from opskit.errors import RuntimeFailure, UsageError
from opskit.monitor import process as prom

if TYPE_CHECKING:

    from opskit.spec import Spec

DEFAULT_PORT = 19093  # not 9093: a developer's own Alertmanager often has that one
BINARY_ENV = "OPSKIT_ALERTMANAGER"
BINARIES = ("prometheus-alertmanager", "alertmanager")  # Debian's name, then upstream's


@dataclass(frozen=True)
class State(prom.ServerState):
    receiver: str  # where playbook-bound alerts go

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Status:
    running: bool
    pid: int | None
    url: str | None
    ready: bool
    receiver: str | None


def home(state_dir: Path) -> Path:
    return Path(state_dir) / "alertmanager"


def read_state(state_dir: Path) -> State | None:
    try:
        return State(**json.loads((home(state_dir) / "state.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_state(state_dir: Path, state: State) -> None:
    from opskit.atomicio import write_atomic

    write_atomic(home(state_dir) / "state.json", json.dumps(asdict(state), indent=2) + "\n")


def running(state_dir: Path) -> State | None:
    """The Alertmanager `up` started, if it is still that very process."""
    state = read_state(state_dir)
    if state is not None and state.identity.alive(state.runs_our_config):
        return state
    return None


def render(spec: Spec, state_dir: Path, *, receiver: str | None, token_file: Path | None) -> tuple[str, str]:
    """The config text and the playbook receiver URL (--receiver, else `playbook serve`'s default address).
    Alertmanager sends the token of this state dir (made here if serve has not made it yet), which a
    `playbook serve` with the same --state-dir checks, unless another token file is given."""
    from opskit.alerts.render import render_alertmanager
    from opskit.tokens import default_token_file, ensure_token

    url = receiver or spec.alerts.routing.playbook_receiver
    if token_file is None:
        token_file = ensure_token(default_token_file(state_dir))
    if token_file is not None and not token_file.is_file():
        raise UsageError(f"--receiver-token-file {token_file}: no such file")
    creds = str(token_file.resolve()) if token_file is not None else None
    return render_alertmanager(spec, playbook_url=url, credentials_file=creds), url


def up(state_dir: Path, *, config_text: str, receiver: str, port: int | None) -> tuple[State, bool]:
    """Start it, or give the running one the new config and reload it. (state, started)."""
    root = home(state_dir).resolve()
    current = running(state_dir)
    _write_config(root, config_text)
    if current is not None:
        prom.reload(current, "Alertmanager")
        state = State(**{**asdict(current), "receiver": receiver})
        _write_state(state_dir, state)
        return state, False
    chosen = prom.pick_port(DEFAULT_PORT if port is None else port)
    config = str(root / "alertmanager.yml")
    argv = [_binary(), f"--config.file={config}", f"--storage.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{chosen}", "--cluster.listen-address="]
    (root / "data").mkdir(parents=True, exist_ok=True)
    child = children.start(argv, env=dict(os.environ), log=root / "alertmanager.log", cwd=root)
    state = State(pid=child.pid, port=chosen, create_time=child.identity.create_time, config=config, argv=argv,
                  started_at=time.time(), receiver=receiver)
    _write_state(state_dir, state)
    try:
        child.wait_ready(lambda: prom.ready(state.url), timeout_s=30, what="alertmanager", tail_lines=3)
    except RuntimeFailure:
        (home(state_dir) / "state.json").unlink(missing_ok=True)
        raise
    return state, True


def down(state_dir: Path) -> tuple[bool, int | None]:
    state = read_state(state_dir)
    if state is None:
        return False, None
    stopped = children.stop_identity(state.identity, matches=state.runs_our_config)
    (home(state_dir) / "state.json").unlink(missing_ok=True)
    return stopped, state.pid


def status(state_dir: Path) -> Status:
    state = running(state_dir)
    if state is None:
        return Status(False, None, None, False, None)
    return Status(True, state.pid, state.url, prom.ready(state.url), state.receiver)


def _write_config(root: Path, text: str) -> None:
    """Write the config where Alertmanager reads it, but only once amtool accepts it (a config Alertmanager
    rejects would stop a fresh one from starting, or be refused by the reload)."""
    from opskit.alerts import tools
    from opskit.atomicio import write_atomic

    root.mkdir(parents=True, exist_ok=True)
    candidate = write_atomic(root / "alertmanager.yml.new", text)
    if shutil.which("amtool"):
        ok, output = tools.check_alertmanager(candidate)
        if not ok:
            raise UsageError(f"amtool rejects the rendered Alertmanager config {candidate}: "
                             f"{output.strip().splitlines()[-1:] or ['(no output)']}")
    candidate.replace(root / "alertmanager.yml")


def _binary() -> str:
    from opskit import proc

    explicit = os.environ.get(BINARY_ENV)
    if explicit:
        return proc.find_binary(explicit, f"{BINARY_ENV} names it")
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    return proc.find_binary(BINARIES[0], f"Debian: apt-get install prometheus-alertmanager, or set {BINARY_ENV}")
