"""The spec as it was at a git revision (cost diff --base): `git show REV:./FILE` through opskit's one
subprocess wrapper. The adapter of the diff; the pricing stays pure."""

from __future__ import annotations

from pathlib import Path

from opskit.errors import ConfigError, RuntimeFailure, UsageError
from opskit.proc import run_argv
from opskit.spec.loader import parse_yaml, validate
from opskit.spec.schema import Spec

GIT_TIMEOUT_S = 30.0


def spec_at_revision(rev: str, spec_file: Path) -> Spec | None:
    """The spec file at REV, validated; None when the file did not exist there (every plan is then new)."""
    if not rev or rev.startswith("-"):
        raise UsageError(f"--base {rev!r}: expected a git revision (a branch, tag or commit)")
    folder = spec_file.parent
    # "./name" is resolved against the working directory by git, so the spec may sit below the repo root
    res = run_argv(["git", "show", f"{rev}:./{spec_file.name}"], timeout=GIT_TIMEOUT_S, cwd=folder)
    if res.error is not None or res.timed_out:
        raise RuntimeFailure(f"cannot run git for --base {rev}: {res.error or 'timed out'}")
    if not res.ok:
        err = res.stderr.strip()
        if "not a git repository" in err:
            raise UsageError(f"--base {rev}: {folder} is not inside a git repository")
        if "does not exist in" in err or "exists on disk, but not in" in err:
            return None
        first = err.splitlines()[0] if err else f"exit {res.returncode}"
        raise UsageError(f"--base {rev}: git cannot read {spec_file.name} there ({first})")
    try:
        return validate(Spec, parse_yaml(res.stdout, f"{rev}:{spec_file.name}"))
    except ConfigError as exc:
        raise ConfigError(f"the spec at --base {rev} is not valid: {exc.message}", details=exc.details) from None
