"""Reconcile sealed days with DI's ``/events/count`` and repair the days that lack events.

For each sealed day still inside DI retention, DI's count for the day is compared with the
manifest's archived count (see :func:`.seal.di_count_window` for how the window is asked and
why both end-time readings are accepted). A day where DI has *more* events is narrowed to the
buckets whose counts differ; only those are re-snapshotted by the engine, then the day is
re-sealed (the manifest records the repair and later links are rewritten). A day where DI has
*fewer* events (aged out, or an API glitch) is reported and never touched: the archive never
deletes an event because DI forgot it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal, Protocol

from di_archiver.domain.ports import EventSource
from di_archiver.domain.seal import (
    DaySealer,
    MaintenanceObserver,
    NullMaintenanceObserver,
    archived_events_by_window,
    counts_agree,
    day_bounds,
    di_count_window,
    list_manifest_days,
)
from di_archiver.errors import ArchiverError, IntegrityError, SettingsError
from di_archiver.layout import NS_PER_DAY, bucket_object_key

DayStatus = Literal["ok", "repaired", "di_lower", "unresolved"]


class BucketSnapshotter(Protocol):
    """The engine's re-snapshot of one bucket (``ArchiveEngine.snapshot_bucket``)."""

    def snapshot_bucket(self, org_id: str, start_ns: int, end_ns: int) -> object: ...


@dataclass(frozen=True, slots=True)
class DayCheck:
    """The outcome of reconciling one sealed day."""

    org_id: str
    day: date
    di_count: int
    archived_before: int
    archived_after: int
    status: DayStatus
    buckets_resnapshotted: tuple[str, ...] = ()


class Reconciler:
    """Compares and repairs one org's sealed days inside the lookback window."""

    def __init__(
        self,
        *,
        source: EventSource,
        sealer: DaySealer,
        snapshotter: BucketSnapshotter,
        bucket_ns: int,
        lookback_ns: int,
        clock: Callable[[], int] = time.time_ns,
        observer: MaintenanceObserver | None = None,
    ) -> None:
        if bucket_ns <= 0 or NS_PER_DAY % bucket_ns:
            raise SettingsError(f"bucket width must divide a day, got {bucket_ns} ns")
        self.source = source
        self.sealer = sealer
        self.snapshotter = snapshotter
        self.bucket_ns = bucket_ns
        self.lookback_ns = lookback_ns
        self.clock = clock
        self.observer = observer or NullMaintenanceObserver()

    def days_in_scope(self, org_id: str, closed_through: int) -> list[date]:
        """Sealed days wholly inside DI retention and wholly closed."""
        oldest = self.clock() - self.lookback_ns
        return [
            day
            for day in list_manifest_days(self.sealer.store, self.sealer.prefix, org_id)
            if day_bounds(day)[0] >= oldest and day_bounds(day)[1] <= closed_through
        ]

    def reconcile_org(
        self,
        org_id: str,
        closed_through: int,
        *,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[DayCheck]:
        """Check every day in scope, newest first; repair those DI has more events for."""
        self.sealer.complete_pending_relink(org_id)
        checks = []
        for day in reversed(self.days_in_scope(org_id, closed_through)):
            if should_stop is not None and should_stop():
                break
            checks.append(self.reconcile_day(org_id, day))
        return checks

    def reconcile_day(self, org_id: str, day: date) -> DayCheck:
        """Compare one sealed day with DI and repair it when DI has more events.

        Every failure is an :class:`ArchiverError`: an unreadable archived line (a bare
        ``JSONDecodeError`` from the shared readers) becomes an :class:`IntegrityError` naming
        the day, so the caller can report it and carry on with other orgs.
        """
        try:
            return self._reconcile_day(org_id, day)
        except ArchiverError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"org {org_id}: sealed day {day} holds unreadable content "
                f"({type(exc).__name__}); run `di-archiver verify`"
            ) from exc

    def _reconcile_day(self, org_id: str, day: date) -> DayCheck:
        loaded = self.sealer.load_manifest(org_id, day)
        if loaded is None:
            raise IntegrityError(f"day {day} of org {org_id} is not sealed")
        manifest = loaded[0]
        start, end = day_bounds(day)
        di_count = self.source.count(org_id, *di_count_window(start, end))
        archived = manifest.archived_count
        if di_count == archived:
            return DayCheck(org_id, day, di_count, archived, archived, "ok")
        buckets = [(b, b + self.bucket_ns) for b in range(start, end, self.bucket_ns)]
        (day_total, day_last_ms), *per_bucket = archived_events_by_window(
            self.sealer.store, manifest, [(start, end), *buckets]
        )
        if counts_agree(di_count, day_total, day_last_ms):
            return DayCheck(org_id, day, di_count, archived, archived, "ok")
        if di_count < archived:
            self.observer.on_warning(
                "DI counts fewer events than the archive holds; nothing deleted",
                org_id=org_id,
                day=day.isoformat(),
                di_count=di_count,
                archived_count=archived,
            )
            return DayCheck(org_id, day, di_count, archived, archived, "di_lower")
        differing = []
        for (b_start, b_end), (held, held_last_ms) in zip(buckets, per_bucket, strict=True):
            counted = self.source.count(org_id, *di_count_window(b_start, b_end))
            if counted > held and not counts_agree(counted, held, held_last_ms):
                differing.append((b_start, b_end))
        # Per-bucket counts may not add up to the day's (events indexed between the calls):
        # then the whole day is re-read rather than trusting either figure.
        for b_start, b_end in differing or buckets:
            self.snapshotter.snapshot_bucket(org_id, b_start, b_end)
        result = self.sealer.seal_day(org_id, day)
        names = tuple(
            bucket_object_key("", org_id, "x", b_start, b_end).rsplit("/", 1)[1].split(".")[0]
            for b_start, b_end in differing or buckets
        )
        status: DayStatus = "repaired" if result.events > archived else "unresolved"
        if status == "unresolved":
            self.observer.on_warning(
                "DI counts more events than a re-snapshot returned; will retry next pass",
                org_id=org_id,
                day=day.isoformat(),
                di_count=di_count,
                archived_count=result.events,
            )
        return DayCheck(org_id, day, di_count, archived, result.events, status, names)
