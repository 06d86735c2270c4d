"""Parameters a locustfile reads (tenant keys, path, ...). Set by the runner; a locustfile run with
plain `locust -f` can get them from the OPSKIT_LOADTEST_PARAMS environment variable (JSON)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

_params: dict[str, Any] = {}


def params() -> dict[str, Any]:
    if not _params and os.environ.get("OPSKIT_LOADTEST_PARAMS"):
        _params.update(json.loads(os.environ["OPSKIT_LOADTEST_PARAMS"]))
    return _params


def set_params(values: Mapping[str, Any]) -> None:
    _params.clear()
    _params.update(values)
