"""DI revising an archived event: its current version replaces the archived one, loudly.

Invariant: an (id, timestamp) appears once in the archive, unless DI itself returns two different
events with it in one answer (a genuine collision).
"""

import json
from typing import Any

from di_archiver.archive_format import decode_lines, encode_events
from di_archiver.layout import day_of_ns, sealed_day_key
from tests.unit.engine.fakes import ORG, FakeSource, event
from tests.unit.engine.helpers import Rig, at, rig

NINE, TEN = at("2026-05-04T09:00"), at("2026-05-04T10:00")
KEY = f"di/org={ORG}/svc=directory/dt=2026-05-04/0900-1000.jsonl.gz"


def archived(r: Rig) -> list[dict[str, Any]]:
    return [json.loads(line) for line in decode_lines(r.store.objects[KEY][0])]


def test_a_revised_event_replaces_the_archived_version_and_is_reported() -> None:
    # Given an archived bucket with events "a" (v1) and "b"
    source = FakeSource()
    source.add(
        ORG,
        event("2026-05-04T09:01:00Z", "a", success=False),
        event("2026-05-04T09:02:00Z", "b"),
    )
    r = rig(source)
    r.engine.snapshot_bucket(ORG, NINE, TEN)
    # When DI now returns "a" with a changed field (same id and timestamp)
    source.events[ORG][0] = event("2026-05-04T09:01:00Z", "a", success=True)
    result = r.engine.snapshot_bucket(ORG, NINE, TEN)
    # Then the object holds each (id, timestamp) once, "a" in DI's current version
    assert [(e["id"], e.get("success")) for e in archived(r)] == [("a", True), ("b", None)]
    # And the revision is counted and warned about, never silent
    assert (result.revised, result.objects_written, result.collisions) == (1, 1, 0)
    warnings = [(m, f) for m, f in r.observer.warnings if "revised" in m]
    assert len(warnings) == 1
    assert warnings[0][0].startswith("DI revised 1 archived event(s)")
    assert warnings[0][1]["org_id"] == ORG


def test_a_revision_keeps_events_that_aged_out_of_di() -> None:
    # Given an archived bucket with "a" and "old"
    source = FakeSource()
    source.add(ORG, event("2026-05-04T09:01:00Z", "a", v=1), event("2026-05-04T09:05:00Z", "old"))
    r = rig(source)
    r.engine.snapshot_bucket(ORG, NINE, TEN)
    # When DI forgot "old" and revised "a"
    source.events[ORG] = [event("2026-05-04T09:01:00Z", "a", v=2)]
    r.engine.snapshot_bucket(ORG, NINE, TEN)
    # Then "old" is kept and "a" appears once, revised
    assert [(e["id"], e.get("v")) for e in archived(r)] == [("a", 2), ("old", None)]


def test_a_genuine_collision_within_one_answer_is_kept_and_is_not_a_revision() -> None:
    # Given DI returning two different events with the same id and timestamp in one answer
    source = FakeSource()
    source.add(
        ORG,
        event("2026-05-04T09:01:00Z", "radius-uuid3", client="x"),
        event("2026-05-04T09:01:00Z", "radius-uuid3", client="y"),
    )
    r = rig(source)
    first = r.engine.snapshot_bucket(ORG, NINE, TEN)
    # When the same answer is snapshotted again
    again = r.engine.snapshot_bucket(ORG, NINE, TEN)
    # Then both are kept, counted as a collision, and the rerun neither rewrites nor revises
    assert sorted(e["client"] for e in archived(r)) == ["x", "y"]
    assert (first.collisions, first.revised) == (1, 0)
    assert (again.objects_written, again.objects_unchanged, again.revised) == (0, 1, 0)
    assert not [m for m, _ in r.observer.warnings if "revised" in m]


def test_duplicates_left_by_an_earlier_union_are_cleaned_on_the_next_rewrite() -> None:
    # Given an object that already holds two versions of "a" (what the old union produced)
    source = FakeSource()
    source.add(ORG, event("2026-05-04T09:01:00Z", "a", v=2))
    r = rig(source)
    stale = encode_events(
        [event("2026-05-04T09:01:00Z", "a", v=1), event("2026-05-04T09:01:00Z", "a", v=2)]
    )
    r.store.put(KEY, stale.body, stale.metadata(fetched_at_ns=0))
    # When DI answers "a" v2 only
    result = r.engine.snapshot_bucket(ORG, NINE, TEN)
    # Then the stale v1 is replaced: "a" appears once
    assert [e.get("v") for e in archived(r)] == [2]
    assert (result.objects_written, result.revised) == (1, 1)


def test_a_revision_of_a_sealed_event_writes_only_the_new_version() -> None:
    # Given a sealed day holding "s" (v1) in 09:xx and "t" in 09:xx, bucket objects gone
    r = rig(FakeSource())
    sealed = encode_events(
        [event("2026-05-03T09:10:00Z", "s", v=1), event("2026-05-03T09:20:00Z", "t")]
    )
    day = day_of_ns(at("2026-05-03T00:00"))
    r.store.put(
        sealed_day_key("di", ORG, "directory", day), sealed.body, sealed.metadata(fetched_at_ns=0)
    )
    # When DI returns "s" revised for that bucket
    r.source.add(ORG, event("2026-05-03T09:10:00Z", "s", v=2))
    result = r.engine.snapshot_bucket(ORG, at("2026-05-03T09:00"), at("2026-05-03T10:00"))
    # Then the bucket object holds "s" once (v2) and the sealed "t"; the revision is reported
    key = f"di/org={ORG}/svc=directory/dt=2026-05-03/0900-1000.jsonl.gz"
    lines = [json.loads(line) for line in decode_lines(r.store.objects[key][0])]
    assert [(e["id"], e.get("v")) for e in lines] == [("s", 2), ("t", None)]
    assert result.revised == 1


def test_revisions_of_an_open_bucket_reach_the_results_of_the_run_that_closes_it() -> None:
    # Given a completed run, then DI revising an event of a still-open bucket (its count does
    # not move, so the runs while it is open read only past its mark)
    source = FakeSource()
    source.add(ORG, event("2026-05-04T11:10:00Z", "open", v=1))
    r = rig(source)
    r.engine.run([ORG])
    source.events[ORG] = [event("2026-05-04T11:10:00Z", "open", v=2)]
    # When the engine runs again, and again once the bucket has closed (12:00 + 2 h settle)
    r.engine.run([ORG])
    r.clock.now = at("2026-05-04T14:05")
    r.engine.run([ORG])
    # Then the closing run read it whole: its result carries the revision, and the archive
    # holds DI's current version once
    eleven = [b for b in r.observer.buckets if b.start_ns == at("2026-05-04T11:00")]
    assert [b.revised for b in eleven] == [0, 0, 1]
    assert eleven[-1].closed
