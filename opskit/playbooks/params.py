"""Parameters: parsed, typed and validated before anything runs. Secrets come from the environment
or a file, never from the command line (where they would sit in shell history and `ps`)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.errors import UsageError
from opskit.playbooks.schema import ParamSpec, Playbook

# a parameter's value after checking: its declared type (integer, number, string, boolean), None when unset
ParamValue = str | int | float | bool | None


@dataclass(frozen=True)
class ParamValues:
    values: dict[str, ParamValue]
    secret_names: frozenset[str]

    @property
    def secrets(self) -> list[str]:
        return [str(self.values[n]) for n in self.secret_names if self.values.get(n) not in (None, "")]

    def public(self) -> dict[str, ParamValue]:
        """The values with secrets replaced by *** (what a plan, a journal and a listing show)."""
        return {k: ("***" if k in self.secret_names else v) for k, v in self.values.items()}


def parse_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"-p {pair!r}: expected NAME=VALUE")
        if key in out:
            raise UsageError(f"-p {key}: given twice")
        out[key] = value
    return out


def resolve_params(
    playbook: Playbook,
    given: Mapping[str, object],
    env: Mapping[str, str],
    *,
    where: str = "",
) -> ParamValues:
    """Typed values for every parameter, or one UsageError listing every problem."""
    prefix = f"{where}: " if where else ""
    problems: list[str] = []
    unknown = sorted(set(given) - set(playbook.params))
    for name in unknown:
        import difflib

        close = difflib.get_close_matches(name, list(playbook.params), n=1)
        problems.append(f"unknown parameter {name!r}" + (f" (did you mean {close[0]!r}?)" if close else
                                                           f"; parameters: {', '.join(playbook.params) or 'none'}"))
    values: dict[str, ParamValue] = {}
    for name, spec in playbook.params.items():
        try:
            value = _value_for(name, spec, given, env)
            if value is None:
                if spec.is_required:
                    raise ValueError(_missing(name, spec))
                values[name] = None
                continue
            values[name] = check_value(name, spec, value)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageError(f"{prefix}{len(problems)} parameter problem(s)", details=problems)
    secret = frozenset(n for n, s in playbook.params.items() if s.secret)
    return ParamValues(values, secret)


def _missing(name: str, spec: ParamSpec) -> str:
    if spec.from_env:
        return f"{name}: required; set the environment variable {spec.from_env}" + (
            f" (or {spec.from_env}_FILE to a file holding it)" if spec.secret else f" or pass -p {name}=VALUE")
    if spec.from_file:
        return f"{name}: required; the file {spec.from_file} is missing or empty"
    return f"{name}: required; pass -p {name}=VALUE"


def _value_for(name: str, spec: ParamSpec, given: Mapping[str, object], env: Mapping[str, str]) -> object:
    if name in given:
        if spec.secret:
            # on the command line a secret lands in shell history, CI logs and `ps`
            raise ValueError(f"{name}: is secret; set it through the environment "
                             f"({spec.from_env or spec.from_file}), not -p")
        return given[name]
    if spec.from_env:
        if env.get(spec.from_env):
            return env[spec.from_env]
        file_var = env.get(f"{spec.from_env}_FILE")
        if file_var:
            return _read_secret_file(name, Path(file_var))
    if spec.from_file:
        path = Path(spec.from_file).expanduser()
        if path.exists():
            return _read_secret_file(name, path)
    return spec.default


def secret_env_names(playbook: Playbook) -> frozenset[str]:
    """The environment variables the secret parameters are read from (NAME and NAME_FILE)."""
    names = [spec.from_env for spec in playbook.params.values() if spec.secret and spec.from_env]
    return frozenset(names + [f"{n}_FILE" for n in names])


def _read_secret_file(name: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror}") from None
    value = text.rstrip("\r\n")
    return value or None  # type: ignore[return-value]


def check_value(name: str, spec: ParamSpec, raw: object) -> Any:
    """Convert raw (a -p string, a default, or a Python value from a handoff) and check constraints."""
    value = _convert(name, spec, raw)
    if spec.enum is not None and value not in spec.enum:
        raise ValueError(f"{name}: must be one of {', '.join(map(str, spec.enum))}, got {_show(spec, value)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if spec.minimum is not None and value < spec.minimum:
            raise ValueError(f"{name}: must be at least {spec.minimum:g}, got {value}")
        if spec.maximum is not None and value > spec.maximum:
            raise ValueError(f"{name}: must be at most {spec.maximum:g}, got {value}")
    if isinstance(value, str):
        if spec.min_length is not None and len(value) < spec.min_length:
            raise ValueError(f"{name}: must be at least {spec.min_length} characters, got {len(value)}")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise ValueError(f"{name}: must be at most {spec.max_length} characters, got {len(value)}")
        if spec.pattern is not None and not re.fullmatch(spec.pattern, value):
            raise ValueError(f"{name}: must match {spec.pattern!r}, got {_show(spec, value)}")
        if value.startswith("-") and not spec.allow_leading_dash and not spec.secret:
            raise ValueError(f"{name}: must not start with '-' (it could be read as an option), "
                             f"got {_show(spec, value)}")
        if "\x00" in value:
            raise ValueError(f"{name}: must not contain a NUL byte")
    return value


def _convert(name: str, spec: ParamSpec, raw: object) -> Any:
    if spec.type == "string":
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise ValueError(f"{name}: expected a string, got {type(raw).__name__}")
        return raw if isinstance(raw, str) else str(raw)
    if spec.type == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        raise ValueError(f"{name}: expected true or false, got {_show(spec, raw)}")
    if spec.type == "integer":
        if isinstance(raw, bool):
            raise ValueError(f"{name}: expected an integer, got {raw}")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str) and re.fullmatch(r"\s*[-+]?[0-9]+\s*", raw):
            if len(raw.strip().lstrip("+-")) > 18:  # no count, port or size needs more; int() fails past 4,300
                raise ValueError(f"{name}: integer too large ({len(raw.strip())} digits)")
            return int(raw)
        raise ValueError(f"{name}: expected an integer, got {_show(spec, raw)}")
    # number
    if isinstance(raw, bool):
        raise ValueError(f"{name}: expected a number, got {raw}")
    try:
        number = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {_show(spec, raw)}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {_show(spec, raw)}")
    return number


def _show(spec: ParamSpec, value: object) -> str:
    return "***" if spec.secret else repr(value)
