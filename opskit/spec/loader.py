"""Loading YAML strictly: duplicate keys are errors, every error names file, line and key path,
and an unknown key comes with the closest valid one."""

from __future__ import annotations

import difflib
import hashlib
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from opskit.errors import ConfigError

Loc = tuple[str | int, ...]
M = TypeVar("M", bound=BaseModel)

DEFAULT_SPEC = "opskit.yaml"


@dataclass(frozen=True)
class Located:
    """Parsed YAML plus the line (1-based) of every key path in it."""

    data: Any
    lines: dict[Loc, int]
    path: str

    def line_of(self, loc: Loc) -> int:
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc, 1)


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def parse_yaml(text: str, path: str) -> Located:
    """yaml.safe_load semantics, plus duplicate-key errors and a line for every key path."""
    try:
        return _parse_yaml(text, path)
    except RecursionError:
        # PyYAML (and our walk) recurse per nesting level: thousands of '[' are not a config
        raise ConfigError(f"{path}: the YAML is nested too deeply to read") from None


def _parse_yaml(text: str, path: str) -> Located:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{line}: not valid YAML: {problem}") from None
    if node is None:
        return Located(None, {}, path)
    _check_aliases(node, path)
    lines: dict[Loc, int] = {(): node.start_mark.line + 1}
    problems: list[str] = []
    _walk(node, (), lines, problems, path, set())
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s)", details=problems)
    loader = yaml.SafeLoader(text)
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        # e.g. a !!python/object tag: safe_load semantics refuse it; say where, on one line
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{line}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    return Located(data, lines, path)


# Aliases let a few lines stand for a huge document ("billion laughs") or a cycle; no input opskit reads
# needs either, and every reader would otherwise walk the expansion (RecursionError, or minutes of CPU).
MAX_EXPANDED_NODES = 1_000_000


def _check_aliases(root: yaml.Node, path: str) -> None:
    """Refuse a recursive alias, and aliases that expand to more than MAX_EXPANDED_NODES nodes."""
    sizes: dict[int, int] = {}
    # iterative post-order walk over the node graph (nodes reached twice are aliases: counted, not re-walked)
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    on_path: set[int] = set()
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_EXPANDED_NODES:
                raise ConfigError(f"{path}:{node.start_mark.line + 1}: YAML aliases expand to "
                                  f"more than {MAX_EXPANDED_NODES:,} values")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError(f"{path}:{node.start_mark.line + 1}: a YAML alias refers to "
                              f"the node that contains it (a recursive structure)")
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise ConfigError(f"{path}:{child.start_mark.line + 1}: a YAML alias refers "
                                  f"to the node that contains it (a recursive structure)")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int], problems: list[str], path: str,
          seen_nodes: set[int]) -> None:
    # an aliased node is walked once: its key paths get lines where it is defined; uses fall back to the alias
    if id(node) in seen_nodes:
        return
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            line = key_node.start_mark.line + 1
            if key in seen:
                problems.append(f"{path}:{line}: {format_loc(loc + (key,))}: duplicate key "
                                f"(first at line {seen[key]})")
            seen[key] = line
            lines[loc + (key,)] = line
            _walk(value_node, loc + (key,), lines, problems, path, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[loc + (i,)] = item.start_mark.line + 1
            _walk(item, loc + (i,), lines, problems, path, seen_nodes)
    elif isinstance(node, yaml.ScalarNode) and len(node.value) > 300 and _resolves_to_number(node):
        # int() refuses more than 4,300 digits with a ValueError, and nothing opskit reads needs 300
        problems.append(f"{path}:{node.start_mark.line + 1}: {format_loc(loc)}: a number of "
                        f"{len(node.value):,} characters is too large")


def _resolves_to_number(node: yaml.ScalarNode) -> bool:
    return node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")


def read_text(path: str | Path) -> str:
    """An input file's text (UTF-8), or a ConfigError naming the file and why it cannot be read."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"{p}: is a folder, not a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None


def read_located(path: str | Path) -> Located:
    return parse_yaml(read_text(path), str(path))


def validate(model: type[M], located: Located) -> M:
    """Build the model, or raise one ConfigError listing every problem as file:line: key.path: what."""
    if located.data is None:
        raise ConfigError(f"{located.path}:1: the file is empty")
    if not isinstance(located.data, dict):
        raise ConfigError(f"{located.path}:1: expected a mapping at the top level")
    try:
        return model.model_validate(located.data)
    except ValidationError as exc:
        described = [_describe(model, located, err) for err in exc.errors()]
        problems = [text for _, text in sorted(described, key=lambda d: d[0])]
        raise ConfigError(f"{located.path}: {len(problems)} problem(s)", details=problems) from None


def _describe(model: type[BaseModel], located: Located, err: Any) -> tuple[int, str]:
    loc = _clean_loc(err["loc"])
    line = located.line_of(loc)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if err["type"] == "extra_forbidden":
        valid = _field_names(model, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        msg = "unknown key" + (f" (did you mean '{close[0]}'?)" if close else
                               (f"; valid keys: {', '.join(valid)}" if valid else ""))
    elif err["type"] == "missing":
        msg = "required key is missing"
    return line, f"{located.path}:{line}: {format_loc(loc)}: {msg}"


def _clean_loc(loc: tuple[Any, ...]) -> Loc:
    # pydantic adds the validator's type name for unions and tagged models; keep only real keys
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        out.append(part)
    return tuple(out)


def _field_names(model: type[BaseModel], loc: Loc) -> list[str]:
    """The keys that are valid at loc (aliases as written in YAML)."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return []
    current = _unwrap_model(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _step(tp: Any, part: str | int) -> Any:
    tp = _unwrap_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, field in tp.model_fields.items():
            if part in (name, field.alias):
                return field.annotation
        return None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (list, tuple) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return _unwrap_optional(args[0])
    return tp


def _unwrap_model(tp: Any) -> Any:
    return _unwrap_optional(tp)


def spec_path(path: str | None) -> Path:
    return Path(path or os.environ.get("OPSKIT_SPEC") or DEFAULT_SPEC)


def file_hash(path: str | Path) -> str:
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()
