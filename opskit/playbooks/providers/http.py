"""`http.request`: one call to a cloud or platform API: method, URL, JSON body, expected status,
secrets in headers (never in the URL, which proxies and access logs keep)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from opskit.playbooks.providers.base import Action, Arg, ArgError, Context, StepResult, check_args
from opskit.playbooks.refs import Deferred

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")


class HttpRequest(Action):
    name = "http.request"
    ARGS = {
        "method": Arg("str", default="GET", choices=METHODS),
        "url": Arg("str", required=True, pattern=r"https?://[^\s/]+(/\S*)?", help="an http(s):// URL"),
        "json": Arg("any"),
        "headers": Arg("dict", default={}),
        "expect_status": Arg("any", default=[200, 201, 202, 204]),
        "expect_json": Arg("dict", default={}, help="path -> value the response body must hold"),
    }
    SECRET_OK = frozenset({"headers", "json"})
    DASH_OK = frozenset({"headers", "json", "expect_json"})

    def check(self, args: Mapping[str, Any]) -> dict[str, Any]:
        out = check_args(self.ARGS, args)
        status = out["expect_status"]
        codes = [status] if isinstance(status, int) else status
        if not isinstance(codes, list) or not all(isinstance(c, int) and 100 <= c <= 599 for c in codes):
            raise ArgError(("expect_status",), f"expected a status code or a list of them, got {status!r}")
        out["expect_status"] = codes
        for k, v in out["headers"].items():
            if not isinstance(v, str | int | Deferred) or "\n" in str(v) or "\r" in str(v):
                raise ArgError(("headers", k), "expected a one-line string")
        return out

    def describe(self, args: Mapping[str, Any]) -> str:
        text = f"{args['method']} {args['url']}"
        if args.get("headers"):
            text += "  headers " + ", ".join(f"{k}: {v}" for k, v in args["headers"].items())
        if args.get("json") is not None:
            text += "  json " + json.dumps(args["json"], default=str, separators=(",", ":"))
        return text + f"  expect {'/'.join(map(str, args['expect_status']))}"

    def run(self, args: Mapping[str, Any], ctx: Context, timeout: float, before: Mapping[str, object]) -> StepResult:
        import httpx

        command = f"{args['method']} {args['url']}"
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False) as client:
                resp = client.request(args["method"], args["url"], json=args.get("json"),
                                      headers={k: str(v) for k, v in args["headers"].items()})
        except httpx.ConnectTimeout:  # no connection: nothing was sent
            return StepResult(False, f"timed out connecting after {timeout:g}s", command, timed_out=True,
                              changed=False)
        except httpx.TimeoutException:
            return StepResult(False, f"timed out after {timeout:g}s", command, timed_out=True)
        except httpx.ConnectError as exc:
            return StepResult(False, f"request failed: {type(exc).__name__}: {exc}", command, changed=False)
        except httpx.HTTPError as exc:
            return StepResult(False, f"request failed: {type(exc).__name__}: {exc}", command)
        body_text = resp.text[-65536:]
        captures: dict[str, object] = {"status": resp.status_code, "body": body_text}
        with contextlib.suppress(ValueError):
            captures["json"] = resp.json()
        if resp.status_code not in args["expect_status"]:
            # a 4xx answer means the server refused the request: it changed nothing; a 5xx proves nothing
            return StepResult(False, f"HTTP {resp.status_code}, expected "
                              f"{'/'.join(map(str, args['expect_status']))}: {body_text[:200]}",
                              command, captures, stdout=body_text,
                              changed=False if 400 <= resp.status_code < 500 else None)
        for path, want in args["expect_json"].items():
            got = _dig(captures.get("json"), str(path))
            if got != want:
                return StepResult(False, f"HTTP {resp.status_code} but {path} is {got!r}, expected {want!r}",
                                  command, captures, stdout=body_text)
        return StepResult(True, f"HTTP {resp.status_code}", command, captures, stdout=body_text)


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value
