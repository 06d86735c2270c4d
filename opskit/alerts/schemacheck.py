"""Offline validation of dashboard JSON against the JSON schemas of grafana-foundation-sdk (vendored in
schemas/, see schemas/SOURCE.md): the dashboard, each panel's options and field config for its type, and
each Prometheus query."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from opskit.jsontypes import JSONObject

PANEL_SCHEMAS = ("timeseries", "stat")


@cache
def _schema(name: str) -> JSONObject:
    text = resources.files("opskit.alerts").joinpath("schemas", f"{name}.jsonschema.json").read_text("utf-8")
    data: JSONObject = json.loads(text)
    return data


def _validator(name: str, definition: str | None = None) -> Any:
    import jsonschema

    schema = _schema(name)
    if definition is not None:
        schema = {**schema, "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft7Validator(schema)


def _errors(validator: Any, doc: Any, where: str) -> list[str]:
    from jsonschema.exceptions import best_match

    out = []
    for error in validator.iter_errors(doc):
        error = best_match([error]) if not error.context else best_match(error.context)
        path = "/".join(str(p) for p in error.absolute_path)
        out.append(f"{where}{'/' + path if path else ''}: {error.message[:300]}")
    return out


def validate_dashboard(doc: Any) -> list[str]:
    """Every problem as 'path: message'; empty when the dashboard is valid."""
    problems = _errors(_validator("dashboard"), doc, "dashboard")
    if not isinstance(doc, dict):
        return problems
    if doc.get("schemaVersion") != 42:
        problems.append(f"dashboard/schemaVersion: expected 42, got {doc.get('schemaVersion')!r}")
    panels = doc.get("panels") or []
    if not isinstance(panels, list):  # the dashboard schema has said so already; nothing to walk
        return problems
    for i, panel in enumerate(panels):
        where = f"dashboard/panels/{i}"
        if not isinstance(panel, dict):
            continue  # reported by the dashboard schema
        kind = panel.get("type")
        if isinstance(kind, str) and kind in PANEL_SCHEMAS:
            problems += _errors(_validator(kind, "Options"), panel.get("options", {}), f"{where}/options")
            field_config = panel.get("fieldConfig")
            defaults = field_config.get("defaults") if isinstance(field_config, dict) else None
            custom = defaults.get("custom") if isinstance(defaults, dict) else None
            definitions = _schema(kind).get("definitions")
            if custom is not None and isinstance(definitions, dict) and "FieldConfig" in definitions:
                problems += _errors(_validator(kind, "FieldConfig"), custom, f"{where}/fieldConfig/defaults/custom")
        targets = panel.get("targets") or []
        for j, target in enumerate(targets if isinstance(targets, list) else []):
            problems += _errors(_validator("prometheus"), target, f"{where}/targets/{j}")
    return problems
