"""Sealing vouches only for days the archive covered, and says which part of a day that was."""

from __future__ import annotations

import json
from datetime import timedelta

from di_archiver.domain.maintenance import maintain
from di_archiver.layout import manifest_key
from di_archiver.timestamps import format_timestamp_ns
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    HOUR,
    ORG,
    PREFIX,
    FakeEngine,
    FakeSource,
    MemoryCheckpoints,
    MemoryStore,
    day_ns,
    make_event,
)


def manifest_days(store: MemoryStore) -> list[str]:
    return sorted(k.rsplit("dt=", 1)[1][:10] for k in store.objects if "/_manifests/" in k)


def test_an_org_with_nothing_archived_gets_no_manifest_for_the_day_before_its_checkpoint() -> None:
    # Given an older checkpoint (no archived_from) pinned at midnight and nothing archived yet
    store, checkpoints = MemoryStore(), MemoryCheckpoints()
    checkpoints.close_through(ORG, day_ns(DAY0) + DAY)

    # When sealing runs offline (no DI)
    report = maintain(org_ids=[ORG], store=store, checkpoints=checkpoints, prefix=PREFIX)

    # Then no day is vouched for: the archive holds no day anybody looked at
    assert report.days_sealed == 0
    assert manifest_days(store) == []


def test_days_from_the_backfill_start_are_sealed_with_their_covered_range_and_di_count() -> None:
    # Given an archive whose backfill started at 06:00 on the first day, with DI holding an
    # event before that (never archived) and after it
    source = FakeSource(now=day_ns(DAY0) + 4 * DAY)
    source.add(make_event(1, day_ns(DAY0) + 3 * HOUR))
    source.add(make_event(2, day_ns(DAY0) + 9 * HOUR))
    source.add(make_event(3, day_ns(DAY0) + DAY + 9 * HOUR))
    store, checkpoints = MemoryStore(), MemoryCheckpoints()
    engine = FakeEngine(source, store)
    start = day_ns(DAY0) + 6 * HOUR
    for bucket in range(start, day_ns(DAY0) + 2 * DAY, HOUR):
        engine.snapshot_bucket(ORG, bucket, bucket + HOUR)
    checkpoints.close_through(ORG, day_ns(DAY0) + 2 * DAY)
    checkpoints.docs[ORG]["archived_from"] = format_timestamp_ns(start)
    snapshots_before = len(engine.snapshots)

    # When maintenance seals and reconciles
    report = maintain(
        org_ids=[ORG],
        store=store,
        checkpoints=checkpoints,
        prefix=PREFIX,
        source=source,
        snapshotter=engine,
        clock=lambda: source.now,
    )

    # Then only the two covered days have manifests; the first says it covers 06:00 onwards
    # and DI's count there is for that range only, so reconcile finds nothing to repair
    assert manifest_days(store) == [DAY0.isoformat(), (DAY0 + timedelta(days=1)).isoformat()]
    first = json.loads(store.objects[manifest_key(PREFIX, ORG, DAY0)][0])
    assert first["coverage"] == {
        "from": format_timestamp_ns(start),
        "to": format_timestamp_ns(day_ns(DAY0) + DAY),
    }
    assert (first["di_count"], first["archived_count"]) == (1, 1)
    second = json.loads(store.objects[manifest_key(PREFIX, ORG, DAY0 + timedelta(days=1))][0])
    assert second["coverage"]["from"] == format_timestamp_ns(day_ns(DAY0) + DAY)
    assert [c.status for c in report.orgs[0].checks] == ["ok", "ok"]
    assert len(engine.snapshots) == snapshots_before  # nothing re-read by reconcile
    assert not report.findings
