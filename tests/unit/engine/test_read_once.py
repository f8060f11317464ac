"""Read each event once: open buckets are counted, and only what is new is read.

Invariant: the archive stays a pure function of what DI returns (the same keys, the same lines)
whether a bucket was read whole or in parts, and a late event in the already-archived part of a
bucket is still found (by its count) and archived once.
"""

import json
from dataclasses import replace

import pytest

from di_archiver.domain.checkpoint import MAX_OPEN_BUCKETS, Checkpoint
from di_archiver.errors import CheckpointError, DIResponseError
from di_archiver.timestamps import NS_PER_MS as MS
from tests.unit.engine.fakes import ORG, FakeSource, event
from tests.unit.engine.helpers import HOUR, MINUTE, NOW, Rig, at, rig


def busy_source(end_inclusive: bool = True) -> FakeSource:
    """An event every 10 minutes from 06:00 to 12:25 on 2026-05-04 (NOW is 12:00)."""
    source = FakeSource(end_inclusive=end_inclusive)
    source.add(
        ORG,
        *(
            event(f"2026-05-04T{h:02d}:{m:02d}:00Z", f"e{h}{m:02d}")
            for h in range(6, 13)
            for m in range(0, 60, 10)
            if (h, m) <= (12, 20)
        ),
    )
    return source


def archive_lines(r: Rig) -> dict[str, list[bytes]]:
    return r.store.content()


def from_scratch(source: FakeSource, now: int, **config: object) -> dict[str, list[bytes]]:
    fresh = rig(replace(source, calls=[], count_calls=[]), **config)
    fresh.clock.now = now
    fresh.engine.run([ORG])
    return archive_lines(fresh)


@pytest.mark.parametrize("end_inclusive", [True, False], ids=["inclusive", "exclusive"])
def test_a_run_fifteen_minutes_later_counts_open_buckets_and_reads_only_new_events(
    end_inclusive: bool,
) -> None:
    # Given a run at 12:00 (buckets 10:00 and 11:00 open, archived through 11:55)
    source = busy_source(end_inclusive)
    r = rig(source)
    r.engine.run([ORG])
    # When the engine runs again 15 minutes later
    source.calls.clear()
    source.count_calls.clear()
    r.clock.now = NOW + 15 * MINUTE
    r.engine.run([ORG])
    # Then each open bucket cost one count request over its archived part (its end as DI
    # reads end_time, learnt by the first run)
    last_ms = MS if end_inclusive else 0
    assert source.count_calls == [
        (ORG, at("2026-05-04T10:00"), at("2026-05-04T11:00") - last_ms),
        (ORG, at("2026-05-04T11:00"), at("2026-05-04T11:55") - last_ms),
    ]
    # And events were read only past the high-water marks (10:00 is archived whole)
    assert source.calls == [
        (ORG, at("2026-05-04T11:55"), at("2026-05-04T12:00")),
        (ORG, at("2026-05-04T12:00"), at("2026-05-04T12:10")),
    ]
    # And the archive is what a run from scratch at the same time writes
    assert archive_lines(r) == from_scratch(source, NOW + 15 * MINUTE)


def test_a_late_event_in_the_archived_part_moves_the_count_and_the_bucket_is_read_whole() -> None:
    # Given a run at 12:00, then DI indexing a late event at 11:05 (archived part of 11:00)
    source = busy_source()
    r = rig(source)
    r.engine.run([ORG])
    source.add(ORG, event("2026-05-04T11:05:00Z", "late"))
    source.calls.clear()
    # When the engine runs 15 minutes later
    r.clock.now = NOW + 15 * MINUTE
    r.engine.run([ORG])
    # Then the 11:00 bucket was read whole and holds the late event once
    assert (ORG, at("2026-05-04T11:00"), at("2026-05-04T12:00")) in source.calls
    ids = [json.loads(line)["id"] for lines in archive_lines(r).values() for line in lines]
    assert ids.count("late") == 1
    assert len(ids) == len(set(ids))
    assert archive_lines(r) == from_scratch(source, NOW + 15 * MINUTE)


def test_a_lost_checkpoint_save_only_costs_reads_never_events() -> None:
    # Given two runs, the second one's checkpoint save lost (killed after its writes)
    source = busy_source()
    r = rig(source)
    r.engine.run([ORG])
    stale = json.loads(json.dumps(r.checkpoints.documents[ORG]))
    r.clock.now = NOW + 15 * MINUTE
    r.engine.run([ORG])
    r.checkpoints.documents[ORG] = stale
    source.add(ORG, event("2026-05-04T11:58:00Z", "late-near-mark"))
    # When the next run reads on from the stale high-water marks
    r.clock.now = NOW + 30 * MINUTE
    r.engine.run([ORG])
    # Then the archive equals a run from scratch: nothing lost, nothing twice
    assert archive_lines(r) == from_scratch(source, NOW + 30 * MINUTE)


def test_a_closing_bucket_archived_to_its_end_is_counted_not_read() -> None:
    # Given a run at 12:00 that archived 10:00-11:00 whole while it was still open
    source = busy_source()
    r = rig(source, lookback_ns=12 * HOUR)
    r.engine.run([ORG])
    source.calls.clear()
    # When the bucket closes (11:00 + 2 h settle) and the engine runs
    r.clock.now = at("2026-05-04T13:00")
    r.engine.run([ORG])
    # Then no events request covers it, and the checkpoint moved past it
    assert all(start >= at("2026-05-04T11:00") for _, start, _ in source.calls)
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T11:00:00Z"
    assert archive_lines(r) == from_scratch(source, at("2026-05-04T13:00"), lookback_ns=12 * HOUR)


def test_concurrent_runs_read_once_too() -> None:
    # Given the same steady state with four buckets in flight
    source = busy_source()
    r = rig(source, concurrency=4)
    r.engine.run([ORG])
    source.calls.clear()
    source.count_calls.clear()
    # When the engine runs 15 minutes later
    r.clock.now = NOW + 15 * MINUTE
    r.engine.run([ORG])
    # Then it counted the open buckets and read only past their marks
    assert len(source.count_calls) == 2
    assert sorted(source.calls) == [
        (ORG, at("2026-05-04T11:55"), at("2026-05-04T12:00")),
        (ORG, at("2026-05-04T12:00"), at("2026-05-04T12:10")),
    ]
    assert archive_lines(r) == from_scratch(source, NOW + 15 * MINUTE)


def test_small_buckets_keep_the_checkpoint_within_ssm_standard_tier() -> None:
    # Given 1-minute buckets (over a hundred open within a 2-hour settle)
    source = busy_source()
    r = rig(source, bucket_ns=MINUTE)
    # When the engine runs
    r.engine.run([ORG])
    # Then at most MAX_OPEN_BUCKETS marks are kept and the document stays under 4 KB
    document = r.checkpoints.documents[ORG]
    assert len(document["open_buckets"]) == MAX_OPEN_BUCKETS
    assert len(json.dumps(document).encode()) < 4096


def _document(**changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "schema_version": 1,
        "closed_through": "2026-05-04T10:00:00Z",
        "bucket_minutes": 60,
        "updated_at": "2026-05-04T12:00:00Z",
        "open_buckets": [
            {"start": "2026-05-04T11:00:00Z", "through": "2026-05-04T11:55:00Z", "events": 3}
        ],
        "end_time_reading": "exclusive",
    }
    document.update(changes)
    return document


def test_open_bucket_marks_round_trip() -> None:
    checkpoint = Checkpoint.from_document(_document(), org_id=ORG)
    assert checkpoint.open_buckets[0].through_ns == at("2026-05-04T11:55")
    assert checkpoint.to_document() == _document()


@pytest.mark.parametrize(
    "entry",
    [
        {"start": "2026-05-04T09:00:00Z", "through": "2026-05-04T09:30:00Z", "events": 1},
        {"start": "2026-05-04T11:30:00Z", "through": "2026-05-04T11:40:00Z", "events": 1},
        {"start": "2026-05-04T11:00:00Z", "through": "2026-05-04T12:30:00Z", "events": 1},
        {"start": "2026-05-04T11:00:00Z", "through": "2026-05-04T11:00:00Z", "events": 1},
        {"start": "2026-05-04T11:00:00Z", "through": "2026-05-04T11:10:00.0000005Z", "events": 1},
        {"start": "2026-05-04T11:00:00Z", "through": "2026-05-04T11:10:00Z", "events": -1},
        {"start": "2026-05-04T11:00:00Z", "through": "2026-05-04T11:10:00Z", "events": "3"},
        {"start": "2026-05-04T11:00:00Z", "events": 3},
        "11:00",
    ],
    ids=[
        "before-checkpoint",
        "not-a-boundary",
        "past-bucket",
        "empty",
        "sub-ms",
        "negative",
        "string-count",
        "no-through",
        "not-object",
    ],
)
def test_an_inconsistent_open_bucket_mark_is_refused_with_what_to_do(entry: object) -> None:
    with pytest.raises(CheckpointError, match="delete the checkpoint"):
        Checkpoint.from_document(_document(open_buckets=[entry]), org_id=ORG)


def test_too_many_marks_or_a_strange_reading_are_refused() -> None:
    entries = [
        {
            "start": f"2026-05-04T{h:02d}:00:00Z",
            "through": f"2026-05-04T{h:02d}:10:00Z",
            "events": 1,
        }
        for h in range(10, 24)
    ]
    with pytest.raises(CheckpointError, match="at most"):
        Checkpoint.from_document(_document(open_buckets=entries * 2, bucket_minutes=60), org_id=ORG)
    with pytest.raises(CheckpointError, match="end_time_reading"):
        Checkpoint.from_document(_document(end_time_reading="both"), org_id=ORG)


def test_the_engine_keeps_working_when_learning_the_reading_fails() -> None:
    # Given a source whose count fails (the reading cannot be learnt)
    source = busy_source()
    r = rig(source)

    def broken_count(org_id: str, start_ns: int, end_ns: int) -> int:
        from di_archiver.errors import DITransientError

        raise DITransientError("count unavailable")

    source.count = broken_count  # type: ignore[method-assign]
    # When the engine runs
    report = r.engine.run([ORG])
    # Then the run succeeds without a reading, and the marks are kept
    assert not report.failed
    assert "end_time_reading" not in r.checkpoints.documents[ORG]
    assert r.checkpoints.documents[ORG]["open_buckets"]


def test_a_count_di_garbles_falls_back_to_reading_the_bucket_whole_with_a_warning() -> None:
    # Given a run at 12:00, then DI's count endpoint answering garbage
    source = busy_source()
    r = rig(source)
    r.engine.run([ORG])

    def garbled_count(org_id: str, start_ns: int, end_ns: int) -> int:
        raise DIResponseError('DI /events/count answered without a valid "count"', status=200)

    source.count = garbled_count  # type: ignore[method-assign]
    source.add(ORG, event("2026-05-04T11:05:00Z", "late"))
    source.calls.clear()
    # When the engine runs 15 minutes later
    r.clock.now = NOW + 15 * MINUTE
    report = r.engine.run([ORG])
    # Then it did not fail: the open buckets were read whole, and it said why
    assert not report.failed
    assert (ORG, at("2026-05-04T11:00"), at("2026-05-04T12:00")) in source.calls
    assert any("did not count" in message for message, _ in r.observer.warnings)
    assert archive_lines(r) == from_scratch(busy_source_with_late(), NOW + 15 * MINUTE)


def busy_source_with_late() -> FakeSource:
    source = busy_source()
    source.add(ORG, event("2026-05-04T11:05:00Z", "late"))
    return source
