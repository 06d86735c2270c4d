"""promtool and amtool, run for real through opskit.proc (argv lists, no shell, a timeout)."""

from __future__ import annotations

import re
from pathlib import Path

from opskit.proc import ProcResult, find_binary, run_tool

TIMEOUT_S = 120.0
INSTALL_HINT = {"promtool": "Debian: apt-get install prometheus",
                "amtool": "Debian: apt-get install prometheus-alertmanager"}


def which(tool: str) -> str:
    return find_binary(tool, INSTALL_HINT.get(tool, tool))


def run(argv: list[str], *, cwd: Path | None = None, timeout: float = TIMEOUT_S) -> ProcResult:
    return run_tool(argv, timeout=timeout, cwd=cwd)


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
