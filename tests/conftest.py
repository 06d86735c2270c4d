"""Shared test helpers. Each area keeps its own fixtures in its folder's conftest.py."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

UPDATE_GOLDEN = "OPSKIT_UPDATE_GOLDEN"  # `make golden` sets it: every golden file is rewritten, then compared


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "golden: compares output with a committed golden file (`make golden`)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # `make golden` selects these with -m golden
        if "golden" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.golden)


_STARTED_BY: dict[object, str] = {}  # child identity -> the test that started it


@pytest.fixture(autouse=True)
def _note_children(request: pytest.FixtureRequest) -> Iterator[None]:
    """Remember which test started each child process (opskit.children), for the leak check below."""
    from opskit import children

    before = set(children._REGISTRY)
    yield
    for identity in set(children._REGISTRY) - before:
        _STARTED_BY.setdefault(identity, request.node.nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Every process a test starts is stopped by the test: name (and stop) any that is still running."""
    from opskit import children

    leaked: list[object] = [c for c in list(children._REGISTRY.values()) if c.running]
    for child in leaked:
        print(f"\nleaked child process {child.pid} {child._popen.args!r}, started by "
              f"{_STARTED_BY.get(child.identity, 'a session fixture')}")
        child.stop()
    # and any other subprocess.Popen this interpreter still holds that was never waited for
    import gc
    import subprocess

    for obj in gc.get_objects():
        if isinstance(obj, subprocess.Popen) and obj.returncode is None and obj.poll() is None:
            print(f"\nleaked process {obj.pid} {obj.args!r} (a subprocess.Popen never waited for)")
            obj.kill()
            obj.wait()
            leaked.append(obj)
    if leaked and session.exitstatus == 0:
        session.exitstatus = 1


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


@pytest.fixture
def golden() -> Callable[[Path, str], None]:
    """golden(path, text): text must equal the committed file; with OPSKIT_UPDATE_GOLDEN=1 the file is
    rewritten first (review the diff before committing)."""

    def check(path: Path, text: str) -> None:
        if os.environ.get(UPDATE_GOLDEN):
            path.write_text(text, encoding="utf-8")
        assert text == path.read_text(encoding="utf-8"), f"{path} differs; `make golden` rewrites it"

    return check
