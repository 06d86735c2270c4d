"""What every provider action offers: argument checking (pure), a description of exactly what would
run (pure), a dry run (the provider's own, e.g. `kubectl --dry-run=server`), and the run itself."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from opskit.playbooks.refs import Deferred
from opskit.proc import ProcResult, run_argv

Path_ = tuple[str | int, ...]


class ArgError(ValueError):
    def __init__(self, path: Path_, message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Arg:
    kind: str  # str, int, bool, number, dict, list, any
    required: bool = False
    default: Any = None
    pattern: str | None = None
    minimum: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""


@dataclass(frozen=True)
class StepResult:
    ok: bool
    summary: str
    command: str = ""
    captures: dict[str, object] = field(default_factory=dict)
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    # False only when the provider can prove the system is as it was (nothing was sent, the change was
    # refused, or a read-back equals the snapshot); None: unknown, so a failed step is compensated
    changed: bool | None = None

    @staticmethod
    def from_proc(proc: ProcResult, command: str, captures: Mapping[str, object] | None = None,
                  ok_codes: tuple[int, ...] = (0,)) -> StepResult:
        ok = proc.error is None and not proc.timed_out and proc.returncode in ok_codes
        if proc.error:
            summary = proc.error
        elif proc.timed_out:
            summary = f"timed out after {proc.duration_s:.1f}s"
        elif ok:
            summary = f"exit {proc.returncode}"
        else:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
            summary = f"exit {proc.returncode}" + (f": {last[0][:300]}" if last[0] else "")
        caps: dict[str, object] = {"stdout": proc.stdout.strip(), "returncode": proc.returncode, **(captures or {})}
        # a program that never started changed nothing
        never_ran = proc.returncode is None and proc.error is not None and not proc.cancelled and not proc.timed_out
        return StepResult(ok, summary, command, caps, proc.returncode, proc.stdout, proc.stderr, proc.timed_out,
                          changed=False if never_ran else None)


@dataclass(frozen=True)
class Snapshot:
    """What an action is about to change, read once before its first attempt: the values its
    compensation puts back (`previous_*`), or why they could not be read (then nothing ran)."""

    values: Mapping[str, object] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class DryRun:
    ran: bool  # False: this action has no dry run; the description is the whole plan
    ok: bool
    command: str = ""
    output: str = ""


@dataclass
class Context:
    """What a run hands to providers: the clock, an interruptible wait, and the subprocess runner
    (the one wrapper; tests that must not run a binary put a recording stand-in on PATH instead)."""

    env: Mapping[str, str] = field(default_factory=dict)
    monotonic: Callable[[], float] = time.monotonic
    wait: Callable[[float], bool] = field(default=lambda s: _sleep(s))  # True when interrupted
    interrupted: Callable[[], bool] = lambda: False
    cancelled: Callable[[], bool] = lambda: False  # a second Ctrl-C: stop what is in flight
    run: Callable[..., ProcResult] = run_argv
    # opskit's own environment, read only for the names an exec step lists in pass_env
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    # False for `plan` without --dry-run-commands: a dry run that is a command (exec's dry_run_argv) is
    # shown, not run; providers' read-only API dry runs still run
    dry_run_commands: bool = True


def scrubbed_run(hide_names: Collection[str], hide_values: Collection[str],
                 cancel: Callable[[], bool] | None = None) -> Callable[..., ProcResult]:
    """run_argv for the commands that need opskit's environment (kubectl, docker: KUBECONFIG, cloud
    credential plugins, DOCKER_*), minus the playbook's secrets: the variables they are read from and
    any variable holding one. Commands that ask for a minimal environment (exec) get just that."""
    hidden_values = {v for v in hide_values if v}

    def run(argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None,
            inherit_env: bool = True, **kw: Any) -> ProcResult:
        if inherit_env:
            base = {k: v for k, v in os.environ.items() if k not in hide_names and v not in hidden_values}
            env = {**base, **(env or {})}
        return run_argv(argv, timeout=timeout, env=env, inherit_env=False, cancel=cancel, **kw)

    return run


def _sleep(seconds: float) -> bool:
    time.sleep(seconds)
    return False


class Action:
    """One provider action. Subclasses set ARGS and implement describe/run (and dry_run if the
    provider has one)."""

    name: ClassVar[str]
    ARGS: ClassVar[dict[str, Arg]] = {}
    SECRET_OK: ClassVar[frozenset[str]] = frozenset()  # top-level args a secret may flow into
    DASH_OK: ClassVar[frozenset[str]] = frozenset()  # args where a value starting with '-' is data

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return check_args(self.ARGS, args)

    def static_problems(self, raw: Mapping[str, Any]) -> list[tuple[Path_, str]]:
        """Problems visible in the playbook file itself, before any parameter is known."""
        return []

    def describe(self, args: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def dry_run(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> DryRun:
        return DryRun(False, True)

    def snapshot(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        """What the action is about to change, read once before its first attempt (see Snapshot)."""
        return Snapshot()

    def run(self, args: Mapping[str, Any], ctx: Context, timeout: float, before: Mapping[str, object]) -> StepResult:
        raise NotImplementedError


def check_args(spec: Mapping[str, Arg], args: Mapping[str, Any]) -> dict[str, Any]:
    import difflib

    out: dict[str, Any] = {}
    for key in args:
        if key not in spec:
            close = difflib.get_close_matches(str(key), list(spec), n=1)
            raise ArgError((key,), "unknown argument" + (f" (did you mean {close[0]!r}?)" if close
                                                         else f"; arguments: {', '.join(spec)}"))
    for key, arg in spec.items():
        if key not in args or args[key] is None:
            if arg.required:
                raise ArgError((key,), "required argument is missing")
            out[key] = arg.default
            continue
        out[key] = _check_one(key, arg, args[key])
    return out


def _check_one(key: str, arg: Arg, value: Any) -> Any:
    if isinstance(value, Deferred):
        return value  # known once the earlier step has run; checked again then
    kind = arg.kind
    if kind == "int":
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str)
                                                                     and re.fullmatch(r"[0-9]+", value))):
            raise ArgError((key,), f"expected an integer, got {value!r}")
        value = int(value)
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ArgError((key,), f"expected a number, got {value!r}")
    elif kind == "str":
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ArgError((key,), f"expected a string, got {type(value).__name__}")
        value = str(value)
        if arg.pattern and not re.fullmatch(arg.pattern, value):
            raise ArgError((key,), f"{value!r} is not valid here (expected {arg.help or arg.pattern})")
    elif kind == "bool" and not isinstance(value, bool):
        raise ArgError((key,), f"expected true or false, got {value!r}")
    elif kind == "dict" and not isinstance(value, dict):
        raise ArgError((key,), f"expected a mapping, got {type(value).__name__}")
    elif kind == "list" and not isinstance(value, list):
        raise ArgError((key,), f"expected a list, got {type(value).__name__}")
    if arg.minimum is not None and isinstance(value, int | float) and value < arg.minimum:
        raise ArgError((key,), f"must be at least {arg.minimum:g}, got {value}")
    if arg.choices is not None and value not in arg.choices:
        raise ArgError((key,), f"must be one of {', '.join(map(str, arg.choices))}, got {value!r}")
    return value


def quote_argv(argv: list[str] | tuple[str, ...]) -> str:
    """argv shown the way a person would type it (display only: it is never run through a shell)."""
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


K8S_NAME = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
