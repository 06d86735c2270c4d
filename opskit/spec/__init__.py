"""opskit.yaml: the capacity spec every command reads."""

from __future__ import annotations

from pathlib import Path

from opskit.spec.loader import file_hash, read_located, spec_path, validate
from opskit.spec.schema import Spec

__all__ = ["Spec", "load_spec", "spec_path", "file_hash"]


def load_spec(path: str | Path | None = None) -> Spec:
    """Load and validate opskit.yaml (--spec, then $OPSKIT_SPEC, then ./opskit.yaml)."""
    p = spec_path(str(path) if path is not None else None)
    return validate(Spec, read_located(p))
