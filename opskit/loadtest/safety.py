"""Where load may go (pure; no DNS lookups, no connections).

Loopback (127.0.0.0/8, ::1, the name `localhost`) is always allowed. Any other host must be declared
under `targets:` in opskit.yaml; a production target also needs --confirm-production. The decision
is made from the URL text alone, before anything touches the network.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from opskit.errors import UsageError
from opskit.spec.schema import Spec


class ParamError(UsageError):
    """A bad parameter of a load-test request, written `name` in the message (the target is the first
    parameter checked, so the class lives here); a command words it with its own option names."""

    def naming(self, option: Callable[[str], str]) -> UsageError:
        """The same error with each `name` replaced by what the caller calls it (e.g. --duration)."""
        text = re.sub(r"`([a-z_]+)`", lambda m: option(m.group(1)), self.message)
        return UsageError(text, details=self.details)

@dataclass(frozen=True)
class Target:
    name: str  # the spec's target name, "embedded", or "loopback"
    url: str | None  # None: the embedded service (its URL is known once it runs)
    environment: str
    max_rps: float | None

    @property
    def embedded(self) -> bool:
        return self.url is None


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname
    if host is None:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name: we do not resolve it here, on purpose


def _norm(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = (parts.scheme or "http").lower()
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise UsageError(f"{url}: the port is not a number") from None
    return scheme, (parts.hostname or "").lower(), port


def origin(url: str) -> tuple[str, str, int]:
    """A URL's origin (scheme, host, port), from its text; a URL whose port is unreadable has none."""
    try:
        return _norm(url)
    except UsageError:
        return ("", "", 0)


def same_target(a: str, b: str) -> bool:
    return _norm(a) == _norm(b)


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParamError(f"`host` {url!r}: expected an http:// or https:// URL like http://127.0.0.1:8000")
    _norm(url)
    return url.rstrip("/")


def resolve(spec: Spec, *, target: str | None, host: str | None, confirm_production: bool) -> Target:
    if target and host:
        raise ParamError("give `target` NAME or `host` URL, not both")
    if not target and not host and spec.loadtest.default_target:
        target = spec.loadtest.default_target
    if target:
        declared = spec.targets.get(target)
        if declared is None:
            names = ", ".join(sorted(spec.targets)) or "none declared"
            raise ParamError(f"`target` {target!r} is not declared under targets: in the spec (known: {names})")
        return _approve(Target(target, declared.url, declared.environment, declared.max_rps), confirm_production)
    if host:
        url = check_url(host)
        for name, declared in spec.targets.items():
            if _norm(declared.url) == _norm(url):
                return _approve(Target(name, url, declared.environment, declared.max_rps), confirm_production)
        if is_loopback(url):
            return Target("loopback", url, "dev", None)
        raise ParamError(
            f"refusing to send load to {urlsplit(url).hostname}: it is not loopback and not declared under "
            "targets: in the spec (declare it there with its environment and max_rps, then use `target` NAME)")
    return Target("embedded", None, "dev", None)


def _approve(t: Target, confirm_production: bool) -> Target:
    if t.environment == "production" and not confirm_production:
        raise ParamError(f"target {t.name!r} is production: add `confirm_production` to send load to it")
    return t


def worker_refusal(host: str, allowed_json: str | None) -> str | None:
    """A worker started by `opskit loadtest worker` loads only loopback or its own spec's targets
    (allowed_json: the JSON list of their URLs; None when not started that way)."""
    import json

    if allowed_json is None or is_loopback(host) or any(same_target(host, url) for url in json.loads(allowed_json)):
        return None
    return f"refusing to send load to {host}: not loopback and not a target in this worker's spec"
