"""Fixtures for the alert rule tests: the repository's spec, and modified copies of it in tmp_path."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "opskit.yaml"
ALERTS = ROOT / "alerts"


@pytest.fixture
def seed_spec() -> dict[str, Any]:
    return yaml.safe_load(SPEC.read_text())


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[[dict[str, Any]], Path]:
    """Write a spec dict as tmp_path/opskit.yaml (renders then land in tmp_path/alerts)."""

    def _write(data: dict[str, Any]) -> Path:
        path = tmp_path / "opskit.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return _write


@pytest.fixture
def alerts_copy(tmp_path: Path) -> Path:
    """The committed alerts/ folder and the spec, copied so a test can break them."""
    shutil.copy(SPEC, tmp_path / "opskit.yaml")
    shutil.copytree(ALERTS, tmp_path / "alerts")
    return tmp_path / "alerts"
