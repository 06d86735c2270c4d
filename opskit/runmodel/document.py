"""A results document's text and top level: JSON parsed, schema_version checked, or UnreadableResults."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from opskit.runmodel.results import READABLE_VERSIONS, SCHEMA_VERSION


class UnreadableResults(ValueError):
    """The results cannot answer the question. kind: "missing" or "unreadable" (the file itself),
    "empty", "json" (truncated or corrupt), "schema" (not a results file of this version), or
    "content" (a key a reader needs is missing or malformed)."""

    def __init__(self, message: str, kind: str = "content") -> None:
        super().__init__(message)
        self.kind = kind


def parse(text: str, name: str = "results.json") -> Mapping[str, Any]:
    """A results document's text parsed and its schema_version checked (not yet its blocks)."""
    if not text.strip():
        raise UnreadableResults(f"{name}: the file is empty", "empty")
    try:
        data = json.loads(text, parse_int=_int)
    except RecursionError:
        raise UnreadableResults(f"{name}: not a results file: JSON nested too deeply", "json") from None
    except json.JSONDecodeError as exc:
        # a writer killed mid-write leaves a prefix: say so, it is the usual cause and not the user's typo
        stripped = text.strip()
        cut = exc.pos >= len(text.rstrip()) - 1 or (stripped.startswith("{") and not stripped.endswith("}"))
        what = f"truncated, the file ends early (column {exc.colno}: {exc.msg})" if cut else \
            f"{exc.msg} (column {exc.colno})"
        raise UnreadableResults(f"{name}:{exc.lineno}: not valid JSON: {what}", "json") from None
    return check(data, name)


def _int(text: str) -> int | float:
    # an integer no float can hold (1e400 written out) becomes inf, which every reader refuses with the
    # key path ("expected a number"), instead of an OverflowError deep in the arithmetic
    # (the length test first: int() of more than 4,300 digits raises ValueError in Python 3.11)
    if len(text.lstrip("-")) <= 18:
        return int(text)
    return float("-inf") if text.startswith("-") else float("inf")


def check(data: object, name: str = "results.json") -> Mapping[str, Any]:
    """The top level of a results document: an object of the schema_version this opskit reads."""
    if not isinstance(data, dict):
        raise UnreadableResults(f"{name}: not a results file: expected a JSON object at the top level", "schema")
    version = data.get("schema_version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise UnreadableResults(f"{name}: schema_version is {version!r}; this opskit reads schema_version "
                                f"{SCHEMA_VERSION} (and {READABLE_VERSIONS[0]}) (docs/results-schema.md)", "schema")
    return data
