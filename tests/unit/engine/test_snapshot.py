"""Snapshotting one bucket: range enforcement, service split, sha-skip, never losing events."""

import json
from collections.abc import Iterator
from typing import Any

import pytest

from di_archiver.archive_format import (
    META_FETCHED_AT,
    META_SHA256,
    encode_events,
)
from di_archiver.domain.engine import EngineRunError
from di_archiver.errors import BucketTooLargeError
from di_archiver.layout import LayoutError, day_of_ns, sealed_day_key
from di_archiver.raw_events import MalformedEventError, RawEvent
from tests.unit.engine.fakes import ORG, FakeSource, event, page_of
from tests.unit.engine.helpers import HOUR, at, rig


def key(service: str, bucket: str, day: str = "2026-05-04") -> str:
    return f"di/org={ORG}/svc={service}/dt={day}/{bucket}.jsonl.gz"


def ids(lines: list[bytes]) -> list[str]:
    return [json.loads(line)["id"] for line in lines]


@pytest.mark.parametrize("end_inclusive", [True, False])
def test_an_event_at_exactly_the_end_belongs_to_the_next_bucket_only(end_inclusive: bool) -> None:
    # Given an event exactly on the 10:00 boundary and one 100 ns after it, which the API's
    # ms filtering returns for the 09:00-10:00 query when end_time is inclusive
    source = FakeSource(end_inclusive=end_inclusive)
    source.add(
        ORG,
        event("2026-05-04T09:59:59.999999999Z", "last-ns"),
        event("2026-05-04T10:00:00Z", "on-boundary"),
        event("2026-05-04T10:00:00.0000001Z", "just-after"),
    )
    r = rig(source)
    # When both buckets are snapshotted
    r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    r.engine.snapshot_bucket(ORG, at("2026-05-04T10:00"), at("2026-05-04T11:00"))
    # Then each event is in exactly one bucket, by its parsed nanosecond timestamp
    assert ids(r.store.lines(key("directory", "0900-1000"))) == ["last-ns"]
    assert ids(r.store.lines(key("directory", "1000-1100"))) == ["on-boundary", "just-after"]


def test_events_are_split_by_service_sorted_and_deduplicated() -> None:
    # Given events of two services, out of order, with an exact duplicate across pages
    source = FakeSource(page_size=2)
    dup = event("2026-05-04T09:10:00.5Z", "b", "sso")
    source.add(
        ORG,
        event("2026-05-04T09:30:00Z", "c", "sso"),
        dup,
        dict(dup),
        event("2026-05-04T09:05:00.123456789Z", "a", "radius"),
    )
    r = rig(source)
    # When the bucket is snapshotted
    result = r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then there is one object per service, sorted by time, the duplicate stored once
    assert sorted(r.store.objects) == [key("radius", "0900-1000"), key("sso", "0900-1000")]
    assert ids(r.store.lines(key("sso", "0900-1000"))) == ["b", "c"]
    assert (result.events, result.objects_written, result.services) == (3, 2, ("radius", "sso"))
    # And lines are the API's objects unmodified
    assert json.loads(r.store.lines(key("radius", "0900-1000"))[0]) == event(
        "2026-05-04T09:05:00.123456789Z", "a", "radius"
    )


def test_unknown_and_unusable_services_are_kept_and_reported() -> None:
    # Given an event of a service this version does not know and one whose service is unusable
    source = FakeSource()
    source.add(
        ORG,
        event("2026-05-04T09:01:00Z", "new", "quantum_vault"),
        event("2026-05-04T09:02:00Z", "odd", "Not A/Path"),
        event("2026-05-04T09:03:00Z", "known", "ldap"),
    )
    r = rig(source)
    # When the bucket is snapshotted
    result = r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then both are archived (own name / _unrecognised), counted, and warned about
    assert ids(r.store.lines(key("quantum_vault", "0900-1000"))) == ["new"]
    assert ids(r.store.lines(key("_unrecognised", "0900-1000"))) == ["odd"]
    assert result.unknown_service_events == 2
    assert sorted(w[1]["service"] for w in r.observer.warnings) == [
        "_unrecognised",
        "quantum_vault",
    ]


def test_services_that_are_not_strings_share_the_unrecognised_partition() -> None:
    # Given services that are objects, lists (not usable as dict keys), numbers that compare
    # equal to each other (1, 1.0, True), null, and a string, in pages of three
    services: list[Any] = [{"a": 1}, ["x"], 1, 1.0, True, None, "sso", {"a": 1}, 1]
    source = FakeSource()
    source.add(
        ORG,
        *(
            event(f"2026-05-04T09:{minute:02d}:00Z", f"e{minute}", service)
            for minute, service in enumerate(services)
        ),
    )
    r = rig(source)
    # When the bucket is snapshotted
    result = r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then the string has its own partition and every other event is in _unrecognised, in order
    assert ids(r.store.lines(key("sso", "0900-1000"))) == ["e6"]
    unrecognised = ids(r.store.lines(key("_unrecognised", "0900-1000")))
    assert unrecognised == [f"e{m}" for m in range(len(services)) if m != 6]
    assert result.events == len(services)


def test_an_unchanged_bucket_is_not_rewritten() -> None:
    # Given a bucket already snapshotted
    source = FakeSource()
    source.add(ORG, event("2026-05-04T09:01:00Z", "a"))
    r = rig(source)
    r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    first_meta = r.store.objects[key("directory", "0900-1000")][1]
    # When it is snapshotted again later with the same DI answer
    r.clock.now += HOUR
    result = r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then no PUT happens and the stored metadata (fetch time) is untouched
    assert r.store.puts == [key("directory", "0900-1000")]
    assert (result.objects_written, result.objects_unchanged) == (0, 1)
    assert r.store.objects[key("directory", "0900-1000")][1] == first_meta


def test_content_is_deterministic_and_fetch_time_lives_in_metadata_only() -> None:
    # Given the same DI answer archived at two different times into two stores
    source = FakeSource()
    source.add(ORG, event("2026-05-04T09:01:00.1Z", "a"), event("2026-05-04T09:01:00.1Z", "b"))
    first, second = rig(source), rig(source)
    second.clock.now += 5 * HOUR
    for r in (first, second):
        r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then the bodies (and the SHA) are byte-identical; only di-fetched-at differs
    (body1, meta1), (body2, meta2) = (
        r.store.objects[key("directory", "0900-1000")] for r in (first, second)
    )
    assert body1 == body2
    assert meta1[META_SHA256] == meta2[META_SHA256]
    assert meta1[META_FETCHED_AT] != meta2[META_FETCHED_AT]


def test_a_rewrite_keeps_events_that_aged_out_of_di() -> None:
    # Given an archived bucket holding event "old"
    source = FakeSource()
    source.add(ORG, event("2026-05-04T09:01:00Z", "old"))
    r = rig(source)
    r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # When DI forgot "old" but now returns a late event "late"
    source.events[ORG] = [event("2026-05-04T09:30:00Z", "late")]
    r.engine.resnapshot(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then the object holds the union
    assert ids(r.store.lines(key("directory", "0900-1000"))) == ["old", "late"]


def test_a_rewrite_with_nothing_new_is_skipped_even_when_di_forgot_events() -> None:
    # Given an archived bucket with two events, and DI now returning only one of them
    source = FakeSource()
    source.add(ORG, event("2026-05-04T09:01:00Z", "a"), event("2026-05-04T09:02:00Z", "b"))
    r = rig(source)
    r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    source.events[ORG] = source.events[ORG][:1]
    # When re-snapshotted
    result = r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then nothing is written and both events stay
    assert result.objects_written == 0
    assert ids(r.store.lines(key("directory", "0900-1000"))) == ["a", "b"]


def test_a_service_missing_from_the_new_fetch_keeps_its_object() -> None:
    source = FakeSource()
    source.add(
        ORG, event("2026-05-04T09:01:00Z", "s", "sso"), event("2026-05-04T09:02:00Z", "r", "radius")
    )
    r = rig(source)
    r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # When DI no longer returns the radius event
    source.events[ORG] = source.events[ORG][:1]
    r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    # Then the radius object is still there
    assert ids(r.store.lines(key("radius", "0900-1000"))) == ["r"]


def test_resnapshot_of_a_sealed_day_keeps_sealed_events_and_adds_only_new_ones() -> None:
    # Given a sealed day object (bucket objects removed) holding two events of 09:xx and 10:xx
    r = rig(FakeSource())
    sealed = encode_events(
        [event("2026-05-03T09:10:00Z", "sealed-9"), event("2026-05-03T10:10:00Z", "sealed-10")]
    )
    day = day_of_ns(at("2026-05-03T00:00"))
    r.store.put(
        sealed_day_key("di", ORG, "directory", day), sealed.body, sealed.metadata(fetched_at_ns=0)
    )
    # When DI (which forgot them) returns nothing for 09:00-10:00: then nothing is written
    r.engine.snapshot_bucket(ORG, at("2026-05-03T09:00"), at("2026-05-03T10:00"))
    assert key("directory", "0900-1000", "2026-05-03") not in r.store.objects
    # When DI returns a very late event for that bucket
    r.source.add(ORG, event("2026-05-03T09:50:00Z", "very-late"))
    r.engine.snapshot_bucket(ORG, at("2026-05-03T09:00"), at("2026-05-03T10:00"))
    # Then the new bucket object holds the sealed events of its range plus the new one
    assert ids(r.store.lines(key("directory", "0900-1000", "2026-05-03"))) == [
        "sealed-9",
        "very-late",
    ]


def test_an_event_without_a_usable_timestamp_stops_the_run_loudly() -> None:
    # Given DI returning an event with a broken timestamp among good ones
    source = FakeSource()
    source.add(ORG, event("2026-05-04T09:01:00Z", "good"))
    r = rig(source)

    def pages(*_: object) -> Iterator[list[RawEvent]]:
        yield page_of([event("2026-05-04T09:01:00Z", "good"), event("yesterday", "bad")])

    r.source.iter_pages = pages  # type: ignore[method-assign]
    # When the bucket is snapshotted: then MalformedEventError names the event, nothing written
    with pytest.raises(MalformedEventError, match="id='bad'"):
        r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T10:00"))
    assert r.store.objects == {}


def test_a_bucket_too_large_fails_before_holding_it_and_names_the_fix() -> None:
    # Given a bucket with more events than the bound
    source = FakeSource()
    source.add(ORG, *(event(f"2026-05-04T06:0{i}:00Z", f"e{i}") for i in range(4)))
    r = rig(source, max_events_per_bucket=3)
    # When the engine runs: then the org fails with BucketTooLargeError, nothing of it written
    with pytest.raises(EngineRunError) as caught:
        r.engine.run([ORG])
    assert isinstance(caught.value.failures[0][1], BucketTooLargeError)
    assert "DI_ARCHIVER_BUCKET_MINUTES" in str(caught.value)
    assert r.store.objects == {}
    # And the checkpoint stays at the backfill start
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T06:00:00Z"


def test_snapshot_bucket_accepts_only_one_configured_bucket() -> None:
    r = rig()
    with pytest.raises(LayoutError):
        r.engine.snapshot_bucket(ORG, at("2026-05-04T09:00"), at("2026-05-04T11:00"))
    with pytest.raises(LayoutError):
        r.engine.snapshot_bucket(ORG, at("2026-05-04T09:30"), at("2026-05-04T10:30"))
    with pytest.raises(LayoutError):
        r.engine.snapshot_bucket("not-an-org", at("2026-05-04T09:00"), at("2026-05-04T10:00"))
