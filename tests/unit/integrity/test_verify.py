"""Verify: passes on an untouched archive, and names every kind of tampering."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import timedelta

import pytest

from di_archiver.archive_format import decompress
from di_archiver.domain.ports import StoredObject
from di_archiver.domain.seal import DaySealer
from di_archiver.domain.verify import verify_archive
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
    populate,
)


@pytest.fixture
def store() -> MemoryStore:
    """A four-day sealed archive plus one open day of bucket objects."""
    source = FakeSource(now=day_ns(DAY0) + 6 * DAY)
    populate(source, DAY0, 5)
    archive = MemoryStore()
    FakeEngine(source, archive).archive_days(ORG, DAY0, 5)
    DaySealer(store=archive, prefix=PREFIX, source=source, clock=lambda: source.now).seal_org(
        ORG, day_ns(DAY0) + 4 * DAY
    )
    return archive


def kinds(store: MemoryStore) -> set[tuple[str, str]]:
    return {(f.kind, f.key) for f in verify_archive(store, prefix=PREFIX).findings}


DAY1 = DAY0 + timedelta(days=1)
DAY2 = DAY0 + timedelta(days=2)


def test_untouched_archive_passes_and_reports_the_chain_head(store: MemoryStore) -> None:
    # When an untouched archive is verified
    report = verify_archive(store, prefix=PREFIX)

    # Then nothing is found, everything was read, and the head is the newest sealed day
    assert report.findings == []
    assert report.manifests_checked == 4
    assert report.events_checked == 5 * 32
    assert report.chain_heads[ORG][0] == DAY0 + timedelta(days=3)


def test_deleted_object_is_missing(store: MemoryStore) -> None:
    key = sealed_day_key(PREFIX, ORG, "sso", DAY1)
    store.delete(key)
    assert kinds(store) == {("missing", key)}


def test_changed_byte_is_altered(store: MemoryStore) -> None:
    # Given one byte of one event changed (re-gzipped so only the content differs)
    key = sealed_day_key(PREFIX, ORG, "directory", DAY1)
    body, meta = store.objects[key]
    raw = bytearray(decompress(body))
    raw[raw.index(b'"n":') + 4] ^= 0x01
    store.objects[key] = (gzip.compress(bytes(raw), mtime=0), meta)

    # Then verify reports the object as altered (against its metadata and its manifest)
    findings = verify_archive(store, prefix=PREFIX).findings
    assert {f.kind for f in findings} == {"altered"}
    assert {f.key for f in findings} == {key}
    assert any("manifest" in f.detail for f in findings)


def test_changed_byte_in_compressed_body_is_unreadable_or_altered(store: MemoryStore) -> None:
    key = sealed_day_key(PREFIX, ORG, "sso", DAY2)
    body, meta = store.objects[key]
    store.objects[key] = (body[:-9] + bytes([body[-9] ^ 0xFF]) + body[-8:], meta)
    assert {k for k, _ in kinds(store)} <= {"unreadable", "altered"}
    assert kinds(store)


def test_removed_manifest_breaks_the_chain(store: MemoryStore) -> None:
    key = manifest_key(PREFIX, ORG, DAY1)
    store.delete(key)
    found = kinds(store)
    assert ("chain", manifest_key(PREFIX, ORG, DAY2)) in found
    assert ("unsealed", sealed_day_key(PREFIX, ORG, "sso", DAY1)) in found


def test_reordered_chain_is_detected(store: MemoryStore) -> None:
    # Given the manifests of two days swapped
    first, second = manifest_key(PREFIX, ORG, DAY1), manifest_key(PREFIX, ORG, DAY2)
    store.objects[first], store.objects[second] = store.objects[second], store.objects[first]

    # Then both are reported as describing another day, and the links break
    found = kinds(store)
    assert ("manifest", first) in found
    assert ("manifest", second) in found
    assert any(kind == "chain" for kind, _ in found)


def test_removed_first_manifest_is_detected(store: MemoryStore) -> None:
    store.delete(manifest_key(PREFIX, ORG, DAY0))
    assert ("chain", manifest_key(PREFIX, ORG, DAY1)) in kinds(store)


def test_extra_object_in_a_sealed_day_is_reported(store: MemoryStore) -> None:
    key = sealed_day_key(PREFIX, ORG, "radius", DAY1)
    body, meta = store.objects[sealed_day_key(PREFIX, ORG, "sso", DAY1)]
    store.objects[key] = (body, meta)
    found = kinds(store)
    assert ("extra", key) in found


def test_interrupted_relink_is_reported_as_pending(store: MemoryStore) -> None:
    key = f"{PREFIX}/_manifests/org={ORG}/_pending-relink.json"
    store.objects[key] = (b'{"from_day":"2026-05-02"}', {})
    assert kinds(store) == {("pending", key)}


def test_date_range_limits_the_check_but_still_checks_the_first_link(store: MemoryStore) -> None:
    # Given a tampered first day, then a range that starts on the third day
    store.delete(sealed_day_key(PREFIX, ORG, "sso", DAY0))
    report = verify_archive(store, prefix=PREFIX, start_day=DAY2, end_day=DAY2)

    # Then the range verifies on its own, its link to the day before included
    assert report.findings == []
    assert report.manifests_checked == 1
    # And a forged link into the range is caught
    data, meta = store.objects[manifest_key(PREFIX, ORG, DAY1)]
    store.objects[manifest_key(PREFIX, ORG, DAY1)] = (
        data.replace(b'"di_count":32', b'"di_count":31'),
        meta,
    )
    assert not verify_archive(store, prefix=PREFIX, start_day=DAY2, end_day=DAY2).ok


class ListingStore(MemoryStore):
    """Records every prefix listed; answers delimiter listings like S3 common prefixes."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__()
        self.objects = inner.objects
        self.listed: list[str] = []

    def list(self, prefix: str) -> Iterator[StoredObject]:
        self.listed.append(prefix)
        return super().list(prefix)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        self.listed.append(f"delimited:{prefix}")
        rests = [k[len(prefix) :] for k in self.objects if k.startswith(prefix)]
        return iter(sorted({prefix + r.split("/", 1)[0] + "/" for r in rests if "/" in r}))


def test_windowed_verify_lists_only_the_windows_day_folders(store: MemoryStore) -> None:
    # Given tampering inside the window (day 2) and outside it (day 0)
    for day in (DAY0, DAY2):
        key = sealed_day_key(PREFIX, ORG, "sso", day)
        body, meta = store.objects[key]
        store.objects[key] = (body, {**meta, "di-count": "999"})
    listing = ListingStore(store)

    # When a window of days 2..3 is verified
    report = verify_archive(listing, prefix=PREFIX, start_day=DAY2, end_day=DAY0 + timedelta(3))

    # Then only the window's tampering is found, its chain still checked link by link
    assert {f.key for f in report.findings} == {sealed_day_key(PREFIX, ORG, "sso", DAY2)}
    assert report.manifests_checked == 2
    # And nothing but org/service folders (delimited) and the window's day folders was listed
    full = [p for p in listing.listed if not p.startswith("delimited:")]
    assert full
    assert all("/dt=2026-05-03/" in p or "/dt=2026-05-04/" in p for p in full), full
    # And an open-ended window (the scheduled verify) ends at `today`
    listing.listed.clear()
    open_ended = verify_archive(listing, prefix=PREFIX, start_day=DAY2, today=DAY0 + timedelta(4))
    assert {f.key for f in open_ended.findings} == {sealed_day_key(PREFIX, ORG, "sso", DAY2)}
    assert open_ended.objects_checked > report.objects_checked  # the open day 4 buckets too


def test_windowed_verify_still_reports_a_pending_marker_and_a_missing_window_manifest(
    store: MemoryStore,
) -> None:
    marker = f"{PREFIX}/_manifests/org={ORG}/_pending-relink.json"
    store.objects[marker] = (b'{"from_day":"2026-05-02"}', {})
    store.delete(manifest_key(PREFIX, ORG, DAY2))
    found = {
        (f.kind, f.key)
        for f in verify_archive(store, prefix=PREFIX, start_day=DAY2, end_day=DAY2).findings
    }
    assert ("pending", marker) in found
    assert ("unsealed", sealed_day_key(PREFIX, ORG, "sso", DAY2)) in found


@pytest.mark.parametrize("windowed", [False, True])
def test_chain_may_start_after_accepts_a_predecessor_expired_by_lifecycle(
    store: MemoryStore, windowed: bool
) -> None:
    # Given the first day (manifest and objects) expired by the bucket's lifecycle rule
    for key in [k for k in store.objects if "dt=2026-05-01" in k]:
        store.delete(key)
    window = {"start_day": DAY1, "end_day": DAY2} if windowed else {}

    def chain_findings(**kwargs: object) -> set[str]:
        report = verify_archive(store, prefix=PREFIX, **window, **kwargs)  # type: ignore[arg-type]
        return {f.key for f in report.findings if f.kind == "chain"}

    # Then by default (strict) the surviving first link is a chain finding
    assert chain_findings() == {manifest_key(PREFIX, ORG, DAY1)}
    # And it is accepted when the missing predecessor lies in the expired range
    assert chain_findings(chain_may_start_after=DAY0) == set()
    # But not when the missing predecessor is newer than that
    assert chain_findings(chain_may_start_after=DAY0 - timedelta(days=1)) == {
        manifest_key(PREFIX, ORG, DAY1)
    }
    # And a hole after the surviving start is still found
    store.delete(manifest_key(PREFIX, ORG, DAY2))
    if not windowed:
        assert manifest_key(PREFIX, ORG, DAY0 + timedelta(3)) in chain_findings(
            chain_may_start_after=DAY0
        )
