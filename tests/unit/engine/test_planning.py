import pytest

from di_archiver.domain.planning import (
    align_down,
    align_up,
    count_buckets,
    plan_buckets,
    validate_bucket_width,
)
from di_archiver.layout import LayoutError
from tests.unit.engine.helpers import HOUR, MINUTE, NOW, at


def test_plan_runs_from_start_to_now_minus_lag_with_a_closed_prefix() -> None:
    # Given a start six hours back, a 5-minute lag and a 2-hour settle horizon
    start = NOW - 6 * HOUR
    # When planning
    plan = list(
        plan_buckets(
            start_ns=start, now_ns=NOW, bucket_ns=HOUR, lag_ns=5 * MINUTE, settle_ns=2 * HOUR
        )
    )
    # Then six hourly buckets are planned; those ending by now - settle are closed
    assert [(b.start_ns, b.end_ns) for b in plan] == [
        (start + i * HOUR, start + (i + 1) * HOUR) for i in range(6)
    ]
    assert [b.closed for b in plan] == [True, True, True, True, False, False]
    # And the newest bucket is fetched only up to now - lag (partial, stays open)
    assert plan[-1].fetch_end_ns == NOW - 5 * MINUTE
    assert plan[-1].partial
    assert not any(b.partial for b in plan[:-1])
    assert count_buckets(start_ns=start, now_ns=NOW, bucket_ns=HOUR, lag_ns=5 * MINUTE) == 6


def test_a_bucket_needs_both_lag_and_settle_to_close() -> None:
    # Given a settle of zero but a lag of 5 minutes
    plan = list(
        plan_buckets(
            start_ns=at("2026-05-04T10:00:00"),
            now_ns=at("2026-05-04T11:03:00"),
            bucket_ns=HOUR,
            lag_ns=5 * MINUTE,
            settle_ns=0,
        )
    )
    # Then the bucket ending 2 minutes after now - lag is not closed yet
    assert [(b.closed, b.partial) for b in plan] == [(False, True)]


def test_nothing_is_planned_when_the_checkpoint_reaches_the_horizon() -> None:
    start = align_up(NOW, HOUR)
    assert (
        list(plan_buckets(start_ns=start, now_ns=NOW, bucket_ns=HOUR, lag_ns=0, settle_ns=0)) == []
    )
    assert count_buckets(start_ns=start, now_ns=NOW, bucket_ns=HOUR, lag_ns=0) == 0


def test_alignment_is_to_utc_midnight() -> None:
    # Given a 90-minute-free width that divides a day (e.g. 15 minutes)
    ts = at("2026-05-04T10:44:59.999")
    # Then alignment lands on the quarter hours of the UTC day
    assert align_down(ts, 15 * MINUTE) == at("2026-05-04T10:30:00")
    assert align_up(ts, 15 * MINUTE) == at("2026-05-04T10:45:00")
    assert align_up(at("2026-05-04T10:45:00"), 15 * MINUTE) == at("2026-05-04T10:45:00")


@pytest.mark.parametrize("width", [0, -HOUR, 7 * MINUTE, HOUR + 1, 25 * HOUR])
def test_widths_must_be_whole_minutes_dividing_a_day(width: int) -> None:
    with pytest.raises(LayoutError):
        validate_bucket_width(width)


def test_planning_refuses_an_unaligned_start() -> None:
    with pytest.raises(LayoutError):
        list(
            plan_buckets(start_ns=NOW + 1, now_ns=NOW + HOUR, bucket_ns=HOUR, lag_ns=0, settle_ns=0)
        )
