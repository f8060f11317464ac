"""Time inside a bucket: the source gets a deadline, and checkpoints are saved on time too.

One DI request can take minutes (retries, timeouts) and a Lambda is killed at its limit; what
the checkpoint does not cover by then is redone by the next run.
"""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from di_archiver.domain.engine import EngineRunError
from di_archiver.errors import DITransientError
from di_archiver.raw_events import RawEvent
from tests.unit.engine.fakes import ORG, FakeSource, event
from tests.unit.engine.helpers import at, rig


@dataclass
class Remaining:
    """The Lambda's remaining time, set by the test."""

    seconds: float = 600.0

    def __call__(self) -> float:
        return self.seconds


@dataclass
class BoundedSource(FakeSource):
    """A source with ``set_deadline`` (like DIClient) that can fail a chosen bucket."""

    deadline: Callable[[], float] | None = None
    deadlines_seen: list[float | None] = field(default_factory=list)
    on_fetch: Callable[[int], None] | None = None

    def set_deadline(self, deadline: Callable[[], float] | None) -> None:
        self.deadline = deadline

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[list[RawEvent]]:
        self.deadlines_seen.append(None if self.deadline is None else self.deadline())
        if self.on_fetch is not None:
            self.on_fetch(start_ns)
        yield from super().iter_pages(org_id, start_ns, end_ns)


def hourly() -> BoundedSource:
    source = BoundedSource()
    source.add(ORG, *(event(f"2026-05-04T{h:02d}:30:00Z", f"e{h}") for h in range(6, 12)))
    return source


def test_the_source_is_bounded_by_the_remaining_time_minus_half_the_reserve() -> None:
    # Given a source that accepts a deadline, 600 s left and a 10 s reserve
    source, remaining = hourly(), Remaining(600.0)
    r = rig(source, time_budget_reserve_s=10.0)
    # When the engine runs
    r.engine.run([ORG], remaining_seconds=remaining)
    # Then every fetch saw the deadline (remaining - 5 s), and it is lifted after the run
    assert source.deadlines_seen == [595.0] * 6
    assert source.deadline is None


def test_without_a_time_budget_the_source_is_not_bounded() -> None:
    source = hourly()
    r = rig(source)
    r.engine.run([ORG])
    assert source.deadlines_seen == [None] * 6


@pytest.mark.parametrize("pipeline", [True, False])
def test_running_out_of_time_inside_a_bucket_stops_early_and_keeps_finished_work(
    pipeline: bool,
) -> None:
    # Given a source that gives up "out of time" in the 08:00 bucket as the budget runs out
    source, remaining = hourly(), Remaining(600.0)

    def fetch(start_ns: int) -> None:
        if start_ns == at("2026-05-04T08:00"):
            remaining.seconds = 4.0
            raise DITransientError("DI /events: out of time (1.0 s of the run's budget left)")

    source.on_fetch = fetch
    r = rig(source, pipeline=pipeline, time_budget_reserve_s=10.0)
    # When the engine runs: then the org stops early without failing the run
    report = r.engine.run([ORG], remaining_seconds=remaining)
    assert report.stopped_early
    assert report.failed == ()
    # And the buckets finished before it are checkpointed, the rest is left for the next run
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T08:00:00Z"
    assert [b.start_ns for b in r.observer.buckets] == [
        at("2026-05-04T06:00"),
        at("2026-05-04T07:00"),
    ]
    assert any("ran out of time" in message for message, _ in r.observer.warnings)
    assert source.deadline is None


def test_a_transient_failure_with_time_left_still_fails_the_run() -> None:
    # Given DI failing for good in the 08:00 bucket while plenty of time remains
    source, remaining = hourly(), Remaining(600.0)

    def fetch(start_ns: int) -> None:
        if start_ns == at("2026-05-04T08:00"):
            raise DITransientError("DI /events failed after 8 attempts; last: HTTP 503")

    source.on_fetch = fetch
    r = rig(source, time_budget_reserve_s=10.0)
    # When the engine runs: then the org fails (and alarms), finished buckets still checkpointed
    with pytest.raises(EngineRunError, match="HTTP 503"):
        r.engine.run([ORG], remaining_seconds=remaining)
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T08:00:00Z"
    assert source.deadline is None


def test_the_checkpoint_is_saved_once_a_minute_even_before_checkpoint_every_buckets() -> None:
    # Given buckets that each take 61 s to fetch and a save only every 24 buckets by count
    source = hourly()
    seen: dict[int, str] = {}
    r = rig(source, pipeline=False, checkpoint_every=24, checkpoint_interval_s=60.0)

    def fetch(start_ns: int) -> None:
        r.clock.now += 61 * 1_000_000_000
        seen[start_ns] = r.checkpoints.documents[ORG]["closed_through"]

    source.on_fetch = fetch
    # When the engine runs
    r.engine.run([ORG])
    # Then when the 09:00 bucket is fetched, the checkpoint already covers 06:00-08:00 (a kill
    # at that moment would lose one bucket, not all since the pin)
    assert seen[at("2026-05-04T09:00")] == "2026-05-04T08:00:00Z"
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


def test_fast_buckets_are_not_saved_one_by_one() -> None:
    # Given buckets that take no time (a fixed clock)
    r = rig(hourly(), checkpoint_every=24, checkpoint_interval_s=60.0)
    # When the engine runs: then only the pin and the final save happen
    r.engine.run([ORG])
    assert r.checkpoints.saves == 2
