"""List pages kept as ready-to-send bytes, bounded in bytes (a count bound let one worker pass 1 GB)."""

from __future__ import annotations

from collections.abc import Iterable

# what a cached entry costs beyond its bytes: the dict slot, the key tuple and the bytes object header
ENTRY_OVERHEAD = 200

PageKey = tuple[str, int, int]  # (company, after id, limit)


class PageCache:
    """Oldest-first eviction: pages are dropped whenever their company's data changes, so the set is young
    and recency tracking (a move per hit on the hot path) would buy little. Each company's keys are kept
    apart so a write drops that company's pages without a scan of everyone's."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._pages: dict[PageKey, bytes] = {}
        self._by_company: dict[str, set[PageKey]] = {}

    def get(self, key: PageKey) -> bytes | None:
        return self._pages.get(key)

    def put(self, key: PageKey, body: bytes) -> None:
        cost = len(body) + ENTRY_OVERHEAD
        if cost > self.max_bytes:
            return  # larger than the whole budget: never kept
        self._pop(key)
        pages = self._pages
        while self.size + cost > self.max_bytes:
            self._pop(next(iter(pages)))
        pages[key] = body
        self.size += cost
        self._by_company.setdefault(key[0], set()).add(key)

    def _pop(self, key: PageKey) -> None:
        old = self._pages.pop(key, None)
        if old is None:
            return
        self.size -= len(old) + ENTRY_OVERHEAD
        keys = self._by_company[key[0]]
        keys.discard(key)
        if not keys:
            del self._by_company[key[0]]

    def drop(self, companies: Iterable[str]) -> None:
        """Forget the pages of these companies (their data changed); everyone else's stay."""
        for company in companies:
            for key in self._by_company.pop(company, ()):
                self.size -= len(self._pages.pop(key)) + ENTRY_OVERHEAD

    def clear(self) -> None:
        self._pages.clear()
        self._by_company.clear()
        self.size = 0

    def __len__(self) -> int:
        return len(self._pages)
