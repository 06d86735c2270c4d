"""What a valid asset is. Pure: values in, a validated (address, latitude, longitude) or an error out."""

from __future__ import annotations

import math
import re
from typing import Any

from opskit.assetsvc.storage import NewAsset

MAX_ADDRESS = 500
INPUT_FIELDS = ("address", "latitude", "longitude", "company_id")
READ_ONLY = ("id", "created_at", "updated_at")
# JSON may escape a lone surrogate ("\ud800"): a Python str can hold it, UTF-8 (and so the store) cannot
_SURROGATE = re.compile("[\ud800-\udfff]")


class FieldError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def check_address(value: Any) -> str:
    if not isinstance(value, str):
        raise FieldError("address", f"expected a string, got {_kind(value)}")
    value = value.strip()
    if not value:
        raise FieldError("address", "must not be empty")
    if len(value) > MAX_ADDRESS:
        raise FieldError("address", f"longer than {MAX_ADDRESS} characters")
    if _SURROGATE.search(value):
        raise FieldError("address", "holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
    return value


def check_coordinate(field: str, value: Any, bound: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(field, f"expected a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer with hundreds of digits
        raise FieldError(field, "is far outside the range of a coordinate") from None
    return check_range(field, number, bound)


def check_range(field: str, value: float, bound: float) -> float:
    if not math.isfinite(value):
        raise FieldError(field, "must be a finite number")
    if not -bound <= value <= bound:
        raise FieldError(field, f"{value:g} is outside [-{bound:g}, {bound:g}]")
    return value


def parse_coordinate(field: str, text: str, bound: float) -> float:
    """A CSV cell: text that must be a number in range."""
    try:
        value = float(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise FieldError(field, f"{shown!r} is not a number") from None
    return check_range(field, value, bound)


def validate_object(obj: Any, company_id: str) -> NewAsset:
    """One JSON asset. Unknown fields are errors (a typo must not silently drop data)."""
    if not isinstance(obj, dict):
        raise FieldError("asset", f"expected a JSON object, got {_kind(obj)}")
    for name in obj:
        if name in READ_ONLY:
            raise FieldError(name, "is set by the service and cannot be given")
        if name not in INPUT_FIELDS:
            # the name is the client's text: quoted when empty or odd, cut short when long
            shown = name if name.isidentifier() and len(name) <= 40 else repr(name[:40])
            raise FieldError(shown, f"unknown field (expected {', '.join(INPUT_FIELDS[:3])})")
    check_company(obj.get("company_id"), company_id)
    missing = [f for f in INPUT_FIELDS[:3] if f not in obj]
    if missing:
        raise FieldError(missing[0], "is required")
    return (
        check_address(obj["address"]),
        check_coordinate("latitude", obj["latitude"], 90.0),
        check_coordinate("longitude", obj["longitude"], 180.0),
    )


def check_company(value: Any, company_id: str) -> None:
    # the key decides the company; a company_id is accepted only when it agrees
    if value is not None and value != "" and value != company_id:
        shown = repr(value)
        shown = shown if len(shown) <= 60 else shown[:60] + "..."
        raise FieldError("company_id", f"{shown} does not match the API key's company")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
