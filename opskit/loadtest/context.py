"""Parameters a locustfile reads (tenant keys, path, ...). Set by the runner; a locustfile run with
plain `locust -f` can get them from the OPSKIT_LOADTEST_PARAMS environment variable (JSON).

`process()` says which of the run's generator processes this is, so a locustfile can own its data per
process (loadtests/assets.py: its own tenants, or its own ids) instead of reading what another deletes."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

_params: dict[str, Any] = {}
_process = [0, 1]  # this generator process's index, and how many there are


def params() -> dict[str, Any]:
    if not _params and os.environ.get("OPSKIT_LOADTEST_PARAMS"):
        _params.update(json.loads(os.environ["OPSKIT_LOADTEST_PARAMS"]))
    return _params


def set_params(values: Mapping[str, Any]) -> None:
    _params.clear()
    _params.update(values)


def process() -> tuple[int, int]:
    """(index, count) of this generator process in the run; (0, 1) outside a multi-process run."""
    return _process[0], _process[1]


def set_process(index: int, count: int) -> None:
    _process[:] = [index, max(count, 1)]


@dataclass(frozen=True)
class Share:
    """What one generator process may touch. With at least as many tenants as processes each process gets
    its own tenants; with fewer, the tenants are shared and each id belongs to one process (id % count),
    so no process reads or deletes an id another one may delete."""

    index: int = 0
    count: int = 1
    shared: bool = False

    def owns(self, item_id: object) -> bool:
        if not self.shared:
            return True
        return isinstance(item_id, int) and item_id % self.count == self.index


def share(tenants: Sequence[T], index: int | None = None, count: int | None = None) -> tuple[list[T], Share]:
    """This process's tenants and the rule for its ids (index, count: process() by default)."""
    if index is None or count is None:
        index, count = process()
    if count <= 1:
        return list(tenants), Share()
    if len(tenants) >= count:
        return list(tenants[index::count]), Share(index, count, shared=False)
    return list(tenants), Share(index, count, shared=True)
