"""In-memory fakes of the engine's ports: a DI source with the API's ms filtering, two stores."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from di_archiver.archive_format import decode_lines
from di_archiver.domain.ports import StoredObject
from di_archiver.raw_events import RawEvent, parse_page
from di_archiver.timestamps import NS_PER_MS, parse_timestamp_ns

ORG = "64a0c0ffee0000000000a001"
ORG_B = "64a0c0ffee0000000000b002"


def page_of(events: list[dict[str, Any]]) -> list[RawEvent]:
    """A page as the DI client hands it out: the events' bytes as a compact JSON server sends
    them, parsed by the real page parser (so a broken timestamp raises as it would)."""
    return parse_page(json.dumps(events, ensure_ascii=False, separators=(",", ":")).encode())


def event(ts: str, event_id: str, service: str = "directory", **extra: Any) -> dict[str, Any]:
    return {"id": event_id, "service": service, "timestamp": ts, "organization": ORG, **extra}


@dataclass
class FakeSource:
    """Filters like DI: by timestamp truncated to ms, start inclusive, end inclusive (or not)."""

    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    page_size: int = 3
    end_inclusive: bool = True
    errors: dict[str, Exception] = field(default_factory=dict)
    calls: list[tuple[str, int, int]] = field(default_factory=list)
    count_calls: list[tuple[str, int, int]] = field(default_factory=list)

    def add(self, org_id: str, *events: dict[str, Any]) -> None:
        self.events.setdefault(org_id, []).extend(events)

    def _matching(self, org_id: str, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        lo, hi = start_ns // NS_PER_MS, end_ns // NS_PER_MS
        found = []
        for item in self.events.get(org_id, []):
            ms = parse_timestamp_ns(item["timestamp"]) // NS_PER_MS
            if lo <= ms and (ms <= hi if self.end_inclusive else ms < hi):
                found.append(item)
        found.sort(key=lambda e: parse_timestamp_ns(e["timestamp"]) // NS_PER_MS)
        return found

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[list[RawEvent]]:
        self.calls.append((org_id, start_ns, end_ns))
        if org_id in self.errors:
            raise self.errors[org_id]
        found = self._matching(org_id, start_ns, end_ns)
        for i in range(0, len(found), self.page_size):
            yield page_of(found[i : i + self.page_size])

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        self.count_calls.append((org_id, start_ns, end_ns))
        return len(self._matching(org_id, start_ns, end_ns))


@dataclass
class MemoryStore:
    objects: dict[str, tuple[bytes, dict[str, str]]] = field(default_factory=dict)
    puts: list[str] = field(default_factory=list)

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        self.puts.append(key)
        self.objects[key] = (bytes(body), dict(metadata))

    def get(self, key: str) -> bytes | None:
        found = self.objects.get(key)
        return None if found is None else found[0]

    def head(self, key: str) -> StoredObject | None:
        found = self.objects.get(key)
        return None if found is None else StoredObject(key, len(found[0]), dict(found[1]))

    def list(self, prefix: str) -> Iterator[StoredObject]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                body, meta = self.objects[key]
                yield StoredObject(key, len(body), dict(meta))

    def delete(self, key: str) -> None:
        self.objects.pop(key, None)

    def lines(self, key: str) -> list[bytes]:
        return decode_lines(self.objects[key][0])

    def content(self) -> dict[str, list[bytes]]:
        """Every object's decoded lines: what the archive holds, fetch times aside."""
        return {key: self.lines(key) for key in sorted(self.objects)}


@dataclass
class MemoryCheckpoints:
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)
    saves: int = 0

    def load(self, org_id: str) -> Mapping[str, Any] | None:
        found = self.documents.get(org_id)
        return dict(found) if isinstance(found, dict) else found

    def save(self, org_id: str, document: Mapping[str, Any]) -> None:
        self.saves += 1
        self.documents[org_id] = dict(document)


@dataclass
class RecordingObserver:
    buckets: list[Any] = field(default_factory=list)
    orgs: list[Any] = field(default_factory=list)
    warnings: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def on_bucket(self, result: Any) -> None:
        self.buckets.append(result)

    def on_org(self, result: Any) -> None:
        self.orgs.append(result)

    def on_warning(self, message: str, **fields: object) -> None:
        self.warnings.append((message, fields))
