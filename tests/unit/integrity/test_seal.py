"""Sealing: one archival object per (org, service, day), manifests chained, buckets removed."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
from datetime import timedelta

import pytest

from di_archiver.archive_format import decode_lines, decompress
from di_archiver.domain.manifest import GENESIS_SHA256, Manifest, sha256_hex
from di_archiver.domain.seal import DaySealer, RecordingLockStore, Retention, list_org_objects
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import ArchiverError, IntegrityError, SettingsError
from di_archiver.layout import manifest_key, sealed_day_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    ORG,
    PREFIX,
    FakeEngine,
    FakeSource,
    MemoryStore,
    day_ns,
    make_event,
    populate,
)


def archived(days: int = 3, per_day: int = 30) -> tuple[FakeSource, MemoryStore, FakeEngine]:
    source = FakeSource(now=day_ns(DAY0) + (days + 1) * DAY)
    populate(source, DAY0, days, per_day)
    store = MemoryStore()
    engine = FakeEngine(source, store)
    engine.archive_days(ORG, DAY0, days)
    return source, store, engine


def sealer_for(store: object, source: FakeSource, **kwargs: object) -> DaySealer:
    return DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now, **kwargs)  # type: ignore[arg-type]


def events_of(store: MemoryStore, key: str) -> list[dict[str, object]]:
    body = store.get(key)
    assert body is not None
    return [json.loads(line) for line in decode_lines(body)]


def test_seal_merges_each_service_day_into_one_object_and_removes_buckets() -> None:
    # Given three archived days of hourly bucket objects over three services
    source, store, _ = archived()
    closed = day_ns(DAY0) + 3 * DAY

    # When the org is sealed
    results = sealer_for(store, source).seal_org(ORG, closed)

    # Then each day has exactly one object per service, holding every event once, in order
    assert [r.day for r in results] == [DAY0 + timedelta(days=i) for i in range(3)]
    objects = list_org_objects(store, PREFIX, ORG)
    assert objects.buckets == {}
    for i in range(3):
        day = DAY0 + timedelta(days=i)
        assert sorted(objects.sealed[day]) == ["directory", "sso", "systems"]
        archived_ids = [
            e["id"]
            for s in objects.sealed[day]
            for e in events_of(store, objects.sealed[day][s].key)
        ]
        expected = source.visible(day_ns(day), day_ns(day) + DAY)
        assert sorted(archived_ids) == sorted(e["id"] for e in expected)
        assert len(set(archived_ids)) == len(archived_ids)
    # And verify finds nothing wrong
    assert verify_archive(store, prefix=PREFIX).findings == []


def test_manifests_chain_from_genesis_and_record_di_count() -> None:
    # Given a sealed three-day archive
    source, store, _ = archived()
    sealer_for(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)

    # When the manifests are read
    raw = [store.get(manifest_key(PREFIX, ORG, DAY0 + timedelta(days=i))) for i in range(3)]
    manifests = [Manifest.from_bytes(data) for data in raw if data is not None]

    # Then the first links to genesis and each next one to the previous manifest's bytes
    assert manifests[0].previous_manifest_sha256 == GENESIS_SHA256
    for previous, data, manifest in zip(raw, raw[1:], manifests[1:], strict=False):
        assert previous is not None
        assert data is not None
        assert manifest.previous_manifest_sha256 == sha256_hex(previous)
    assert all(m.di_count == m.archived_count == 32 for m in manifests)
    assert all(m.to_bytes() == data for m, data in zip(manifests, raw, strict=True))


def test_sealed_object_is_no_bigger_than_gzip_9_of_the_same_jsonl() -> None:
    # Given a sealed day
    source, store, _ = archived(days=1, per_day=400)
    sealer_for(store, source).seal_org(ORG, day_ns(DAY0) + DAY)

    for service in ("directory", "sso", "systems"):
        body = store.get(sealed_day_key(PREFIX, ORG, service, DAY0))
        assert body is not None
        raw = decompress(body)
        # Then it is at most what `gzip -9` makes of the same raw JSON Lines
        reference = len(gzip.compress(raw, compresslevel=9, mtime=0))
        gzip_cli = shutil.which("gzip")
        if gzip_cli is not None:
            cli = subprocess.run(
                [gzip_cli, "-9", "-n", "-c"], input=raw, capture_output=True, check=True
            )
            reference = min(reference, len(cli.stdout))
        assert len(body) <= reference


def test_days_without_events_still_get_a_manifest() -> None:
    # Given events on the first and third day only
    source = FakeSource(now=day_ns(DAY0) + 4 * DAY)
    source.add(make_event(1, day_ns(DAY0) + 5))
    source.add(make_event(2, day_ns(DAY0) + 2 * DAY + 5))
    store = MemoryStore()
    FakeEngine(source, store).archive_days(ORG, DAY0, 3)

    # When sealed
    sealer_for(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)

    # Then the empty middle day has a manifest with no objects, and the chain is whole
    middle = store.get(manifest_key(PREFIX, ORG, DAY0 + timedelta(days=1)))
    assert middle is not None
    assert Manifest.from_bytes(middle).objects == ()
    assert verify_archive(store, prefix=PREFIX).ok


def test_only_closed_days_are_sealed() -> None:
    # Given three archived days but buckets closed only until noon of the third
    source, store, _ = archived()
    closed = day_ns(DAY0) + 2 * DAY + 12 * 3600 * 10**9

    # When sealed
    results = sealer_for(store, source).seal_org(ORG, closed)

    # Then the open day keeps its bucket objects and has no manifest
    assert [r.day for r in results] == [DAY0, DAY0 + timedelta(days=1)]
    assert store.get(manifest_key(PREFIX, ORG, DAY0 + timedelta(days=2))) is None
    assert DAY0 + timedelta(days=2) in list_org_objects(store, PREFIX, ORG).buckets


def test_resealing_unchanged_archive_writes_nothing() -> None:
    # Given a sealed archive
    source, store, _ = archived()
    closed = day_ns(DAY0) + 3 * DAY
    sealer_for(store, source).seal_org(ORG, closed)
    writes = store.mutations

    # When sealing runs again
    results = sealer_for(store, source).seal_org(ORG, closed)

    # Then nothing is sealed or written
    assert results == []
    assert store.mutations == writes


def test_reseal_keeps_sealed_events_dropped_by_di_and_takes_bucket_version() -> None:
    # Given a sealed day
    source, store, engine = archived(days=1)
    sealer = sealer_for(store, source)
    sealer.seal_org(ORG, day_ns(DAY0) + DAY)
    key = sealed_day_key(PREFIX, ORG, "directory", DAY0)
    before = events_of(store, key)
    # and DI since forgot one event of hour 0 and changed another one's content
    forgotten, changed = before[0], before[1]
    source.events = [(v, e) for v, e in source.events if e["id"] != forgotten["id"]]
    for _, event in source.events:
        if event["id"] == changed["id"]:
            event["detail"] = {"n": -1}
    engine.snapshot_bucket(ORG, day_ns(DAY0), day_ns(DAY0) + 3600 * 10**9)

    # When the day is re-sealed
    result = sealer.seal_day(ORG, DAY0)

    # Then the forgotten event is still archived, and the changed event appears once (new form)
    after = events_of(store, key)
    assert forgotten in after
    assert [e["detail"] for e in after if e["id"] == changed["id"]] == [{"n": -1}]
    assert len(after) == len(before)
    assert result.repaired
    assert verify_archive(store, prefix=PREFIX).ok


def test_object_lock_applies_to_sealed_objects_and_manifests_only() -> None:
    # Given a store that supports object lock, and a 365-day retention
    source, inner, _ = archived(days=1)
    store = RecordingLockStore(inner, clock=lambda: source.now)
    sealer = sealer_for(store, source, retention=Retention(days=365, mode="GOVERNANCE"))

    # When a day is sealed
    sealer.seal_org(ORG, day_ns(DAY0) + DAY)

    # Then every sealed object and manifest, and nothing else, is retained for a year
    sealed = {k for k in inner.objects if k.endswith("/day.jsonl.gz")}
    manifests = {k for k in inner.objects if "/_manifests/" in k}
    assert set(store.retention) == sealed | manifests
    assert len(sealed) == 3
    assert len(manifests) == 1
    assert {until for until, _ in store.retention.values()} == {source.now + 365 * DAY}
    # And a locked object cannot be deleted
    with pytest.raises(ArchiverError, match="object lock"):
        store.delete(next(iter(sealed)))


def test_retention_without_a_locking_store_is_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="cannot lock"):
        DaySealer(store=MemoryStore(), prefix=PREFIX, retention=Retention(days=1))


def test_sealing_refuses_to_extend_a_chain_with_a_missing_manifest() -> None:
    # Given a sealed archive whose middle manifest was deleted, and new buckets on that day
    source, store, engine = archived()
    sealer = sealer_for(store, source)
    sealer.seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    store.delete(manifest_key(PREFIX, ORG, DAY0 + timedelta(days=1)))
    engine.snapshot_bucket(ORG, day_ns(DAY0) + 2 * DAY, day_ns(DAY0) + 2 * DAY + 3600 * 10**9)

    # When the later day is re-sealed
    # Then it fails loudly instead of papering over the hole
    with pytest.raises(IntegrityError, match="missing inside the chain"):
        sealer.seal_org(ORG, day_ns(DAY0) + 3 * DAY)


def test_seal_org_stops_before_the_next_day_when_asked() -> None:
    # Given three sealable days and a budget that runs out after the first day
    source, store, _ = archived()
    asked: list[int] = []

    def should_stop() -> bool:
        asked.append(1)
        return len(asked) > 1

    # When the org is sealed with that stop signal
    results = sealer_for(store, source).seal_org(
        ORG, day_ns(DAY0) + 3 * DAY, should_stop=should_stop
    )

    # Then only the first day is sealed and the later days keep their buckets for the next pass
    assert [r.day for r in results] == [DAY0]
    assert store.get(manifest_key(PREFIX, ORG, DAY0 + timedelta(days=1))) is None
    assert DAY0 + timedelta(days=1) in list_org_objects(store, PREFIX, ORG).buckets
    # And a later pass without a stop signal finishes the rest
    rest = sealer_for(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    assert [r.day for r in rest] == [DAY0 + timedelta(days=1), DAY0 + timedelta(days=2)]
