"""Which time buckets a run snapshots, and which of them are closed.

Buckets are aligned to UTC midnight. The Unix epoch is a UTC midnight and every allowed width
divides a day, so aligning to the epoch is the same as aligning to each day's midnight.
"""

from __future__ import annotations

from collections.abc import Iterator

from msgspec import Struct

from di_archiver.layout import NS_PER_DAY, LayoutError
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND

NS_PER_MINUTE = 60 * NS_PER_SECOND


class PlannedBucket(Struct, frozen=True):
    """One bucket ``[start, end)``; events are fetched up to ``fetch_end`` (``<= end``).

    ``fetch_end < end`` only for the newest bucket, which reaches past ``now - lag``: it is
    snapshotted partially and stays open, so the next runs complete it.

    ``archived_through_ns`` (with ``archived_events``): an earlier run archived the ``events``
    DI returned in ``[start, archived_through)``; if DI still counts as many there, only the
    rest needs reading.
    """

    start_ns: int
    end_ns: int
    fetch_end_ns: int
    closed: bool
    archived_through_ns: int | None = None
    archived_events: int = 0

    @property
    def partial(self) -> bool:
        return self.fetch_end_ns < self.end_ns

    @property
    def reads_from_ns(self) -> int:
        return self.start_ns if self.archived_through_ns is None else self.archived_through_ns


def validate_bucket_width(bucket_ns: int) -> int:
    """A bucket width must be whole minutes and divide a UTC day."""
    if bucket_ns <= 0 or bucket_ns % NS_PER_MINUTE or NS_PER_DAY % bucket_ns:
        raise LayoutError(
            f"bucket width must be whole minutes dividing a day (1440 min); got {bucket_ns} ns"
        )
    return bucket_ns


def align_down(ns: int, bucket_ns: int) -> int:
    """Start of the bucket holding ``ns``."""
    return ns - ns % bucket_ns


def align_up(ns: int, bucket_ns: int) -> int:
    """Smallest bucket boundary ``>= ns``."""
    return -(-ns // bucket_ns) * bucket_ns


def horizon_of(now_ns: int, lag_ns: int) -> int:
    """How far a run reads: ``now - lag`` on a whole millisecond, the resolution DI filters at,
    so that a later run can read on from there without a gap or an overlap."""
    horizon = now_ns - lag_ns
    return horizon - horizon % NS_PER_MS


def is_closed(end_ns: int, *, now_ns: int, lag_ns: int, settle_ns: int) -> bool:
    """A bucket is closed once late events have had ``settle`` to arrive and it is past the lag."""
    return end_ns <= now_ns - lag_ns and end_ns + settle_ns <= now_ns


def plan_buckets(
    *, start_ns: int, now_ns: int, bucket_ns: int, lag_ns: int, settle_ns: int
) -> Iterator[PlannedBucket]:
    """Buckets from ``start_ns`` (aligned) up to ``now - lag``, oldest first.

    Closedness is monotone in the bucket end, so the closed buckets always form a prefix.
    """
    if start_ns % bucket_ns:
        raise LayoutError("planning must start on a bucket boundary")
    horizon = horizon_of(now_ns, lag_ns)
    start = start_ns
    while start < horizon:
        end = start + bucket_ns
        yield PlannedBucket(
            start_ns=start,
            end_ns=end,
            fetch_end_ns=min(end, horizon),
            closed=is_closed(end, now_ns=now_ns, lag_ns=lag_ns, settle_ns=settle_ns),
        )
        start = end


def count_buckets(*, start_ns: int, now_ns: int, bucket_ns: int, lag_ns: int) -> int:
    """How many buckets :func:`plan_buckets` would yield (without building them)."""
    horizon = horizon_of(now_ns, lag_ns)
    if start_ns >= horizon:
        return 0
    return (align_up(horizon, bucket_ns) - start_ns) // bucket_ns
