"""The type of data that really is arbitrary JSON (or YAML of the same shapes) as it crosses the wire or
a file: a JSON Schema, a journal record's event fields, a playbook step's captures. Data whose shape
opskit knows gets its own dataclass or TypedDict instead."""

from __future__ import annotations

from typing import TypeAlias

JSONScalar: TypeAlias = str | int | float | bool | None
JSONValue: TypeAlias = JSONScalar | list["JSONValue"] | dict[str, "JSONValue"]
JSONObject: TypeAlias = dict[str, JSONValue]
