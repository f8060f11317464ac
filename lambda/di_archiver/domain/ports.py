"""The small protocols the domain talks to; adapters implement them."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An archive object's key and user metadata (all values strings, as S3 keeps them)."""

    key: str
    size: int
    metadata: Mapping[str, str] = field(default_factory=dict)


class ArchiveStore(Protocol):
    """Where archive objects live: S3, or a local directory with the same key layout."""

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        """Write ``body`` durably under ``key``; return only once it is readable."""

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when absent."""

    def head(self, key: str) -> StoredObject | None:
        """The object's metadata, or ``None`` when absent."""

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Every object under ``prefix`` in key order (metadata may be empty)."""

    def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are not an error."""


class CheckpointStore(Protocol):
    """One checkpoint document per organisation (SSM Parameter Store or a local file)."""

    def load(self, org_id: str) -> Mapping[str, Any] | None:
        """The stored document, or ``None`` when the org has never been archived."""

    def save(self, org_id: str, document: Mapping[str, Any]) -> None:
        """Overwrite the org's document durably."""


class EventSource(Protocol):
    """Reads DI events; the HTTP client implements it, tests may fake it."""

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[list[dict[str, Any]]]:
        """Pages (lists of raw event objects) with ``start <= ts`` and ``ts`` up to ``end``."""

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        """DI's ``/events/count`` for the same window."""
