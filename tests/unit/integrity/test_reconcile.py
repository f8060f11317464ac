"""Reconcile: late-indexed events after sealing are found, repaired once, and never lost."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from di_archiver.domain.maintenance import maintain
from di_archiver.domain.manifest import Manifest
from di_archiver.domain.reconcile import Reconciler
from di_archiver.domain.seal import DaySealer, SealResult
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import IntegrityError
from di_archiver.layout import manifest_key
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
    populate,
)


class RecordingObserver:
    def __init__(self) -> None:
        self.sealed: list[SealResult] = []
        self.repaired: list[SealResult] = []
        self.warnings: list[tuple[str, dict[str, Any]]] = []

    def on_day_sealed(self, result: SealResult) -> None:
        self.sealed.append(result)

    def on_day_repaired(self, result: SealResult) -> None:
        self.repaired.append(result)

    def on_warning(self, message: str, **fields: object) -> None:
        self.warnings.append((message, dict(fields)))


def sealed_archive(
    days: int = 3, *, end_inclusive: bool = True
) -> tuple[FakeSource, MemoryStore, FakeEngine, MemoryCheckpoints]:
    source = FakeSource(now=day_ns(DAY0) + (days + 1) * DAY, end_inclusive=end_inclusive)
    populate(source, DAY0, days)
    store = MemoryStore()
    engine = FakeEngine(source, store)
    engine.archive_days(ORG, DAY0, days)
    checkpoints = MemoryCheckpoints()
    checkpoints.close_through(ORG, day_ns(DAY0) + days * DAY)
    return source, store, engine, checkpoints


def run_maintain(
    source: FakeSource,
    store: MemoryStore,
    engine: FakeEngine,
    checkpoints: MemoryCheckpoints,
    observer: RecordingObserver | None = None,
) -> Any:
    return maintain(
        org_ids=[ORG],
        store=store,
        checkpoints=checkpoints,
        prefix=PREFIX,
        source=source,
        snapshotter=engine,
        lookback_ns=90 * DAY,
        clock=lambda: source.now,
        observer=observer,
    )


def test_event_indexed_after_sealing_is_repaired_exactly_once() -> None:
    # Given a sealed archive, then DI indexes a late event in hour 5 of the first day
    source, store, engine, checkpoints = sealed_archive()
    run_maintain(source, store, engine, checkpoints)
    late = make_event(9999, day_ns(DAY0) + 5 * HOUR + 17, "systems")
    source.add(late, visible_at=source.now)
    observer = RecordingObserver()

    # When maintenance runs twice
    engine.snapshots.clear()
    first = run_maintain(source, store, engine, checkpoints, observer)
    second = run_maintain(source, store, engine, checkpoints, observer)

    # Then only the differing bucket was re-read, the day was repaired once, and not again
    assert engine.snapshots == [(day_ns(DAY0) + 5 * HOUR, day_ns(DAY0) + 6 * HOUR)]
    assert first.days_repaired == 1
    assert second.days_repaired == 0
    assert [r.day for r in observer.repaired] == [DAY0]
    assert [c.status for c in second.orgs[0].checks] == ["ok", "ok", "ok"]
    # And the manifest records the repair, counts agree, and the whole chain still verifies
    data = store.get(manifest_key(PREFIX, ORG, DAY0))
    assert data is not None
    manifest = Manifest.from_bytes(data)
    assert manifest.di_count == manifest.archived_count == 33
    assert len(manifest.repairs) == 1
    repair = manifest.repairs[0]
    assert (repair.reason, repair.archived_count_before, repair.archived_count_after) == (
        "late_events",
        32,
        33,
    )
    assert repair.buckets == ("0500-0600.jsonl.gz",)
    assert verify_archive(store, prefix=PREFIX).ok


def test_a_lower_di_count_never_deletes_anything() -> None:
    # Given a sealed archive, then DI forgets two events of the second day
    source, store, engine, checkpoints = sealed_archive()
    run_maintain(source, store, engine, checkpoints)
    before = dict(store.objects)
    second_day = day_ns(DAY0) + DAY
    gone = [
        e for _, e in source.events if source.visible(second_day, second_day + DAY)[:2].count(e)
    ]
    source.events = [(v, e) for v, e in source.events if e not in gone]
    observer = RecordingObserver()

    # When maintenance runs
    report = run_maintain(source, store, engine, checkpoints, observer)

    # Then the day is a finding naming each differing bucket with both counts, nothing is
    # re-snapshotted or written, and a warning is emitted
    assert [c.status for c in report.orgs[0].checks] == ["ok", "di_lower", "ok"]
    (finding,) = report.findings
    assert (finding.di_count, finding.archived_after) == (30, 32)
    assert [(b.di_count, b.archived_after, b.status) for b in finding.buckets] == [
        (b.di_count, b.di_count + 1, "di_lower") for b in finding.buckets
    ]
    assert len(finding.buckets) in (1, 2)
    assert all(f"{b.name} DI {b.di_count}" in finding.describe() for b in finding.buckets)
    assert store.objects == before
    assert observer.warnings
    assert "nothing deleted" in observer.warnings[0][0]


def test_exclusive_end_time_does_not_make_a_full_day_look_incomplete() -> None:
    # Given a DI whose end_time is exclusive and a day with an event in its last millisecond
    source, store, engine, checkpoints = sealed_archive(end_inclusive=False)
    run_maintain(source, store, engine, checkpoints)
    engine.snapshots.clear()

    # When reconciled
    report = run_maintain(source, store, engine, checkpoints)

    # Then every day agrees and nothing is re-read
    assert [c.status for c in report.orgs[0].checks] == ["ok", "ok", "ok"]
    assert engine.snapshots == []


def test_days_outside_the_lookback_are_not_compared() -> None:
    # Given a sealed archive and a lookback that covers only the newest day
    source, store, engine, _checkpoints = sealed_archive()
    sealer = DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now)
    sealer.seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    reconciler = Reconciler(
        source=source,
        sealer=sealer,
        snapshotter=engine,
        bucket_ns=HOUR,
        lookback_ns=2 * DAY,
        clock=lambda: source.now,
    )

    # When reconciled
    checks = reconciler.reconcile_org(ORG, day_ns(DAY0) + 3 * DAY)

    # Then only the day inside DI retention is asked about
    assert [c.day for c in checks] == [DAY0 + timedelta(days=2)]


def test_maintenance_isolates_a_failing_org_and_skips_orgs_without_checkpoint() -> None:
    # Given one healthy org and one whose checkpoint is corrupt, and one never archived
    source, store, engine, checkpoints = sealed_archive()
    bad_org, new_org = "64a0c0ffee0000000000b002", "64a0c0ffee0000000000c003"
    checkpoints.save(bad_org, {"schema_version": 1, "closed_through": "yesterday"})

    # When maintenance runs over all three
    report = maintain(
        org_ids=[bad_org, ORG, new_org],
        store=store,
        checkpoints=checkpoints,
        prefix=PREFIX,
        source=source,
        snapshotter=engine,
        clock=lambda: source.now,
    )

    # Then the healthy org is sealed, the broken one is reported, the new one skipped
    assert [o.org_id for o in report.failures] == [bad_org]
    assert report.days_sealed == 3
    assert report.orgs[2].skipped_reason == "no checkpoint yet"


class HidingSource(FakeSource):
    """DI counting events its search does not return (a stuck index): never repairable."""

    hidden: int = 0

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        hour = day_ns(DAY0) + 5 * HOUR
        extra = self.hidden if start_ns <= hour + HOUR // 2 <= end_ns else 0
        return super().count(org_id, start_ns, end_ns) + extra


def test_a_day_still_short_after_the_reread_is_an_unresolved_finding_not_a_repair() -> None:
    # Given a sealed archive, then DI counts three events in hour 5 its search never returns
    source = HidingSource(now=day_ns(DAY0) + 4 * DAY)
    populate(source, DAY0, 3)
    store = MemoryStore()
    engine = FakeEngine(source, store)
    engine.archive_days(ORG, DAY0, 3)
    checkpoints = MemoryCheckpoints()
    checkpoints.close_through(ORG, day_ns(DAY0) + 3 * DAY)
    run_maintain(source, store, engine, checkpoints)
    source.hidden = 3

    # When maintenance runs
    report = run_maintain(source, store, engine, checkpoints)

    # Then the day is "unresolved", a finding naming hour 5 with both counts, never "repaired"
    (finding,) = report.findings
    assert finding.status == "unresolved"
    assert report.days_repaired == 0
    (bucket,) = finding.buckets
    assert (bucket.name, bucket.di_count - bucket.archived_after, bucket.status) == (
        "0500-0600",
        3,
        "unresolved",
    )
    assert bucket.resnapshotted
    assert "0500-0600 DI" in finding.describe()
    # And the Lambda's maintain turns it into an error (the invocation fails and alarms)
    with pytest.raises(IntegrityError, match="disagreeing with DI"):
        report.raise_for_findings()
