"""Parsers of what a client sends outside the asset fields: path ids, limits, cursors, JSON bodies.

Pure: text or bytes in, a value or an ApiError with a 4xx status out, never another exception (the
property tests in tests/assetsvc/test_params.py hold them to that).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from opskit.assetsvc.errors import ApiError

MAX_LIMIT = 500
DEFAULT_LIMIT = 50
MAX_ID = 2**63 - 1  # SQLite's largest integer; a larger number cannot be bound, let alone stored
# ASCII digits only: str.isdigit() accepts '²' and other Unicode digits that int() then refuses (a 500)
_DIGITS = re.compile(r"[0-9]{1,19}")


def parse_id(raw: str) -> int | None:
    """An asset id from the path; None when it cannot name an asset (the caller answers 404)."""
    if not _DIGITS.fullmatch(raw):
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None


def parse_limit(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LIMIT
    if _DIGITS.fullmatch(raw) and 1 <= int(raw) <= MAX_LIMIT:
        return int(raw)
    shown = raw if len(raw) <= 40 else raw[:40] + "..."
    raise ApiError(400, f"limit must be an integer from 1 to {MAX_LIMIT}, got {shown!r}")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"a:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        kind, _, value = text.partition(":")
        if kind == "a" and _DIGITS.fullmatch(value) and int(value) <= MAX_ID:
            return int(value)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise ApiError(400, "cursor is invalid (use next_cursor from the previous page)")


def parse_json(body: bytes) -> Any:
    """A request body as JSON. Deep nesting (RecursionError) and integers too long for Python to read
    (a plain ValueError since 3.11) are the client's error, like any other malformed JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ApiError(400, "the JSON is nested too deeply") from None
    except ValueError as exc:
        raise ApiError(400, f"the JSON cannot be read: {exc}") from None
