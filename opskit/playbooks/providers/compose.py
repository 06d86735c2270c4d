"""`compose.scale`: `docker compose up -d --no-recreate --scale SERVICE=N --wait`. The running count is
read first (`ps --quiet SERVICE`) so compensation can scale back; `plan` uses compose's --dry-run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opskit.playbooks.providers.base import Action, Arg, Context, DryRun, Snapshot, StepResult, quote_argv

SERVICE = r"[a-zA-Z0-9][a-zA-Z0-9_.-]*"
FILE = r"[A-Za-z0-9_./~][A-Za-z0-9_./~ -]*"


class ComposeScale(Action):
    name = "compose.scale"
    ARGS = {
        "service": Arg("str", required=True, pattern=SERVICE, help="a compose service name"),
        "replicas": Arg("int", required=True, minimum=0),
        "files": Arg("list", default=[]),
        "project_name": Arg("str", pattern=r"[a-z0-9][a-z0-9_-]*", help="a compose project name"),
        "project_dir": Arg("str", pattern=FILE, help="a directory path"),
    }

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        import re

        from opskit.playbooks.providers.base import ArgError, check_args

        out = check_args(self.ARGS, args)
        for i, f in enumerate(out["files"]):
            if not isinstance(f, str) or not re.fullmatch(FILE, f):
                raise ArgError(("files", i), f"{f!r} is not a file path (and must not start with '-')")
        return out

    def _base(self, args: Mapping[str, Any]) -> list[str]:
        argv = ["docker", "compose"]
        for f in args.get("files") or []:
            argv += ["-f", str(f)]
        if args.get("project_name"):
            argv.append(f"--project-name={args['project_name']}")
        if args.get("project_dir"):
            argv.append(f"--project-directory={args['project_dir']}")
        return argv

    def _up(self, args: Mapping[str, Any], dry: bool = False) -> list[str]:
        base = self._base(args)
        if dry:
            base.append("--dry-run")
        return [*base, "up", "-d", "--no-recreate", "--scale", f"{args['service']}={args['replicas']}", "--wait"]

    def describe(self, args: Mapping[str, Any]) -> str:
        return quote_argv(self._up(args))

    def _count(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> tuple[int | None, str]:
        argv = [*self._base(args), "ps", "--quiet", str(args["service"])]
        proc = ctx.run(argv, timeout=timeout, env=dict(ctx.env))
        if not proc.ok:
            return None, f"{quote_argv(argv)}: {proc.error or proc.stderr.strip() or f'exit {proc.returncode}'}"
        return len([line for line in proc.stdout.splitlines() if line.strip()]), ""

    def dry_run(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> DryRun:
        argv = self._up(args, dry=True)
        proc = ctx.run(argv, timeout=timeout, env=dict(ctx.env))
        return DryRun(True, proc.ok, quote_argv(argv), proc.output)

    def snapshot(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        previous, err = self._count(args, ctx, timeout)
        if previous is None:
            return Snapshot(error=f"cannot read the current count: {err}")
        return Snapshot({"previous_replicas": previous, "replicas": args["replicas"]})

    def run(self, args: Mapping[str, Any], ctx: Context, timeout: float, before: Mapping[str, object]) -> StepResult:
        start = ctx.monotonic()
        argv = self._up(args)
        proc = ctx.run(argv, timeout=timeout, env=dict(ctx.env))
        result = StepResult.from_proc(proc, quote_argv(argv), captures=dict(before))
        if not result.ok and result.changed is None:
            # proven unchanged only when the count read back is the one before
            now, _ = self._count(args, ctx, max(1.0, timeout - (ctx.monotonic() - start)))
            if now is not None and now == before.get("previous_replicas"):
                result = replace(result, changed=False)
        return result
