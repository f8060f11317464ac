"""One broken org never blocks the others, whatever it raises; reconcile raises our errors."""

from __future__ import annotations

import gzip
from datetime import timedelta

import pytest

from di_archiver.domain.maintenance import MaintenanceReport, maintain
from di_archiver.domain.reconcile import Reconciler
from di_archiver.domain.seal import DaySealer
from di_archiver.errors import ArchiverError, IntegrityError, SettingsError, describe_failure
from di_archiver.layout import bucket_object_key, manifest_key, sealed_day_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    HOUR,
    PREFIX,
    FakeEngine,
    FakeSource,
    MemoryCheckpoints,
    MemoryStore,
    day_ns,
    make_event,
    populate,
)

BROKEN, HEALTHY = "64a0c0ffee0000000000b001", "64a0c0ffee0000000000b002"
DAYS = 2
CORRUPT = gzip.compress(b'{"id": "0001", "timestamp": broken\n')


def world() -> tuple[FakeSource, MemoryStore, FakeEngine, MemoryCheckpoints]:
    source = FakeSource(now=day_ns(DAY0) + (DAYS + 1) * DAY)
    populate(source, DAY0, DAYS, per_day=6)
    store = MemoryStore()
    engine = FakeEngine(source, store)
    checkpoints = MemoryCheckpoints()
    for org in (BROKEN, HEALTHY):
        engine.archive_days(org, DAY0, DAYS)
        checkpoints.close_through(org, day_ns(DAY0) + DAYS * DAY)
    return source, store, engine, checkpoints


def run(
    source: FakeSource, store: MemoryStore, engine: FakeEngine, cps: MemoryCheckpoints
) -> MaintenanceReport:
    return maintain(
        org_ids=[BROKEN, HEALTHY],
        store=store,
        checkpoints=cps,
        prefix=PREFIX,
        source=source,
        snapshotter=engine,
        clock=lambda: source.now,
    )


def test_a_corrupt_bucket_line_fails_only_its_org_and_is_reported_with_its_type() -> None:
    # Given the first org's bucket object holds a line that is not JSON
    source, store, engine, checkpoints = world()
    key = bucket_object_key(PREFIX, BROKEN, "directory", day_ns(DAY0), day_ns(DAY0) + HOUR)
    assert store.get(key) is not None
    store.objects[key] = (CORRUPT, {})

    # When maintenance runs over both orgs
    report = run(source, store, engine, checkpoints)

    # Then the broken org is a failure naming the exception type, the later org is sealed and
    # reconciled anyway, and the caller's raise names the broken org
    assert [o.org_id for o in report.failures] == [BROKEN]
    failure = report.failures[0]
    assert failure.error_type == "JSONDecodeError"
    assert str(failure.error).startswith("JSONDecodeError: ")
    healthy = report.orgs[1]
    assert (healthy.org_id, healthy.error) == (HEALTHY, None)
    assert healthy.days_sealed == DAYS
    assert [c.status for c in healthy.checks] == ["ok"] * DAYS
    with pytest.raises(ArchiverError, match=f"org {BROKEN}: JSONDecodeError"):
        report.raise_for_failures()


def test_a_corrupt_sealed_line_fails_reconcile_of_its_org_only_as_an_integrity_error() -> None:
    # Given both orgs sealed, a corrupt line in the first org's sealed day, and a late event
    # that makes DI count more than the archive on that day (so reconcile reads it)
    source, store, engine, checkpoints = world()
    assert not run(source, store, engine, checkpoints).failures
    store.objects[sealed_day_key(PREFIX, BROKEN, "directory", DAY0)] = (CORRUPT, {})
    source.add(make_event(9001, day_ns(DAY0) + 3 * HOUR + 11, "sso"), visible_at=source.now)

    # When maintenance runs again
    report = run(source, store, engine, checkpoints)

    # Then the broken org fails with an IntegrityError naming the day, the other is repaired
    failure = report.failures[0]
    assert (failure.org_id, failure.error_type) == (BROKEN, "IntegrityError")
    assert str(DAY0) in str(failure.error)
    healthy = report.orgs[1]
    assert healthy.error is None
    assert {c.day: c.status for c in healthy.checks} == {
        DAY0: "repaired",
        DAY0 + timedelta(days=1): "ok",
    }


def test_an_unexpected_exception_in_one_org_does_not_stop_the_next() -> None:
    # Given a DI source that blows up with a plain RuntimeError for the first org only
    source, store, engine, checkpoints = world()

    class Flaky(FakeSource):
        def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
            if org_id == BROKEN:
                raise RuntimeError("connection reset\nby peer")
            return super().count(org_id, start_ns, end_ns)

    flaky = Flaky(now=source.now, events=source.events)

    # When maintenance runs
    report = run(flaky, store, engine, checkpoints)

    # Then the failure is recorded on one line with its type, and the other org is sealed
    assert [(o.org_id, o.error_type, o.error) for o in report.failures] == [
        (BROKEN, "RuntimeError", "RuntimeError: connection reset by peer")
    ]
    assert report.orgs[1].days_sealed == DAYS
    assert store.get(manifest_key(PREFIX, HEALTHY, DAY0)) is not None


def test_describe_failure_keeps_our_messages_and_bounds_foreign_ones() -> None:
    # Given our own error and a long, multi-line foreign one
    ours = IntegrityError("manifest missing")
    foreign = ValueError("x" * 1000 + "\n" + "tail")

    # When described for the report
    # Then ours is kept verbatim and the foreign one is typed, on one line, and bounded
    assert describe_failure(ours) == ("IntegrityError", "manifest missing")
    kind, text = describe_failure(foreign)
    assert kind == "ValueError"
    assert text.startswith("ValueError: xxx")
    assert "\n" not in text
    assert len(text) < 400


def test_reconciler_raises_archiver_errors() -> None:
    # Given a sealer over an archive with nothing sealed
    source, store, engine, _ = world()
    sealer = DaySealer(store=store, prefix=PREFIX, source=source)

    # When a reconciler is built with a bucket width that does not divide a day, or asked to
    # reconcile a day whose archived object holds a line that is not JSON
    # Then both are ArchiverErrors (the maintenance loop and the CLI report them cleanly)
    with pytest.raises(SettingsError, match="divide a day"):
        Reconciler(
            source=source, sealer=sealer, snapshotter=engine, bucket_ns=7 * HOUR, lookback_ns=DAY
        )
    reconciler = Reconciler(
        source=source, sealer=sealer, snapshotter=engine, bucket_ns=HOUR, lookback_ns=DAY
    )
    store.put(
        bucket_object_key(PREFIX, BROKEN, "sso", day_ns(DAY0), day_ns(DAY0) + HOUR), CORRUPT, {}
    )
    with pytest.raises(IntegrityError, match="unreadable"):
        reconciler.reconcile_day(BROKEN, DAY0)
