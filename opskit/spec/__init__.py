"""opskit.yaml: the capacity spec every command reads."""

from __future__ import annotations

from pathlib import Path

from opskit.spec.loader import file_hash, read_located, spec_path, validate
from opskit.spec.schema import Spec

__all__ = ["Spec", "load_spec", "load_checked", "spec_path", "file_hash"]


def load_spec(path: str | Path | None = None) -> Spec:
    """Load and validate opskit.yaml (--spec, then $OPSKIT_SPEC, then ./opskit.yaml)."""
    p = spec_path(str(path) if path is not None else None)
    return validate(Spec, read_located(p))


def load_checked(path: str | Path | None = None) -> tuple[Spec, Path]:
    """load_spec plus the cross-key checks of opskit.spec.checks (what `spec validate` and every renderer
    refuse), as one located ConfigError; returns the spec and the path it was read from."""
    from opskit.spec.checks import located_error, spec_issues

    p = spec_path(str(path) if path is not None else None)
    spec = validate(Spec, read_located(p))
    issues = spec_issues(spec)
    if issues:
        raise located_error(p, issues)
    return spec, p
