"""List pages kept as ready-to-send bytes, bounded in bytes (a count bound let one worker pass 1 GB)."""

from __future__ import annotations

from collections.abc import Hashable

# what a cached entry costs beyond its bytes: the dict slot, the key tuple and the bytes object header
ENTRY_OVERHEAD = 200


class PageCache:
    """Oldest-first eviction: pages are dropped wholesale whenever the store changes, so the set is young
    and recency tracking (a move per hit on the hot path) would buy little."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._pages: dict[Hashable, bytes] = {}

    def get(self, key: Hashable) -> bytes | None:
        return self._pages.get(key)

    def put(self, key: Hashable, body: bytes) -> None:
        cost = len(body) + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return  # larger than the whole budget: never kept
        old = self._pages.pop(key, None)
        if old is not None:
            self.size -= len(old) + ENTRY_OVERHEAD
        pages = self._pages
        while self.size + cost > self.max_bytes:
            oldest = next(iter(pages))
            self.size -= len(pages.pop(oldest)) + ENTRY_OVERHEAD
        pages[key] = body
        self.size += cost

    def clear(self) -> None:
        self._pages.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._pages)
