"""promtool and amtool, run for real: one subprocess wrapper (argv lists, no shell, a timeout)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from opskit.errors import RuntimeFailure

INSTALL_HINT = {"promtool": "apt-get install prometheus", "amtool": "apt-get install prometheus-alertmanager"}


@dataclass(frozen=True)
class Completed:
    argv: list[str]
    returncode: int
    output: str  # stdout and stderr, as the tool printed them


def which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RuntimeFailure(f"{tool} not found on PATH (install it: {INSTALL_HINT.get(tool, tool)})")
    return path


def run(argv: list[str], *, cwd: Path | None = None, timeout: float = 120) -> Completed:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise RuntimeFailure(f"{Path(argv[0]).name} did not finish within {timeout:g}s: {' '.join(argv)}") from None
    except OSError as exc:
        raise RuntimeFailure(f"cannot run {argv[0]}: {exc}") from None
    return Completed(argv, proc.returncode, (proc.stdout + proc.stderr).strip())


_FOUND = re.compile(r"SUCCESS: (\d+) rules found")


def check_rules(path: Path) -> tuple[bool, int | None, str]:
    """`promtool check rules FILE` -> (passed, rules promtool counted, output)."""
    done = run([which("promtool"), "check", "rules", str(path)])
    match = _FOUND.search(done.output)
    return done.returncode == 0, int(match.group(1)) if match else None, done.output


def test_rules(paths: list[Path], cwd: Path) -> tuple[bool, str]:
    done = run([which("promtool"), "test", "rules", *[str(p) for p in paths]], cwd=cwd, timeout=300)
    return done.returncode == 0, done.output


def check_alertmanager(path: Path) -> tuple[bool, str]:
    done = run([which("amtool"), "check-config", str(path)])
    return done.returncode == 0, done.output


def route(path: Path, labels: dict[str, str]) -> tuple[bool, str]:
    """The receiver(s) Alertmanager picks for an alert with these labels."""
    argv = [which("amtool"), "config", "routes", "test", f"--config.file={path}",
            *[f"{k}={v}" for k, v in labels.items()]]
    done = run(argv)
    # amtool warns on stderr that --config.file wins over --alertmanager.url; the answer is the other line
    lines = [line for line in done.output.splitlines() if line.strip() and not line.startswith("Warning:")]
    return done.returncode == 0, " ".join(lines)
