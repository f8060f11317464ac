"""In-memory fakes for seal/reconcile/verify tests: a store, a DI source, and an engine stand-in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from di_archiver.archive_format import encode_lines, event_timestamp_ns, sort_key
from di_archiver.domain.ports import StoredObject
from di_archiver.layout import bucket_object_key, service_partition
from di_archiver.raw_events import RawEvent, raw_event_of, serialise_event
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND, format_timestamp_ns

ORG = "64a0c0ffee0000000000a001"
PREFIX = "di"
DAY0 = date(2026, 5, 1)
HOUR = 3600 * NS_PER_SECOND
DAY = 24 * HOUR


def day_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * NS_PER_SECOND


class Crash(Exception):
    """Injected failure (not an ArchiverError, like a Lambda timeout or a killed process)."""


class MemoryStore:
    """An ArchiveStore in a dict; mutation numbers in ``fail_at`` raise :class:`Crash`."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[bytes, dict[str, str]]] = {}
        self.mutations = 0
        self.fail_at: set[int] = set()
        self.puts: list[str] = []

    def _mutate(self) -> None:
        self.mutations += 1
        if self.mutations in self.fail_at:
            raise Crash(f"injected crash at mutation {self.mutations}")

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        self._mutate()
        self.objects[key] = (bytes(body), dict(metadata))
        self.puts.append(key)

    def get(self, key: str) -> bytes | None:
        item = self.objects.get(key)
        return item[0] if item else None

    def head(self, key: str) -> StoredObject | None:
        item = self.objects.get(key)
        return StoredObject(key, len(item[0]), dict(item[1])) if item else None

    def list(self, prefix: str) -> Iterator[StoredObject]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                body, meta = self.objects[key]
                yield StoredObject(key, len(body), dict(meta))

    def delete(self, key: str) -> None:
        self._mutate()
        self.objects.pop(key, None)


class MemoryCheckpoints:
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}

    def load(self, org_id: str) -> Mapping[str, Any] | None:
        return self.docs.get(org_id)

    def save(self, org_id: str, document: Mapping[str, Any]) -> None:
        self.docs[org_id] = dict(document)

    def close_through(self, org_id: str, ns: int, bucket_minutes: int = 60) -> None:
        self.save(
            org_id,
            {
                "schema_version": 1,
                "closed_through": format_timestamp_ns(ns),
                "bucket_minutes": bucket_minutes,
            },
        )


def make_event(index: int, ts_ns: int, service: str = "directory", **extra: Any) -> dict[str, Any]:
    return {
        "@version": "1",
        "id": f"{index:024x}",
        "service": service,
        "event_type": "user_update",
        "timestamp": format_timestamp_ns(ts_ns),
        "organization": ORG,
        "provider": None,
        "detail": {"n": index, "note": "ünïcode"},
        **extra,
    }


@dataclass
class FakeSource:
    """DI stand-in: events become visible at ``visible_at``; counts filter at ms resolution."""

    now: int = 0
    end_inclusive: bool = True
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    count_calls: int = 0

    def add(self, event: dict[str, Any], *, visible_at: int = 0) -> None:
        self.events.append((visible_at, event))

    def visible(self, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        return [
            e
            for v, e in self.events
            if v <= self.now and start_ns <= event_timestamp_ns(e) < end_ns
        ]

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[list[RawEvent]]:
        yield [raw_event_of(e) for e in self.visible(start_ns, end_ns)]

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        self.count_calls += 1
        lo, hi = start_ns // NS_PER_MS, end_ns // NS_PER_MS
        total = 0
        for v, e in self.events:
            ms = event_timestamp_ns(e) // NS_PER_MS
            if v <= self.now and lo <= ms and (ms <= hi if self.end_inclusive else ms < hi):
                total += 1
        return total


class FakeEngine:
    """Writes bucket objects like the engine: one object per (service, bucket)."""

    def __init__(self, source: FakeSource, store: MemoryStore, prefix: str = PREFIX) -> None:
        self.source, self.store, self.prefix = source, store, prefix
        self.snapshots: list[tuple[int, int]] = []

    def snapshot_bucket(self, org_id: str, start_ns: int, end_ns: int) -> int:
        self.snapshots.append((start_ns, end_ns))
        by_service: dict[str, list[tuple[tuple[int, str, bytes], bytes]]] = {}
        for event in self.source.visible(start_ns, end_ns):
            line = serialise_event(event)
            pair = (sort_key(event_timestamp_ns(event), event, line), line)
            by_service.setdefault(service_partition(event.get("service")), []).append(pair)
        for service, pairs in by_service.items():
            key = bucket_object_key(self.prefix, org_id, service, start_ns, end_ns)
            encoded = encode_lines(pairs)
            self.store.put(key, encoded.body, encoded.metadata(fetched_at_ns=self.source.now))
        return sum(len(p) for p in by_service.values())

    def archive_days(self, org_id: str, first: date, days: int) -> None:
        start = day_ns(first)
        for bucket in range(start, start + days * DAY, HOUR):
            self.snapshot_bucket(org_id, bucket, bucket + HOUR)


def populate(source: FakeSource, first: date, days: int, per_day: int = 30) -> None:
    """Deterministic events across services and hours, including ties and day-edge times."""
    services = ("directory", "sso", "systems")
    index = 0
    for d in range(days):
        base = day_ns(first) + d * DAY
        for i in range(per_day):
            ts = base + (i * 7919 * NS_PER_SECOND + i * 123_456_789) % DAY
            source.add(make_event(index, ts, services[i % 3]))
            index += 1
        source.add(make_event(index, base + DAY - 1, "sso"))  # the day's last nanosecond
        index += 1
        source.add(make_event(index, base, "directory"))  # exactly midnight
        index += 1
