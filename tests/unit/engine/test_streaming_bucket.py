"""A bucket is encoded while its pages arrive, into exactly the object a sort-then-encode gives."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from di_archiver.archive_format import encode_lines
from di_archiver.domain import snapshot
from di_archiver.domain.snapshot import CollectedBucket, add_page, write_bucket
from di_archiver.raw_events import RawEvent, raw_event_of
from di_archiver.timestamps import NS_PER_MS, format_timestamp_ns
from tests.unit.engine.fakes import ORG, MemoryStore
from tests.unit.engine.helpers import HOUR, at

START = at("2026-05-04T06:00")


def _event(offset_ns: int, event_id: str, service: str = "sso", **extra: object) -> RawEvent:
    return raw_event_of(
        {"id": event_id, "timestamp": format_timestamp_ns(START + offset_ns), "service": service}
        | extra
    )


def _archive(pages: list[list[RawEvent]], store: MemoryStore | None = None) -> MemoryStore:
    store = store or MemoryStore()
    collected = CollectedBucket(ORG, START, START + HOUR, START + HOUR, closed=True)
    for page in pages:
        add_page(collected, page, max_events=10**6)
    write_bucket(store, collected, prefix="di", fetched_at_ns=START, consult_sealed_day=False)
    return store


def _reference(events: list[RawEvent]) -> dict[str, bytes]:
    """What sorting the whole bucket in memory and encoding it gives, per service."""
    by_service: dict[str, list[tuple[tuple[int, str, bytes], bytes]]] = {}
    for e in events:
        if START <= e.ts_ns < START + HOUR:
            by_service.setdefault(str(e.service), []).append((e.sort_key, e.line))
    return {s: encode_lines(pairs).body for s, pairs in by_service.items()}


def _bodies(store: MemoryStore) -> dict[str, bytes]:
    return {key.split("svc=")[1].split("/")[0]: body for key, (body, _) in store.objects.items()}


def test_same_millisecond_events_in_any_order_are_written_sorted() -> None:
    # Given one millisecond holding events whose nanoseconds and ids DI orders its own way
    events = [
        _event(5 * NS_PER_MS + 900, "b"),
        _event(5 * NS_PER_MS + 100, "z"),
        _event(5 * NS_PER_MS + 100, "a"),
        _event(5 * NS_PER_MS + 100, "a"),  # sent twice, identical
        _event(5 * NS_PER_MS + 100, "a", extra=1),  # same (timestamp, id), other content
        _event(6 * NS_PER_MS, "c"),
    ]
    # When archived as they came, across two pages
    store = _archive([events[:3], events[3:]])
    # Then the object is what sorting the whole bucket gives, byte for byte
    assert _bodies(store) == _reference(events)
    lines = gzip.decompress(next(iter(store.objects.values()))[0]).splitlines()
    assert [json.loads(x)["id"] for x in lines] == ["a", "a", "z", "b", "c"]


def test_a_millisecond_split_across_pages_is_sorted_without_the_in_memory_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given one millisecond's events split over two pages, the later page sorting first
    events = [_event(5 * NS_PER_MS, "m"), _event(5 * NS_PER_MS, "z"), _event(5 * NS_PER_MS, "a")]
    events += [_event(6 * NS_PER_MS, "b")]

    def refuse(_stream: object) -> None:
        raise AssertionError("the service fell back to sorting in memory")

    monkeypatch.setattr(snapshot.ServiceStream, "_read_back", refuse)
    # When archived / Then the millisecond waited for the next page: sorted, no fallback
    assert _bodies(_archive([events[:2], events[2:]])) == _reference(events)


def test_a_source_out_of_millisecond_order_still_gives_the_sorted_object() -> None:
    # Given a source whose order goes back in time (DI broke its own order)
    events = [_event(i * 7919 % 3600 * 10**9, f"e{i}") for i in range(200)]
    # When archived / Then the service falls back to sorting in memory: same object
    assert _bodies(_archive([events[:90], events[90:]])) == _reference(events)


def test_a_large_object_spills_to_disk_and_stays_identical(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a spool that holds only 4 KB in memory and a bucket of ~300 KB of lines
    monkeypatch.setattr(snapshot, "SPOOL_MEMORY_BYTES", 4096)
    events = [_event(i * 10**9, f"e{i:05d}", blob="x" * 100 + str(i)) for i in range(3000)]
    # When archived
    store = _archive([events[i : i + 1000] for i in range(0, 3000, 1000)])
    # Then the object is the same as the in-memory reference
    assert _bodies(store) == _reference(events)


# Inside the bucket, or past its end by what millisecond filtering explains (left to the next)
_offsets = st.integers(min_value=0, max_value=40).map(lambda ms: ms * NS_PER_MS) | st.integers(
    min_value=0, max_value=HOUR + NS_PER_MS
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            _offsets,
            st.integers(min_value=0, max_value=999_999),
            st.sampled_from(["a", "b", "c"]),
            st.sampled_from(["sso", "radius", "weird service!"]),
            st.integers(min_value=0, max_value=2),
        ),
        max_size=60,
    ),
    in_ms_order=st.booleans(),
    page_size=st.integers(min_value=1, max_value=7),
)
def test_any_input_gives_the_object_sort_then_encode_gives(
    rows: list[tuple[int, int, str, str, int]], in_ms_order: bool, page_size: int
) -> None:
    # Given any events (in or out of the bucket, ties, duplicates, variants, odd services),
    # in DI's millisecond order or in any order
    events = [_event(off + ns % NS_PER_MS, i, svc, v=v) for off, ns, i, svc, v in rows]
    if in_ms_order:
        events.sort(key=lambda e: e.ts_ns // NS_PER_MS)
    pages = [events[i : i + page_size] for i in range(0, len(events), page_size)]
    # When archived page by page / Then each object equals the sorted in-memory encoding
    reference = _reference(events)
    bodies = _bodies(_archive(pages))
    assert bodies == {
        (s if s != "weird service!" else "_unrecognised"): b for s, b in reference.items()
    }


def test_a_rewrite_merges_the_stored_object_as_a_stream() -> None:
    # Given an archived bucket, and a later fetch where DI forgot one event, revised another
    # and added a new one
    first = [_event(1 * 10**9, "old"), _event(2 * 10**9, "rev"), _event(3 * 10**9, "same")]
    store = _archive([first])
    again = [_event(2 * 10**9, "rev", v=2), _event(3 * 10**9, "same"), _event(4 * 10**9, "new")]
    # When the bucket is written again
    _archive([again], store)
    # Then the object holds the forgotten event, DI's new version, the kept and the new one
    ((body, _),) = store.objects.values()
    ids = [
        (json.loads(x)["id"], json.loads(x).get("v")) for x in gzip.decompress(body).splitlines()
    ]
    assert ids == [("old", None), ("rev", 2), ("same", None), ("new", None)]
