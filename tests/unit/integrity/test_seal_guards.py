"""Seal guards: relink markers bound to their manifest, bucket deletes bound to what was merged."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta

import pytest

from di_archiver.archive_format import decode_lines
from di_archiver.domain.manifest import pending_relink_key, relink_marker, sha256_hex
from di_archiver.domain.seal import DaySealer, list_org_objects
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import IntegrityError
from di_archiver.layout import bucket_object_key, manifest_key, sealed_day_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    HOUR,
    ORG,
    PREFIX,
    FakeEngine,
    FakeSource,
    MemoryStore,
    day_ns,
    make_event,
    populate,
)

DAY1 = DAY0 + timedelta(days=1)
DAY2 = DAY0 + timedelta(days=2)
MARKER = pending_relink_key(PREFIX, ORG)


def sealed_archive(store: MemoryStore | None = None) -> tuple[FakeSource, MemoryStore, FakeEngine]:
    source = FakeSource(now=day_ns(DAY0) + 4 * DAY)
    populate(source, DAY0, 3)
    store = store or MemoryStore()
    engine = FakeEngine(source, store)
    engine.archive_days(ORG, DAY0, 3)
    sealer(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    return source, store, engine


def sealer(store: MemoryStore, source: FakeSource) -> DaySealer:
    return DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now)


def tamper_manifest(store: MemoryStore) -> bytes:
    key = manifest_key(PREFIX, ORG, DAY1)
    data, meta = store.objects[key]
    edited = data.replace(b'"di_count":32', b'"di_count":31')
    assert edited != data
    store.objects[key] = (edited, meta)
    return edited


@pytest.mark.parametrize("bound", [False, True])
def test_marker_not_matching_the_manifest_never_relinks_tampering(bound: bool) -> None:
    # Given a sealed chain whose middle manifest was edited, and a marker dropped next to it
    # (old style without a hash, or bound to the hash the manifest had before the edit)
    source, store, _ = sealed_archive()
    original = sha256_hex(store.objects[manifest_key(PREFIX, ORG, DAY1)][0])
    tamper_manifest(store)
    body = (
        relink_marker(DAY1, original, "2026-05-05T00:00:00Z")
        if bound
        else json.dumps({"from_day": DAY1.isoformat()}).encode()
    )
    store.objects[MARKER] = (body, {})
    link_before = store.objects[manifest_key(PREFIX, ORG, DAY2)][0]

    # When maintenance seals the org
    # Then it refuses to relink, leaves the broken link and the marker for verify to report
    with pytest.raises(IntegrityError, match="refusing to finish the relink"):
        sealer(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    assert store.objects[manifest_key(PREFIX, ORG, DAY2)][0] == link_before
    findings = verify_archive(store, prefix=PREFIX).findings
    assert ("chain", manifest_key(PREFIX, ORG, DAY2)) in {(f.kind, f.key) for f in findings}
    pending = [f for f in findings if f.kind == "pending"]
    assert [f.key for f in pending] == [MARKER]
    assert "refuses to relink" in pending[0].detail


def test_marker_matching_the_manifest_finishes_an_interrupted_relink() -> None:
    # Given a re-sealed middle day whose relink crashed right after the manifest was written
    source, store, engine = sealed_archive()
    source.add(make_event(9001, day_ns(DAY1) + 5 * HOUR + 3, "sso"))
    engine.snapshot_bucket(ORG, day_ns(DAY1) + 5 * HOUR, day_ns(DAY1) + 6 * HOUR)
    # sealed object, marker, manifest, then the crash at the first relink write
    store.fail_at = {store.mutations + 4}
    with pytest.raises(Exception, match="injected crash"):
        sealer(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    store.fail_at = set()
    marker = json.loads(store.objects[MARKER][0])
    assert marker["manifest_sha256"] == sha256_hex(
        store.objects[manifest_key(PREFIX, ORG, DAY1)][0]
    )

    # When the next run starts
    assert sealer(store, source).complete_pending_relink(ORG)

    # Then the chain is whole again and the marker is gone
    assert MARKER not in store.objects
    sealer(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    assert verify_archive(store, prefix=PREFIX).ok


def test_stale_marker_for_a_manifest_never_written_is_dropped_when_the_chain_holds() -> None:
    # Given an intact chain and a marker whose manifest write never happened (crash between)
    source, store, _ = sealed_archive()
    store.objects[MARKER] = (relink_marker(DAY1, "f" * 64, "2026-05-05T00:00:00Z"), {})

    # When maintenance runs, Then the marker is dropped without touching the chain
    manifests = {k: v for k, v in store.objects.items() if "/_manifests/" in k and k != MARKER}
    sealer(store, source).seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    assert MARKER not in store.objects
    assert {k: v for k, v in store.objects.items() if "/_manifests/" in k} == manifests
    assert verify_archive(store, prefix=PREFIX).ok


class RacingStore(MemoryStore):
    """Rewrites one bucket (a racing CLI resnapshot) right after the day manifest is written."""

    def __init__(self) -> None:
        super().__init__()
        self.race: tuple[str, bytes, dict[str, str]] | None = None

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        super().put(key, body, metadata)
        if "/_manifests/" in key and self.race is not None:
            race, self.race = self.race, None
            super().put(*race)


def test_seal_keeps_a_bucket_rewritten_after_it_was_merged() -> None:
    # Given an archived day, and a resnapshot that rewrites hour 5 while the day is sealed
    source = FakeSource(now=day_ns(DAY0) + 2 * DAY)
    populate(source, DAY0, 1)
    store = RacingStore()
    engine = FakeEngine(source, store)
    engine.archive_days(ORG, DAY0, 1)
    buckets_before = len(list_org_objects(store, PREFIX, ORG).buckets[DAY0])
    bucket = min(k for k in store.objects if "/svc=sso/" in k)
    hour = day_ns(DAY0) + int(bucket.rsplit("/", 1)[1][:2]) * HOUR
    assert bucket == bucket_object_key(PREFIX, ORG, "sso", hour, hour + HOUR)
    late = make_event(9002, hour + 7, "sso")
    source.add(late)
    shadow = MemoryStore()
    FakeEngine(source, shadow).snapshot_bucket(ORG, hour, hour + HOUR)
    store.race = (bucket, *shadow.objects[bucket])
    warnings: list[str] = []

    class Observer:
        def on_day_sealed(self, result: object) -> None: ...
        def on_day_repaired(self, result: object) -> None: ...
        def on_warning(self, message: str, **fields: object) -> None:
            warnings.append(str(fields.get("key")))

    day_sealer = DaySealer(
        store=store, prefix=PREFIX, source=source, clock=lambda: source.now, observer=Observer()
    )

    # When the day is sealed
    result = day_sealer.seal_org(ORG, day_ns(DAY0) + DAY)[0]

    # Then the rewritten bucket (holding an event the seal never saw) is not deleted
    assert bucket in store.objects
    assert warnings == [bucket]
    assert list_org_objects(store, PREFIX, ORG).buckets[DAY0][0][0].key == bucket
    assert result.buckets_deleted == buckets_before - 1
    # And the next seal merges it, so the late event is archived once and the bucket is gone
    day_sealer.seal_org(ORG, day_ns(DAY0) + DAY)
    sealed = decode_lines(store.objects[sealed_day_key(PREFIX, ORG, "sso", DAY0)][0])
    assert [json.loads(line)["id"] for line in sealed].count(late["id"]) == 1
    assert bucket not in store.objects
    assert verify_archive(store, prefix=PREFIX).ok
