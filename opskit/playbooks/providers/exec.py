"""`exec`: run one argv. The program (argv[0]) is written in the playbook, never taken from a
parameter; secrets reach the command through `env` or `stdin` only."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from opskit.playbooks.providers.base import (
    Action,
    Arg,
    ArgError,
    Context,
    DryRun,
    Path_,
    StepResult,
    check_args,
    quote_argv,
)
from opskit.playbooks.refs import Deferred, starts_with_ref

ENV_KEY = r"[A-Za-z_][A-Za-z0-9_]*"


class Exec(Action):
    name = "exec"
    ARGS = {
        "argv": Arg("list", required=True, help="the command as a list: [program, arg, ...]"),
        "env": Arg("dict", default={}),
        "pass_env": Arg("list", default=[], help="names of opskit's environment variables the command may see"),
        "stdin": Arg("str"),
        "cwd": Arg("str"),
        "ok_codes": Arg("list", default=[0]),
        "capture_json": Arg("bool", default=False),
        "dry_run_argv": Arg("list", help="a read-only command run by `plan` (the tool's own dry run)"),
    }
    SECRET_OK = frozenset({"env", "stdin"})
    DASH_OK = frozenset({"env", "stdin"})

    def static_problems(self, raw: Mapping[str, Any]) -> list[tuple[Path_, str]]:
        problems: list[tuple[Path_, str]] = []
        for key in ("argv", "dry_run_argv"):
            argv = raw.get(key)
            if isinstance(argv, list) and argv and starts_with_ref(argv[0]):
                problems.append(((key, 0), "the program must be written in the playbook, not a reference"))
        return problems

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        out = check_args(self.ARGS, args)
        for key in ("argv", "dry_run_argv"):
            argv = out.get(key)
            if argv is None:
                continue
            if not argv:
                raise ArgError((key,), "must name a program")
            for i, item in enumerate(argv):
                if isinstance(item, Deferred):
                    continue
                if isinstance(item, bool) or not isinstance(item, str | int | float):
                    raise ArgError((key, i), f"expected a string, got {type(item).__name__}")
            out[key] = [a if isinstance(a, Deferred | str) else _num(a) for a in argv]
        env = out["env"] or {}
        for k, v in env.items():
            if not re.fullmatch(ENV_KEY, str(k)):
                raise ArgError(("env", k), "not an environment variable name")
            if not isinstance(v, str | int | float | Deferred) or isinstance(v, bool):
                raise ArgError(("env", k), f"expected a string, got {type(v).__name__}")
        out["env"] = {str(k): (v if isinstance(v, Deferred | str) else _num(v)) for k, v in env.items()}
        for i, name in enumerate(out["pass_env"]):
            if not isinstance(name, str) or not re.fullmatch(ENV_KEY, name):
                raise ArgError(("pass_env", i), "not an environment variable name")
        codes = out["ok_codes"]
        if not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
            raise ArgError(("ok_codes",), "expected a list of exit codes")
        return out

    def describe(self, args: Mapping[str, Any]) -> str:
        text = quote_argv([str(a) for a in args["argv"]])
        extras = []
        if args.get("env"):
            extras.append("env " + ", ".join(f"{k}={v}" for k, v in args["env"].items()))
        if args.get("pass_env"):
            extras.append("pass_env " + ", ".join(args["pass_env"]))
        if args.get("stdin") is not None:
            extras.append(f"stdin {args['stdin']}")
        if args.get("cwd"):
            extras.append(f"in {args['cwd']}")
        return text + (f"  ({'; '.join(extras)})" if extras else "")

    def dry_run(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> DryRun:
        argv = args.get("dry_run_argv")
        if not argv:
            return DryRun(False, True)
        if not ctx.dry_run_commands:
            return DryRun(False, True, quote_argv([str(a) for a in argv]), "pass --dry-run-commands to run it")
        proc = ctx.run([str(a) for a in argv], timeout=timeout, env=_child_env(args, ctx),
                       stdin=args.get("stdin"), cwd=args.get("cwd"), inherit_env=False)
        return DryRun(True, proc.ok, quote_argv([str(a) for a in argv]), proc.output)

    def run(self, args: Mapping[str, Any], ctx: Context, timeout: float, before: Mapping[str, object]) -> StepResult:
        argv = [str(a) for a in args["argv"]]
        proc = ctx.run(argv, timeout=timeout, env=_child_env(args, ctx), stdin=args.get("stdin"),
                       cwd=args.get("cwd"), inherit_env=False)
        captures: dict[str, object] = {}
        result = StepResult.from_proc(proc, quote_argv(argv), ok_codes=tuple(args["ok_codes"]))
        if result.ok and args["capture_json"]:
            try:
                captures["json"] = json.loads(proc.stdout)
            except ValueError:
                return StepResult(False, "stdout is not JSON (capture_json is set)", result.command,
                                  result.captures, proc.returncode, proc.stdout, proc.stderr)
            return StepResult(True, result.summary, result.command, {**result.captures, **captures},
                              proc.returncode, proc.stdout, proc.stderr)
        return result


def _child_env(args: Mapping[str, Any], ctx: Context) -> dict[str, str]:
    """What the command sees on top of the minimal environment (PATH, HOME, LANG...): the variables it
    names in pass_env, then its own env. Never the rest of opskit's environment, where secrets live."""
    passed = {k: ctx.environ[k] for k in args.get("pass_env") or [] if k in ctx.environ}
    return {**passed, **ctx.env, **args["env"]}


def _num(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
