"""Reconcile under the archive role re-reads into hourly objects; the seal role merges and signs."""

from __future__ import annotations

from pathlib import Path

from di_archiver.adapters.signing import LocalKeySigner
from di_archiver.domain.maintenance import maintain
from di_archiver.domain.seal import DaySealer
from di_archiver.domain.verify import verify_archive
from di_archiver.layout import manifest_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
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


def test_reconcile_without_sealing_leaves_hourly_objects_for_the_signed_seal(
    tmp_path: Path,
) -> None:
    # Given a signed archive of three sealed days, and a late event DI now has for day 1
    signer = LocalKeySigner.generate(tmp_path / "seal.pem")
    source = FakeSource(now=day_ns(DAY0) + 5 * DAY)
    populate(source, DAY0, 3)
    store = MemoryStore()
    FakeEngine(source, store).archive_days(ORG, DAY0, 3)
    checkpoints = MemoryCheckpoints()
    checkpoints.close_through(ORG, day_ns(DAY0) + 3 * DAY)
    DaySealer(store=store, prefix=PREFIX, clock=lambda: source.now, signer=signer).seal_org(
        ORG, day_ns(DAY0) + 3 * DAY
    )
    day1 = manifest_key(PREFIX, ORG, DAY0.replace(day=DAY0.day + 1))
    before = store.get(day1)
    source.add(make_event(99_999, day_ns(DAY0) + DAY + 5 * 3600 * 10**9 + 1))

    # When the archive role reconciles (it may not seal) ...
    reconciled = maintain(
        org_ids=[ORG],
        store=store,
        checkpoints=checkpoints,
        prefix=PREFIX,
        source=source,
        snapshotter=FakeEngine(source, store),
        lookback_ns=90 * DAY,
        clock=lambda: source.now,
        seal=False,
    )
    reconciled.raise_for_failures()

    # Then the manifest is untouched and the re-read hour waits as an hourly object
    assert store.get(day1) == before
    assert any("/dt=2026-05-02/05" in key for key in store.objects)

    # When the seal role runs next (no DI source at all)
    sealed = maintain(
        org_ids=[ORG],
        store=store,
        checkpoints=checkpoints,
        prefix=PREFIX,
        clock=lambda: source.now,
        signer=signer,
    )
    sealed.raise_for_failures()

    # Then the late event is in the sealed day as a signed repair, and everything verifies
    assert sealed.days_repaired == 1
    assert not any("/dt=2026-05-02/05" in key for key in store.objects)
    report = verify_archive(store, prefix=PREFIX, verifier=signer.verifier())
    assert report.findings == []
    assert report.events_checked == 3 * 32 + 1
