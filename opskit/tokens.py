"""The bearer token `opskit playbook serve` checks and the local Alertmanager sends: one file per state dir,
STATE_DIR/receiver/token (0600), made by whichever of `playbook serve` and `monitor up --alertmanager`
runs first. Its own module so the receiver and the monitor share it without importing each other."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from opskit.errors import UsageError


def default_token_file(state_dir: Path) -> Path:
    return Path(state_dir) / "receiver" / "token"


def ensure_token(path: Path) -> Path:
    """Make the token file (random, 0600) unless it exists; a shared state dir shares it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32) + "\n")
    return path


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise UsageError(f"--token-file {path}: cannot read it ({exc.strerror or exc})") from None
    if len(token) < 16 or any(c.isspace() for c in token):
        raise UsageError(f"--token-file {path}: expected one token of at least 16 characters")
    return token
