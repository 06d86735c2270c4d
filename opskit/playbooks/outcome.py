"""What a run returns, and which exit code each ending means (the command applies it; the journal
records it so `runs` can show it later)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opskit.exitcodes import ExitCode

EXIT_CODES: dict[str, ExitCode] = {
    "succeeded": ExitCode.OK,
    "planned": ExitCode.OK,  # a hand-over that only planned
    "compensated": ExitCode.NO,
    "halted": ExitCode.NO,
    "inconclusive": ExitCode.NO,
    "precondition_failed": ExitCode.NO,
    "dry_run_failed": ExitCode.NO,
    "invalid": ExitCode.USAGE,  # e.g. a metrics source that is misconfigured
    "compensation_failed": ExitCode.RUNTIME,
    "error": ExitCode.RUNTIME,
    "locked": ExitCode.RUNTIME,
    "interrupted": ExitCode.INTERRUPTED,
}


def exit_code_for(status: str) -> ExitCode:
    return EXIT_CODES.get(status, ExitCode.RUNTIME)


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str  # a key of EXIT_CODES
    message: str  # masked
    journal: Path
    failed_step: str | None = None
    compensated: tuple[str, ...] = ()  # steps undone, in the order they were undone
