"""Several buckets (and orgs) in flight: same archive, checkpoint on a gap-free prefix, fairness."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from di_archiver.domain.engine import EngineRunError
from di_archiver.domain.planning import PlannedBucket
from di_archiver.domain.scheduler import ContiguousPrefix, run_units
from di_archiver.errors import DIAuthenticationError, SettingsError, StoreError
from di_archiver.timestamps import format_timestamp_ns
from tests.unit.engine.fakes import ORG, ORG_B, FakeSource, event
from tests.unit.engine.helpers import CONFIG, HOUR, MINUTE, at, rig

ORG_C = "64a0c0ffee0000000000c003"


def corpus(*orgs: str) -> FakeSource:
    """Three events per hour for each org over the 48 hours before NOW (12:00 on 05-04)."""
    source = FakeSource(page_size=2)
    first = at("2026-05-02T12:00")
    for org in orgs:
        for h in range(48):
            for m in (5, 25, 45):
                ts = format_timestamp_ns(first + h * HOUR + m * MINUTE)
                source.add(org, event(ts, f"{org[-4:]}-{h}-{m}"))
    return source


def archived_ids(store: Any) -> list[str]:
    return sorted(json.loads(line)["id"] for lines in store.content().values() for line in lines)


def test_a_concurrent_run_archives_exactly_what_one_cursor_does() -> None:
    # Given the same two-org corpus archived with one cursor and with 4 buckets in flight
    one = rig(corpus(ORG, ORG_B), lookback_ns=48 * HOUR)
    many = rig(corpus(ORG, ORG_B), lookback_ns=48 * HOUR, concurrency=4)
    sequential = one.engine.run([ORG, ORG_B])
    concurrent = many.engine.run([ORG, ORG_B])
    # Then objects, bytes, checkpoints and the report agree
    assert many.store.content() == one.store.content()
    assert {k: d["closed_through"] for k, d in many.checkpoints.documents.items()} == {
        k: d["closed_through"] for k, d in one.checkpoints.documents.items()
    }
    assert [(o.org_id, o.buckets, o.events, o.checkpoint_after_ns) for o in concurrent.orgs] == [
        (o.org_id, o.buckets, o.events, o.checkpoint_after_ns) for o in sequential.orgs
    ]
    # And no event is archived twice
    ids = archived_ids(many.store)
    # (the 11:55-12:00 slice is past the 5-minute lag, so nothing of it yet)
    assert len(ids) == len(set(ids)) == 2 * 48 * 3


def test_the_checkpoint_never_passes_a_failed_bucket_written_out_of_order() -> None:
    # Given the 08:00 bucket's PUT fails while later buckets are written by other workers
    r = rig(corpus(ORG), lookback_ns=8 * HOUR, concurrency=3, checkpoint_every=1)
    put = r.store.put

    def failing_put(key: str, body: bytes, metadata: Any) -> None:
        if "/dt=2026-05-04/0800-0900" in key:
            raise StoreError("disk full")
        put(key, body, metadata)

    r.store.put = failing_put  # type: ignore[method-assign]
    # When the run fails
    with pytest.raises(EngineRunError, match="disk full"):
        r.engine.run([ORG])
    # Then the checkpoint stops at the failed bucket, even if later ones were written
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T08:00:00Z"
    # And a clean rerun completes and checkpoints everything closed
    r.store.put = put  # type: ignore[method-assign]
    r.engine.run([ORG])
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


class SlowFirstBucket(FakeSource):
    """Holds the 04:00 bucket until the 07:00 bucket was fetched, so later buckets finish first."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.later_done = threading.Event()
        self.checkpoint_when_released: str | None = None
        self.checkpoints: Any = None

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Any:
        if start_ns == at("2026-05-04T04:00"):
            assert self.later_done.wait(10)
            self.checkpoint_when_released = self.checkpoints.documents[ORG]["closed_through"]
        pages = list(super().iter_pages(org_id, start_ns, end_ns))
        if start_ns == at("2026-05-04T07:00"):
            self.later_done.set()
        yield from pages


def test_buckets_finishing_after_a_gap_wait_for_it_before_the_checkpoint_moves() -> None:
    # Given 04:00 is slow and 05:00..07:00 finish first, with a checkpoint save after every bucket
    source = SlowFirstBucket(page_size=2)
    for h in range(4, 12):
        source.add(ORG, event(f"2026-05-04T{h:02d}:30:00Z", f"e{h}"))
    r = rig(source, lookback_ns=8 * HOUR, concurrency=4, checkpoint_every=1)
    source.checkpoints = r.checkpoints
    # When the run completes
    r.engine.run([ORG])
    # Then while 04:00 was outstanding the checkpoint had not moved past it (only the pin)
    assert source.checkpoint_when_released == "2026-05-04T04:00:00Z"
    # And afterwards it covers every closed bucket
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


def test_one_orgs_failure_does_not_stop_the_others_running_concurrently() -> None:
    source = corpus(ORG_B, ORG_C)
    source.errors[ORG] = DIAuthenticationError("the API key was rejected", status=401)
    r = rig(source, concurrency=3)
    with pytest.raises(EngineRunError) as caught:
        r.engine.run([ORG, ORG_B, ORG_C])
    report = caught.value.report
    # Then A is reported once, B and C are archived and checkpointed, the report keeps org order
    assert [o.org_id for o in report.failed] == [ORG]
    assert [o.org_id for o in report.orgs] == [ORG, ORG_B, ORG_C]
    for org in (ORG_B, ORG_C):
        assert r.checkpoints.documents[org]["closed_through"] == "2026-05-04T10:00:00Z"
    assert sorted(o.org_id for o in r.observer.orgs) == sorted([ORG, ORG_B, ORG_C])


def test_the_time_budget_stops_new_units_and_the_next_run_continues() -> None:
    # Given time for three unit starts only
    r = rig(corpus(ORG), lookback_ns=8 * HOUR, concurrency=2)
    remaining = iter([100.0, 100.0, 100.0])
    report = r.engine.run([ORG], remaining_seconds=lambda: next(remaining, 0.0))
    # Then the run stops early with only what finished, and the next run completes the rest
    assert report.stopped_early
    assert report.orgs[0].buckets == 3
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T07:00:00Z"
    report = r.engine.run([ORG])
    assert not report.stopped_early
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


def test_concurrency_must_be_positive() -> None:
    from dataclasses import replace

    with pytest.raises(SettingsError, match="concurrency"):
        replace(CONFIG, concurrency=0)


# -- the scheduler on its own ------------------------------------------------------------------


@dataclass
class FakeOrg:
    """An org of ``n`` one-hour buckets whose units record what ran, and when."""

    name: str
    n: int
    log: list[str]
    fail_at: int | None = None
    done: list[int] = field(default_factory=list)
    failed: list[BaseException] = field(default_factory=list)
    finished_calls: int = 0
    gauge: Any = None
    planned: int = 0

    def next_bucket(self) -> PlannedBucket | None:
        if self.planned >= self.n:
            return None
        start = self.planned * HOUR
        self.planned += 1
        self.log.append(f"{self.name}{self.planned - 1}")
        return PlannedBucket(start, start + HOUR, start + HOUR, True)

    def run_unit(self, planned: PlannedBucket) -> int:
        index = planned.start_ns // HOUR
        if self.gauge is not None:
            self.gauge.enter()
        try:
            if index == self.fail_at:
                raise RuntimeError(f"{self.name} bucket {index} broke")
            return index
        finally:
            if self.gauge is not None:
                self.gauge.leave()

    def unit_done(self, planned: PlannedBucket, value: int) -> None:
        self.done.append(value)

    def unit_failed(self, planned: PlannedBucket | None, exc: BaseException) -> None:
        self.failed.append(exc)

    def stopped_by_budget(self) -> None:
        self.log.append(f"{self.name}-budget")

    def finished(self) -> None:
        self.finished_calls += 1


class Gauge:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.peak = 0

    def enter(self) -> None:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        threading.Event().wait(0.005)

    def leave(self) -> None:
        with self.lock:
            self.active -= 1


def test_orgs_take_turns_so_none_is_starved() -> None:
    # Given three orgs of different sizes and one worker
    log: list[str] = []
    orgs = [FakeOrg("a", 3, log), FakeOrg("b", 1, log), FakeOrg("c", 2, log)]
    run_units(orgs, concurrency=1)
    # Then buckets were started round robin, oldest first within each org
    assert log == ["a0", "b0", "c0", "a1", "c1", "a2"]
    assert [o.done for o in orgs] == [[0, 1, 2], [0], [0, 1]]
    assert [o.finished_calls for o in orgs] == [1, 1, 1]


def test_never_more_units_in_flight_than_the_concurrency() -> None:
    gauge = Gauge()
    orgs = [FakeOrg(name, 6, [], gauge=gauge) for name in "abc"]
    run_units(orgs, concurrency=4)
    assert gauge.peak <= 4
    assert sum(len(o.done) for o in orgs) == 18


def test_a_failing_unit_stops_only_its_org() -> None:
    log: list[str] = []
    broken = FakeOrg("a", 5, log, fail_at=1)
    healthy = FakeOrg("b", 5, log)
    run_units([broken, healthy], concurrency=1)
    assert [str(e) for e in broken.failed] == ["a bucket 1 broke"]
    assert broken.done == [0]
    assert "a2" not in log
    assert healthy.done == [0, 1, 2, 3, 4]
    assert (broken.finished_calls, healthy.finished_calls) == (1, 1)


def test_an_exhausted_budget_starts_nothing_more_and_says_so() -> None:
    log: list[str] = []
    orgs = [FakeOrg("a", 5, log), FakeOrg("b", 5, log)]
    checks = iter([False, False, False])
    run_units(orgs, concurrency=1, exhausted=lambda: next(checks, True))
    assert log == ["a0", "b0", "a1", "b-budget", "a-budget"]
    assert [o.finished_calls for o in orgs] == [1, 1]


def test_the_contiguous_prefix_only_moves_over_gap_free_buckets() -> None:
    def bucket(i: int) -> PlannedBucket:
        return PlannedBucket(i * HOUR, (i + 1) * HOUR, (i + 1) * HOUR, True)

    prefix = ContiguousPrefix(0)
    assert prefix.add(bucket(1)) == []
    assert prefix.add(bucket(2)) == []
    assert (prefix.end_ns, prefix.waiting) == (0, 2)
    assert prefix.add(bucket(0)) == [bucket(0), bucket(1), bucket(2)]
    assert prefix.end_ns == 3 * HOUR
    with pytest.raises(ValueError, match="twice"):
        prefix.add(bucket(1))
