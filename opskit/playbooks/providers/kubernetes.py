"""`kubernetes.*`: argv built for kubectl (scale with an optimistic --current-replicas, patch an HPA's
min/max, set resources, rollout status). Each action reads what it is about to change first, so its
compensation can put it back; `plan` runs the same command with --dry-run=server."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opskit.playbooks.providers.base import (
    K8S_NAME,
    Action,
    Arg,
    ArgError,
    Context,
    DryRun,
    Snapshot,
    StepResult,
    check_args,
    quote_argv,
)
from opskit.playbooks.refs import Deferred
from opskit.units import format_duration, parse_duration

WORKLOAD = rf"(deployment|deploy|statefulset|sts|replicaset|rs)/{K8S_NAME}"
QUANTITY = r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?"
COMMON = {
    "namespace": Arg("str", pattern=K8S_NAME, help="a namespace name"),
    "context": Arg("str", pattern=r"[A-Za-z0-9][A-Za-z0-9_.:@/-]*", help="a kubeconfig context name"),
}


def _base(args: Mapping[str, Any]) -> list[str]:
    argv = ["kubectl"]
    if args.get("context"):
        argv.append(f"--context={args['context']}")
    if args.get("namespace"):
        argv.append(f"--namespace={args['namespace']}")
    return argv


def _get(args: Mapping[str, Any], ref: str, ctx: Context, timeout: float) -> tuple[Any, str | None]:
    """Read one object as JSON (read-only, also done at plan time)."""
    argv = [*_base(args), "get", ref, "-o", "json"]
    proc = ctx.run(argv, timeout=timeout, env=dict(ctx.env))
    if not proc.ok:
        why = proc.error or ("timed out" if proc.timed_out else (proc.stderr.strip() or f"exit {proc.returncode}"))
        return None, f"{quote_argv(argv)}: {why}"
    try:
        return json.loads(proc.stdout), None
    except ValueError:
        return None, f"{quote_argv(argv)}: output is not JSON"


class _Kubectl(Action):
    def argv(self, args: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        raise NotImplementedError

    def read_current(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        return Snapshot()

    def describe(self, args: Mapping[str, Any]) -> str:
        return quote_argv(self.argv(args, {}))

    def dry_run(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> DryRun:
        current = self.read_current(args, ctx, timeout)
        if current.error:
            return DryRun(True, False, "", current.error)
        argv = [*self.argv(args, current.values), "--dry-run=server"]
        proc = ctx.run(argv, timeout=timeout, env=dict(ctx.env))
        return DryRun(True, proc.ok, quote_argv(argv), proc.output)

    def snapshot(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        return self.read_current(args, ctx, timeout)

    def read_back(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        """The state as read from the cluster now, in the snapshot's terms."""
        return self.read_current(args, ctx, timeout)

    def run(self, args: Mapping[str, Any], ctx: Context, timeout: float, before: Mapping[str, object]) -> StepResult:
        start = ctx.monotonic()
        argv = self.argv(args, before)
        proc = ctx.run(argv, timeout=timeout, env=dict(ctx.env))
        result = StepResult.from_proc(proc, quote_argv(argv), captures=dict(before))
        if result.ok or result.changed is False or not before:
            return result
        # did the failed command change anything? Proven only when a read-back equals the snapshot
        now = self.read_back(args, ctx, max(1.0, timeout - (ctx.monotonic() - start)))
        if now.error is None and all(now.values.get(k) == v for k, v in before.items() if k.startswith("previous_")):
            return replace(result, changed=False)
        if now.error is None and self.in_effect(args, now):
            # e.g. an earlier attempt (or a resumed run's first try) took effect and this one was refused
            return replace(result, ok=True, summary=f"already in effect ({result.summary})")
        return result

    def in_effect(self, args: Mapping[str, Any], now: Snapshot) -> bool:
        """Whether the state read back is the one this step asks for."""
        return False


class Scale(_Kubectl):
    name = "kubernetes.scale"
    ARGS = {
        "resource": Arg("str", required=True, pattern=WORKLOAD, help="deployment/NAME or statefulset/NAME"),
        "replicas": Arg("int", required=True, minimum=0),
        "current_replicas": Arg("int", minimum=0, help="expected count now; read from the cluster if omitted"),
        **COMMON,
    }

    def read_current(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        if args.get("current_replicas") is not None and not isinstance(args["current_replicas"], Deferred):
            return Snapshot({"previous_replicas": args["current_replicas"], "replicas": args["replicas"]})
        return self.read_back(args, ctx, timeout)

    def read_back(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        # from the cluster, even when current_replicas is given
        obj, err = _get(args, args["resource"], ctx, timeout)
        if err:
            return Snapshot(error=err)
        replicas = (obj.get("spec") or {}).get("replicas") if isinstance(obj, dict) else None
        if not isinstance(replicas, int):
            return Snapshot(error=f"{args['resource']} has no spec.replicas")
        return Snapshot({"previous_replicas": replicas, "replicas": args["replicas"]})

    def in_effect(self, args: Mapping[str, Any], now: Snapshot) -> bool:
        return now.values.get("previous_replicas") == args["replicas"]

    def describe(self, args: Mapping[str, Any]) -> str:
        # the count it was is read from the cluster when the step runs
        return quote_argv(self.argv(args, {"previous_replicas": "<current>"}))

    def argv(self, args: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        argv = [*_base(args), "scale", str(args["resource"])]
        prev = current.get("previous_replicas", args.get("current_replicas"))
        if prev is not None:
            argv.append(f"--current-replicas={prev}")
        return [*argv, f"--replicas={args['replicas']}"]


class PatchHpa(_Kubectl):
    name = "kubernetes.patch_hpa"
    ARGS = {
        "hpa": Arg("str", required=True, pattern=K8S_NAME, help="an HPA name"),
        "min_replicas": Arg("int", minimum=1),
        "max_replicas": Arg("int", minimum=1),
        **COMMON,
    }

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        out = check_args(self.ARGS, args)
        lo, hi = out["min_replicas"], out["max_replicas"]
        if lo is None and hi is None:
            raise ArgError(("min_replicas",), "give min_replicas, max_replicas or both")
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            raise ArgError(("min_replicas",), f"min_replicas ({lo}) is above max_replicas ({hi})")
        return out

    def read_current(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        obj, err = _get(args, f"hpa/{args['hpa']}", ctx, timeout)
        if err:
            return Snapshot(error=err)
        spec = obj.get("spec") or {} if isinstance(obj, dict) else {}
        return Snapshot({"previous_min_replicas": spec.get("minReplicas", 1),
                         "previous_max_replicas": spec.get("maxReplicas")})

    def argv(self, args: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        spec: dict[str, Any] = {}
        if args.get("min_replicas") is not None:
            spec["minReplicas"] = _intish(args["min_replicas"])
        if args.get("max_replicas") is not None:
            spec["maxReplicas"] = _intish(args["max_replicas"])
        patch = json.dumps({"spec": spec}, separators=(",", ":"), default=str)
        return [*_base(args), "patch", "hpa", str(args["hpa"]), "--type=merge", "-p", patch]


class SetResources(_Kubectl):
    name = "kubernetes.set_resources"
    ARGS = {
        "deployment": Arg("str", required=True, pattern=K8S_NAME, help="a deployment name"),
        "container": Arg("str", required=True, pattern=K8S_NAME, help="a container name"),
        "requests": Arg("dict", default={}),
        "limits": Arg("dict", default={}),
        **COMMON,
    }

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        import re

        out = check_args(self.ARGS, args)
        if not out["requests"] and not out["limits"]:
            raise ArgError(("requests",), "give requests, limits or both")
        for key in ("requests", "limits"):
            if isinstance(out[key], Deferred):
                continue
            for res, qty in out[key].items():
                if res not in ("cpu", "memory", "ephemeral-storage"):
                    raise ArgError((key, res), "expected cpu, memory or ephemeral-storage")
                if not isinstance(qty, Deferred) and not re.fullmatch(QUANTITY, str(qty)):
                    raise ArgError((key, res), f"{qty!r} is not a Kubernetes quantity (e.g. 500m, 1Gi)")
        return out

    def read_current(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> Snapshot:
        obj, err = _get(args, f"deployment/{args['deployment']}", ctx, timeout)
        if err:
            return Snapshot(error=err)
        try:
            containers = obj["spec"]["template"]["spec"]["containers"]
        except (KeyError, TypeError):
            return Snapshot(error=f"deployment/{args['deployment']} has no containers")
        for c in containers:
            if c.get("name") == args["container"]:
                res = c.get("resources") or {}
                return Snapshot({"previous_requests": res.get("requests") or {},
                                 "previous_limits": res.get("limits") or {}})
        return Snapshot(error=f"deployment/{args['deployment']} has no container {args['container']!r}")

    def argv(self, args: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        argv = [*_base(args), "set", "resources", "deployment", str(args["deployment"]), f"-c={args['container']}"]
        for key in ("requests", "limits"):
            if isinstance(args.get(key), Deferred):
                argv.append(f"--{key}={args[key]}")
            elif args.get(key):
                argv.append(f"--{key}=" + ",".join(f"{k}={v}" for k, v in sorted(args[key].items())))
        return argv


class RolloutStatus(_Kubectl):
    name = "kubernetes.rollout_status"
    ARGS = {
        "resource": Arg("str", required=True, pattern=WORKLOAD, help="deployment/NAME or statefulset/NAME"),
        "timeout": Arg("any", default="5m"),
        **COMMON,
    }

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        out = check_args(self.ARGS, args)
        try:
            out["timeout"] = parse_duration(out["timeout"])
        except ValueError as exc:
            raise ArgError(("timeout",), str(exc)) from None
        return out

    def argv(self, args: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
        return [*_base(args), "rollout", "status", str(args["resource"]),
                f"--timeout={format_duration(float(args['timeout']))}"]

    def dry_run(self, args: Mapping[str, Any], ctx: Context, timeout: float) -> DryRun:
        return DryRun(False, True)  # read-only: waits for the rollout the earlier steps start

    def run(self, args: Mapping[str, Any], ctx: Context, timeout: float, before: Mapping[str, object]) -> StepResult:
        return replace(super().run(args, ctx, timeout, before), changed=False)  # it only reads


def _intish(v: Any) -> Any:
    return int(v) if isinstance(v, int | str) and str(v).isdigit() else v
