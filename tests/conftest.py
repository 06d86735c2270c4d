"""Shared test helpers. Each area keeps its own fixtures in its folder's conftest.py."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def invoke(runner: CliRunner):
    """Run `opskit ARGS...` in-process; returns click's Result (stdout and stderr kept apart)."""
    from opskit.cli import cli

    def _invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None):
        return runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)

    return _invoke
