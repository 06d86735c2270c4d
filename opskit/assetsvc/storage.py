"""The storage interface. The app depends only on this protocol; SQLite (sqlite.py) is the embedded
default and a PostgreSQL implementation would be a second class with the same methods."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

# (address, latitude, longitude): a validated asset as the client gives it
NewAsset = tuple[str, float, float]
# A batch of validated assets flattened into one list: address, latitude, longitude, address, ... Uploads
# use it because the parser then builds no tuple per row and the store can bind many rows per statement.
FlatAssets = list[str | float]


@dataclass(frozen=True)
class CreateRequest:
    """One POST /api/assets: its company and validated assets (a batch of writes holds many)."""

    company_id: str
    rows: Sequence[NewAsset]


@dataclass(frozen=True)
class Rejected:
    """The store refused this request's assets (a constraint, text it cannot hold); the batch's other
    requests are stored. `message` is for the client."""

    message: str


@dataclass(frozen=True)
class KeyRecord:
    company_id: str
    tier: str
    key_id: str  # a stable, non-secret id of the key (rate-limit bucket, logs)


@dataclass(frozen=True)
class CompanyStats:
    company_id: str
    assets: int
    first_created_at: str | None
    last_created_at: str | None
    min_latitude: float | None
    max_latitude: float | None
    min_longitude: float | None
    max_longitude: float | None


class BulkWriter(Protocol):
    """One upload: rows go in batches (each its own short transaction, so a slow client never holds the
    write lock); commit() keeps them all, rollback() removes every batch already written."""

    def add(self, flat: FlatAssets) -> None:
        """Insert a batch given as FlatAssets (its length is a multiple of 3)."""
        ...

    def commit(self) -> int: ...
    def rollback(self) -> None: ...


class Storage(Protocol):
    def list_json(self, company_id: str, after_id: int, limit: int) -> tuple[str, int | None]:
        """The page as a JSON array text (ready to send) and the last id when more may follow."""
        ...

    def get_json(self, company_id: str, asset_id: int) -> str | None: ...
    def create(self, company_id: str, rows: Sequence[NewAsset]) -> list[dict[str, object]]: ...
    def bulk(self, company_id: str) -> BulkWriter: ...
    def delete(self, company_id: str, ids: Sequence[int]) -> int: ...
    def stats(self, company_id: str) -> CompanyStats: ...
    def totals(self) -> tuple[int, int]:
        """(assets stored, bytes used by the store)."""
        ...

    def lookup_key(self, key: str) -> KeyRecord | None: ...
    def create_key(self, company_id: str, tier: str) -> str: ...
    def revoke_key(self, key_id: str) -> KeyRecord | None:
        """Delete a key by its id; the revoked key's record, or None when no key has that id."""
        ...

    def discard_unfinished_uploads(self, pid: int | None = None) -> int:
        """Delete rows committed by uploads that never finished (of worker `pid`, or all when None: call
        only while no worker serves). Returns the rows deleted."""
        ...

    def seed(self, rows: Iterable[tuple[str, str, float, float, str]]) -> int: ...
    def changed(self) -> bool | frozenset[str]:
        """What another process may have written since the last call: False for nothing, the companies
        whose assets changed when the store knows them (drop their cached pages), else True (drop all)."""
        ...

    def check(self) -> None:
        """Raise when the store cannot answer (the /health probe)."""
        ...

    def close(self) -> None: ...
