"""The exception family. Raise these anywhere; the root command catches them once and prints one line."""

from __future__ import annotations

from opskit.exitcodes import ExitCode


class OpskitError(Exception):
    """A failure the user can act on. The message is shown as it is, on one line, without a traceback."""

    exit_code: ExitCode = ExitCode.RUNTIME

    def __init__(self, message: str, *, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        # further lines shown under the message (e.g. every problem of a config file)
        self.details = details or []


class UsageError(OpskitError):
    """Bad options or arguments."""

    exit_code = ExitCode.USAGE


class ConfigError(OpskitError):
    """A config, spec, playbook or input file that is wrong."""

    exit_code = ExitCode.USAGE


class RuntimeFailure(OpskitError):
    """Something broke while running, or the data cannot answer the question."""

    exit_code = ExitCode.RUNTIME


class Refused(OpskitError):
    """The answer is "no" (a gate, threshold or verification failed) and there is nothing more to print."""

    exit_code = ExitCode.NO


class Interrupted(OpskitError):
    """Stopped by the user (Ctrl-C) after cleaning up."""

    exit_code = ExitCode.INTERRUPTED
