"""`${params.x}` and `${capture.step.field}` references. Pure.

A string that is exactly one reference becomes the referenced value with its type intact
(`replicas: ${params.replicas}` is the integer 6). A reference inside a longer string
(`--replicas=${params.replicas}`) is substituted into that one string, which stays one argv
element: nothing is ever handed to a shell, so a value like `; rm -rf /` is just text."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

REF = re.compile(r"\$\{\s*(params|capture)\.([A-Za-z0-9_.-]+?)\s*\}")
MASK = "***"


class RefError(ValueError):
    """A reference that cannot be resolved; `path` is where in the step it was."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Deferred:
    """A capture that exists only once its step has run (shown in a plan as <capture.step.field>)."""

    ref: str

    def __str__(self) -> str:
        return f"<{self.ref}>"


@dataclass(frozen=True)
class Resolver:
    params: Mapping[str, Any]
    secret_names: frozenset[str] = frozenset()
    captures: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    mask: bool = False  # plan/display mode: secrets become ***
    defer_captures: bool = False  # plan mode: captures not known yet become Deferred

    def resolve(self, value: Any, path: tuple[str | int, ...] = ()) -> Any:
        if isinstance(value, dict):
            return {k: self.resolve(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = REF.fullmatch(value)
        if whole:
            return self._lookup(whole.group(1), whole.group(2), path)
        parts: list[str] = []
        pos = 0
        deferred = False
        for m in REF.finditer(value):
            parts.append(value[pos:m.start()])
            got = self._lookup(m.group(1), m.group(2), path)
            if isinstance(got, Deferred):
                deferred = True
            parts.append(_text(got))
            pos = m.end()
        parts.append(value[pos:])
        text = "".join(parts)
        return Deferred(text) if deferred and self.defer_captures else text

    def _lookup(self, scope: str, name: str, path: tuple[str | int, ...]) -> Any:
        if scope == "params":
            if name not in self.params:
                raise RefError(path, f"unknown parameter ${{params.{name}}}")
            if self.mask and name in self.secret_names:
                return MASK
            return self.params[name]
        step, _, rest = name.partition(".")
        if not rest:
            raise RefError(path, f"${{capture.{name}}}: name a field, e.g. ${{capture.{name}.stdout}}")
        if step not in self.captures:
            if self.defer_captures:
                return Deferred(f"capture.{name}")
            raise RefError(path, f"${{capture.{name}}}: step {step!r} has not run")
        current: Any = self.captures[step]
        for part in rest.split("."):
            if isinstance(current, Mapping) and part in current:
                current = current[part]
            elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
                current = current[int(part)]
            else:
                raise RefError(path, f"${{capture.{name}}}: step {step!r} captured no {rest!r}")
        return current


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def find_refs(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], str, str]]:
    """Every reference in a structure: (path, scope, name)."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from find_refs(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from find_refs(v, (*path, i))
    elif isinstance(value, str):
        for m in REF.finditer(value):
            yield path, m.group(1), m.group(2)


def starts_with_ref(value: Any) -> bool:
    return isinstance(value, str) and REF.match(value) is not None


def has_deferred(value: Any) -> bool:
    if isinstance(value, Deferred):
        return True
    if isinstance(value, dict):
        return any(has_deferred(v) for v in value.values())
    if isinstance(value, list):
        return any(has_deferred(v) for v in value)
    return False
