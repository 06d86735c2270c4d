"""One real stack per module (PostgreSQL, Redis and the four exporters), started by opskit's own code and
stopped by pid at the end."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.stack import config as cfg
from opskit.stack import runtime


def needs_stack() -> str | None:
    missing = [b for b in ("redis-server", *cfg.EXPORTER_BINARIES.values()) if shutil.which(b) is None]
    if not os.access(Path(cfg.PG_BINDIR) / "postgres", os.X_OK):
        missing.append("postgresql-15")
    return f"stack packages missing ({', '.join(missing)}): run scripts/setup.sh" if missing else None


_MADE: list[Path] = []


def searchable_tmpdir(prefix: str) -> Path:
    """A temp dir the unprivileged service user can reach (pytest's tmp_path is 0700 root's); removed
    at the end of the session."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o711)
    _MADE.append(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def _remove_searchable_tmpdirs() -> Iterator[None]:
    yield
    for path in _MADE:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def stack_dir() -> Iterator[Path]:
    reason = needs_stack()
    if reason:
        pytest.skip(reason)
    state_dir = searchable_tmpdir("opskit-stack-test-")
    try:
        runtime.up(state_dir)
        yield state_dir
    finally:
        runtime.down(state_dir)
