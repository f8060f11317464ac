"""Read each event once: open buckets are counted, and only what is new is read.

Invariant: the archive stays a pure function of what DI returns (the same keys, the same lines)
whether a bucket was read whole or in parts; a late event in the already-archived part of a
bucket is still found (by its count) and archived once; and whatever a count cannot see (an
event gone while another arrived, a lost object, racing runs) is healed when the bucket closes,
because the closing run reads it whole.
"""

import copy
import json
from dataclasses import replace

import pytest

from di_archiver.domain.checkpoint import MAX_OPEN_BUCKETS, Checkpoint
from di_archiver.errors import CheckpointError, DIResponseError
from tests.unit.engine.fakes import ORG, FakeSource, event
from tests.unit.engine.helpers import HOUR, MINUTE, NOW, Rig, at, rig


def busy_source(end_inclusive: bool = True) -> FakeSource:
    """An event every 10 minutes (7 s past) from 06:00 to 12:20 on 2026-05-04 (NOW is 12:00)."""
    source = FakeSource(end_inclusive=end_inclusive)
    source.add(
        ORG,
        *(
            event(f"2026-05-04T{h:02d}:{m:02d}:07Z", f"e{h}{m:02d}")
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
    # Then each open bucket cost one count request over its archived part
    assert source.count_calls == [
        (ORG, at("2026-05-04T10:00"), at("2026-05-04T11:00")),
        (ORG, at("2026-05-04T11:00"), at("2026-05-04T11:55")),
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


def test_an_event_at_the_marks_millisecond_costs_an_exact_count_not_a_whole_read() -> None:
    # Given DI reading end_time inclusively, and a new event in the mark's own millisecond
    source = busy_source(end_inclusive=True)
    r = rig(source)
    r.engine.run([ORG])
    source.add(ORG, event("2026-05-04T11:55:00.0004Z", "at-mark"))
    source.calls.clear()
    source.count_calls.clear()
    # When the engine runs 15 minutes later
    r.clock.now = NOW + 15 * MINUTE
    r.engine.run([ORG])
    # Then the 11:00 count moved only by that event: the exact two-request count says the
    # archived part is unchanged, so the bucket is read from its mark, not whole
    assert len(source.count_calls) == 4
    assert (ORG, at("2026-05-04T11:55"), at("2026-05-04T12:00")) in source.calls
    assert (ORG, at("2026-05-04T11:00"), at("2026-05-04T12:00")) not in source.calls
    assert archive_lines(r) == from_scratch(source, NOW + 15 * MINUTE)


def test_the_run_that_closes_a_bucket_reads_it_whole() -> None:
    # Given a run at 12:00 that archived 10:00-11:00 to its end while it was still open
    source = busy_source()
    r = rig(source, lookback_ns=12 * HOUR)
    r.engine.run([ORG])
    source.calls.clear()
    # When the bucket closes (11:00 + 2 h settle) and the engine runs
    r.clock.now = at("2026-05-04T13:00")
    r.engine.run([ORG])
    # Then it was read whole once more, and the checkpoint moved past it
    assert (ORG, at("2026-05-04T10:00"), at("2026-05-04T11:00")) in source.calls
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T11:00:00Z"
    assert archive_lines(r) == from_scratch(source, at("2026-05-04T13:00"), lookback_ns=12 * HOUR)


def _ids(r: Rig) -> list[str]:
    return sorted(json.loads(line)["id"] for lines in r.store.content().values() for line in lines)


def _run_until_closed(r: Rig, *times: str) -> None:
    for text in times:
        r.clock.now = at(f"2026-05-04T{text}")
        r.engine.run([ORG])


def test_an_event_gone_while_a_late_one_arrived_is_healed_when_the_bucket_closes() -> None:
    # Given a run at 12:00, then DI no longer returning one archived event of 11:00 while a
    # late one arrives there: the count of the archived part does not move
    source = busy_source()
    r = rig(source)
    r.engine.run([ORG])
    source.events[ORG] = [e for e in source.events[ORG] if e["id"] != "e1120"]
    source.add(ORG, event("2026-05-04T11:25:00Z", "late"))
    # When the engine runs on until the bucket has closed
    _run_until_closed(r, "12:15", "13:00", "14:05")
    # Then the late event is archived (and the archived e1120 is kept: nothing is removed)
    assert "late" in _ids(r)
    assert "e1120" in _ids(r)


def test_racing_runs_are_healed_when_the_bucket_closes() -> None:
    # Given run 1 (11:00 bucket archived through 11:15), then runs A (11:50) and B (11:35)
    # racing from the same state: B's object lands last, A's checkpoint lands last, so A's
    # mark claims events B's object lacks
    source = FakeSource()
    source.add(ORG, *(event(f"2026-05-04T11:{m:02d}:30Z", f"m{m:02d}") for m in range(60)))
    r = rig(source)
    r.clock.now = at("2026-05-04T11:20")
    r.engine.run([ORG])
    state = (copy.deepcopy(r.store.objects), copy.deepcopy(r.checkpoints.documents))
    r.clock.now = at("2026-05-04T11:50")
    r.engine.run([ORG])
    a_checkpoint = copy.deepcopy(r.checkpoints.documents)
    b = rig(source)
    b.store.objects, b.checkpoints.documents = copy.deepcopy(state[0]), copy.deepcopy(state[1])
    b.clock.now = at("2026-05-04T11:35")
    b.engine.run([ORG])
    r.store.objects.update(b.store.objects)
    r.checkpoints.documents = a_checkpoint
    # When later runs carry on until the bucket has closed
    _run_until_closed(r, "12:05", "12:20", "13:00", "14:10")
    # Then every event is archived once
    assert _ids(r) == sorted(f"m{m:02d}" for m in range(60))


def test_a_lost_open_object_is_healed_when_the_bucket_closes() -> None:
    # Given a run at 12:00, then the 11:00 bucket's object lost
    source = busy_source()
    r = rig(source)
    r.engine.run([ORG])
    (key,) = [k for k in r.store.objects if k.endswith("/1100-1200.jsonl.gz")]
    del r.store.objects[key]
    # When the engine runs on until the bucket has closed
    _run_until_closed(r, "12:15", "14:05")
    # Then the archive is what a run from scratch writes
    assert _ids(r) == sorted(
        json.loads(line)["id"]
        for lines in from_scratch(source, r.clock.now, lookback_ns=12 * HOUR).values()
        for line in lines
        if json.loads(line)["timestamp"] >= "2026-05-04T06"
    )


def test_a_lag_raised_between_runs_never_lets_a_mark_claim_events_past_the_horizon() -> None:
    # Given a run at 12:00 with a 5-minute lag (11:00 marked through 11:55)
    source = busy_source()
    r = rig(source)
    r.engine.run([ORG])
    # And the lag then raised to 20 minutes (horizon 11:50, before the mark)
    slow = rig(source, lag_ns=20 * MINUTE)
    slow.engine._store, slow.engine._checkpoints = r.store, r.checkpoints
    slow.clock.now = NOW + 10 * MINUTE
    slow.engine.run([ORG])
    source.add(ORG, event("2026-05-04T11:05:00Z", "late"))
    slow.clock.now = NOW + 20 * MINUTE
    # When the engine runs again
    slow.engine.run([ORG])
    # Then the late event is archived
    assert "late" in _ids(r)


def test_marks_past_the_plan_are_dropped() -> None:
    # Given a checkpoint holding marks in the future (hand-edited or from a skewed clock)
    source = busy_source()
    r = rig(source)
    r.engine.run([ORG])
    r.checkpoints.documents[ORG]["open_buckets"] = [
        {
            "start": f"2027-01-01T{h:02d}:00:00Z",
            "through": f"2027-01-01T{h:02d}:10:00Z",
            "events": 1,
        }
        for h in range(24)
    ]
    # When the engine runs
    r.clock.now = NOW + 15 * MINUTE
    r.engine.run([ORG])
    # Then only marks of buckets it planned are kept
    kept = [m["start"] for m in r.checkpoints.documents[ORG]["open_buckets"]]
    assert kept
    assert not [start for start in kept if start.startswith("2027")]


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
    with pytest.raises(CheckpointError, match="remove open_buckets"):
        Checkpoint.from_document(_document(open_buckets=[entry]), org_id=ORG)


def test_too_many_marks_are_refused() -> None:
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
