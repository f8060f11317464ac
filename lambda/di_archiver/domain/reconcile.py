"""Reconcile every closed day with DI's exact counts and repair what the archive lacks.

Scope: every UTC day from the archive's first covered day (the checkpoint's backfill start, and
never older than the lookback) to the org's ``closed_through``, sealed or not, including the
closed hours of the current day. A day's *window* is the part of it that is both covered and
closed.

One pass per day:

1. DI's exact count of the window (:class:`~di_archiver.domain.counting.ExactCounter`, never
   "within either reading of end_time") is compared with the archive's distinct events in it.
2. When they differ, the day is narrowed to its buckets by exact counts; every bucket where DI
   has more is re-snapshotted by the engine (into the sealed day's staging area when the day is
   sealed), and a sealed day is re-sealed at once, so the repair is visible after one pass.
3. The repaired buckets are counted again. A bucket still short (``unresolved``) or one where
   DI has *fewer* events than the archive (``di_lower``: aged out, or DI lost them) is a
   *finding*: reported with both counts, never deleted from the archive, and the caller exits
   non-zero.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO, Literal, Protocol

from di_archiver.archive_format import META_COUNT, LineReader
from di_archiver.domain.counting import ExactCounter
from di_archiver.domain.ports import ArchiveStore, EventSource, StoredObject, open_object
from di_archiver.domain.seal import (
    DaySealer,
    MaintenanceObserver,
    NullMaintenanceObserver,
    OrgObjects,
    day_bounds,
    list_manifest_days,
    list_org_objects,
    merge_sorted_streams,
)
from di_archiver.errors import ArchiverError, IntegrityError, SettingsError
from di_archiver.layout import NS_PER_DAY, ObjectKey, day_of_ns
from di_archiver.timestamps import format_timestamp_ns, parse_timestamp_ns

DayStatus = Literal["ok", "repaired", "di_lower", "unresolved"]
FINDING_STATUSES: frozenset[str] = frozenset({"di_lower", "unresolved"})


class BucketSnapshotter(Protocol):
    """The engine's re-snapshot of one bucket (``ArchiveEngine.snapshot_bucket``)."""

    def snapshot_bucket(self, org_id: str, start_ns: int, end_ns: int) -> object: ...


@dataclass(frozen=True, slots=True)
class DayWindow:
    """The covered, closed part ``[start, end)`` of one UTC day of one org."""

    day: date
    start_ns: int
    end_ns: int

    @property
    def whole_day(self) -> bool:
        return (self.start_ns, self.end_ns) == day_bounds(self.day)


@dataclass(frozen=True, slots=True)
class BucketCheck:
    """One bucket whose counts differed: DI's exact count and the archive's, before/after."""

    start_ns: int
    end_ns: int
    di_count: int
    archived_before: int
    archived_after: int
    resnapshotted: bool

    @property
    def name(self) -> str:
        """``HHMM-HHMM`` like the bucket object's name (``2400`` is the next midnight)."""
        base = self.start_ns - self.start_ns % NS_PER_DAY
        return f"{_hhmm(self.start_ns - base)}-{_hhmm(self.end_ns - base)}"

    @property
    def status(self) -> DayStatus:
        if self.archived_after == self.di_count:
            return "repaired" if self.archived_before != self.di_count else "ok"
        return "unresolved" if self.archived_after < self.di_count else "di_lower"


def _hhmm(offset_ns: int) -> str:
    minutes = offset_ns // (60 * 1_000_000_000)
    return f"{minutes // 60:02d}{minutes % 60:02d}"


@dataclass(frozen=True, slots=True)
class DayCheck:
    """The outcome of reconciling one day (``buckets``: every bucket whose counts differed)."""

    org_id: str
    day: date
    di_count: int
    archived_before: int
    archived_after: int
    status: DayStatus
    buckets_resnapshotted: tuple[str, ...] = ()
    buckets: tuple[BucketCheck, ...] = ()
    sealed: bool = True
    start_ns: int = 0
    end_ns: int = 0

    @property
    def finding(self) -> bool:
        """True when the archive still disagrees with DI after the repair."""
        return self.status in FINDING_STATUSES

    def counts(self) -> dict[str, object]:
        """The day's and each differing bucket's counts as plain values, for reports and logs."""
        return {
            "day": self.day.isoformat(),
            "status": self.status,
            "di_count": self.di_count,
            "archived_before": self.archived_before,
            "archived_after": self.archived_after,
            "buckets": [
                {
                    "bucket": b.name,
                    "status": b.status,
                    "di_count": b.di_count,
                    "archived_before": b.archived_before,
                    "archived_after": b.archived_after,
                    "resnapshotted": b.resnapshotted,
                }
                for b in self.buckets
            ],
        }

    def describe(self) -> str:
        """One line naming the day, its window and each differing bucket with both counts."""
        window = (
            ""
            if not self.start_ns or (self.start_ns, self.end_ns) == day_bounds(self.day)
            else f" [{format_timestamp_ns(self.start_ns)}, {format_timestamp_ns(self.end_ns)})"
        )
        text = (
            f"org {self.org_id} day {self.day}{window}: {self.status}; DI counts "
            f"{self.di_count}, archive held {self.archived_before}, now {self.archived_after}"
        )
        if self.buckets:
            text += "; buckets " + ", ".join(
                f"{b.name} DI {b.di_count} archive {b.archived_before}->{b.archived_after}"
                f" ({b.status})"
                for b in self.buckets
            )
        return text


@dataclass
class _OrgState:
    objects: OrgObjects | None = None
    manifest_days: set[date] = field(default_factory=set)
    probed: bool = False


class Reconciler:
    """Compares and repairs one archive's closed days, org by org, with exact counts."""

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
        counter: ExactCounter | None = None,
        reseal: bool = True,
    ) -> None:
        if bucket_ns <= 0 or NS_PER_DAY % bucket_ns:
            raise SettingsError(f"bucket width must divide a day, got {bucket_ns} ns")
        self.source = source
        self.counter = counter or ExactCounter(source)
        self.sealer = sealer
        self.snapshotter = snapshotter
        self.bucket_ns = bucket_ns
        self.lookback_ns = lookback_ns
        self.clock = clock
        self.observer = observer or NullMaintenanceObserver()
        self._orgs: dict[str, _OrgState] = {}
        # False under the DI-facing role, which may not write sealed days: the re-read buckets
        # wait as hourly objects for the seal role's next pass.
        self.reseal = reseal

    # -- scope ---------------------------------------------------------------------------

    def windows_in_scope(
        self, org_id: str, closed_through: int, archived_from: int | None = None
    ) -> list[DayWindow]:
        """Every day's covered, closed window, oldest first.

        Covered: at or after ``archived_from`` (the checkpoint's backfill start; without it, the
        archive's oldest day with objects or a manifest). Closed: before ``closed_through``.
        Days not wholly inside the lookback (DI retention) are left out: DI ages their events
        out during the day, so its count would say nothing about the archive.
        """
        state = self._state(org_id)
        if archived_from is None:
            assert state.objects is not None
            days = state.objects.days | state.manifest_days
            if not days:
                return []
            archived_from = day_bounds(min(days))[0]
        oldest_day_start = -(-(self.clock() - self.lookback_ns) // NS_PER_DAY) * NS_PER_DAY
        first = max(archived_from - archived_from % self.bucket_ns, oldest_day_start)
        windows = []
        day = day_of_ns(first)
        while True:
            day_start, day_end = day_bounds(day)
            if day_start >= closed_through:
                break
            start, end = max(day_start, first), min(day_end, closed_through)
            if start < end:
                windows.append(DayWindow(day, start, end))
            day += timedelta(days=1)
        return windows

    def days_in_scope(
        self, org_id: str, closed_through: int, archived_from: int | None = None
    ) -> list[date]:
        return [w.day for w in self.windows_in_scope(org_id, closed_through, archived_from)]

    def reconcile_org(
        self,
        org_id: str,
        closed_through: int,
        *,
        archived_from: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[DayCheck]:
        """Check every day in scope, newest first; repair those DI has more events for."""
        self.sealer.complete_pending_relink(org_id)
        checks = []
        for window in reversed(self.windows_in_scope(org_id, closed_through, archived_from)):
            if should_stop is not None and should_stop():
                break
            checks.append(self.reconcile_window(org_id, window))
        return checks

    def reconcile_day(self, org_id: str, day: date) -> DayCheck:
        """Reconcile the whole of ``day`` (a sealed or wholly closed day)."""
        return self.reconcile_window(org_id, DayWindow(day, *day_bounds(day)))

    def reconcile_window(self, org_id: str, window: DayWindow) -> DayCheck:
        """Compare one day's window with DI and repair the buckets DI has more events for.

        Every failure is an :class:`ArchiverError`: an unreadable archived line (a bare
        ``JSONDecodeError`` from the shared readers) becomes an :class:`IntegrityError` naming
        the day, so the caller can report it and carry on with other orgs.
        """
        try:
            return self._reconcile(org_id, window)
        except ArchiverError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(
                f"org {org_id}: day {window.day} holds unreadable content "
                f"({type(exc).__name__}); run `di-archiver verify`"
            ) from exc

    # -- one day -------------------------------------------------------------------------

    def _state(self, org_id: str, *, refresh: bool = False) -> _OrgState:
        state = self._orgs.setdefault(org_id, _OrgState())
        if state.objects is None or refresh:
            state.objects = list_org_objects(self.sealer.store, self.sealer.prefix, org_id)
            state.manifest_days = set(
                list_manifest_days(self.sealer.store, self.sealer.prefix, org_id)
            )
        return state

    def _learn_reading(self, org_id: str, state: _OrgState) -> None:
        """Learn the org's end_time reading once, at an event of its newest sealed day."""
        if state.probed or self.counter.reading(org_id) is not None:
            return
        state.probed = True
        oldest = self.clock() - self.lookback_ns + NS_PER_DAY
        for day in sorted(state.manifest_days, reverse=True)[:3]:
            loaded = self.sealer.load_manifest(org_id, day)
            if loaded is None:
                continue
            anchors = [o.first_ts for o in sorted(loaded[0].objects, key=lambda o: o.size)]
            for anchor in anchors[:2]:
                if anchor is None:
                    continue
                ts = parse_timestamp_ns(anchor)
                if ts >= oldest and self.counter.learn(org_id, ts) is not None:
                    return

    def _reconcile(self, org_id: str, window: DayWindow) -> DayCheck:
        state = self._state(org_id)
        self._learn_reading(org_id, state)
        assert state.objects is not None
        sealed = window.day in state.manifest_days
        di = self.counter.count(org_id, window.start_ns, window.end_ns)
        held = self._fast_archived_count(org_id, window, state.objects, sealed)
        per_bucket: dict[int, int] | None = None
        if held is None:
            per_bucket = self._archived_by_bucket(window, state.objects)
            held = sum(per_bucket.values())
        if di != held and self.counter.reading(org_id) is not None:
            di = self.counter.recount(org_id, window.start_ns, window.end_ns, di)
        if di == held:
            return self._check(
                org_id, window, di=di, before=held, after=held, status="ok", sealed=sealed
            )

        if per_bucket is None:
            per_bucket = self._archived_by_bucket(window, state.objects)
        starts = range(window.start_ns, window.end_ns, self.bucket_ns)
        di_by_bucket = {b: self.counter.count(org_id, b, b + self.bucket_ns) for b in starts}
        differing = [b for b in starts if di_by_bucket[b] != per_bucket.get(b, 0)]
        short = [b for b in differing if di_by_bucket[b] > per_bucket.get(b, 0)]
        if not differing:
            # The bucket counts add up to the archive's although the day's did not: DI changed
            # between the calls. Re-read the whole window rather than trust either figure.
            short = list(starts)
        for b in short:
            self.snapshotter.snapshot_bucket(org_id, b, b + self.bucket_ns)
        if short and sealed and self.reseal:
            # Into the sealed day at once: the repair is visible after this one pass, and the
            # staged bucket objects never sit beside the day as duplicates.
            self.sealer.seal_day(org_id, window.day, archived_from=window.start_ns)
        after_by_bucket = per_bucket
        if short:
            state = self._state(org_id, refresh=True)
            assert state.objects is not None
            after_by_bucket = self._archived_by_bucket(window, state.objects)
        checks = []
        for b in sorted(set(differing) | set(short)):
            di_b = di_by_bucket[b]
            after = after_by_bucket.get(b, 0)
            if after != di_b:
                # DI may have indexed more since it was counted: judge against its answer now.
                di_b = di_by_bucket[b] = self.counter.count_either(org_id, b, b + self.bucket_ns)
            checks.append(
                BucketCheck(b, b + self.bucket_ns, di_b, per_bucket.get(b, 0), after, b in short)
            )
        after_total = sum(after_by_bucket.values())
        differing_checks = tuple(c for c in checks if c.status != "ok")
        statuses = {c.status for c in differing_checks}
        status: DayStatus = (
            "unresolved"
            if "unresolved" in statuses
            else "di_lower"
            if "di_lower" in statuses
            else "repaired"
            if short
            else "ok"
        )
        di_total = sum(di_by_bucket.values())
        check = self._check(
            org_id,
            window,
            di=di_total,
            before=held,
            after=after_total,
            status=status,
            sealed=sealed,
            buckets=tuple(c for c in checks if c.status != "ok" or c.resnapshotted),
        )
        if check.finding:
            self.observer.on_warning(
                "reconcile finding: the archive and DI still disagree; nothing deleted",
                org_id=org_id,
                day=window.day.isoformat(),
                status=status,
                di_count=di_total,
                archived_count=after_total,
                buckets="; ".join(
                    f"{c.name} DI {c.di_count} archive {c.archived_after}" for c in differing_checks
                ),
            )
        return check

    def _check(
        self,
        org_id: str,
        window: DayWindow,
        *,
        di: int,
        before: int,
        after: int,
        status: DayStatus,
        sealed: bool,
        buckets: tuple[BucketCheck, ...] = (),
    ) -> DayCheck:
        return DayCheck(
            org_id=org_id,
            day=window.day,
            di_count=di,
            archived_before=before,
            archived_after=after,
            status=status,
            buckets_resnapshotted=tuple(b.name for b in buckets if b.resnapshotted),
            buckets=buckets,
            sealed=sealed,
            start_ns=window.start_ns,
            end_ns=window.end_ns,
        )

    # -- what the archive holds ------------------------------------------------------------

    def _fast_archived_count(
        self, org_id: str, window: DayWindow, objects: OrgObjects, sealed: bool
    ) -> int | None:
        """The window's archived events without reading objects, when that is exact."""
        buckets = objects.buckets.get(window.day, [])
        if sealed:
            if buckets or not window.whole_day:
                return None
            loaded = self.sealer.load_manifest(org_id, window.day)
            return None if loaded is None else loaded[0].archived_count
        if objects.sealed.get(window.day):
            return None  # sealed objects without a manifest: read them
        total = 0
        for parsed, stored in buckets:
            if parsed.start_ns >= window.end_ns or parsed.end_ns <= window.start_ns:
                continue
            count = _metadata_count(self.sealer.store, stored)
            if count is None or parsed.start_ns < window.start_ns or parsed.end_ns > window.end_ns:
                return None
            total += count
        return total

    def _archived_by_bucket(self, window: DayWindow, objects: OrgObjects) -> dict[int, int]:
        """Distinct archived events per bucket start in the window (sealed + bucket objects)."""
        counts: dict[int, int] = {}
        sealed = objects.sealed.get(window.day, {})
        by_service: dict[str, list[tuple[ObjectKey, StoredObject]]] = {}
        for parsed, stored in objects.buckets.get(window.day, []):
            by_service.setdefault(parsed.service, []).append((parsed, stored))
        for service in sorted(set(sealed) | set(by_service)):
            sealed_obj = sealed.get(service)
            buckets = by_service.get(service, [])
            for ts in _distinct_timestamps(
                self.sealer.store,
                sealed_obj.key if sealed_obj else None,
                [parsed.key for parsed, _ in sorted(buckets, key=lambda p: p[0].start_ns)],
            ):
                if window.start_ns <= ts < window.end_ns:
                    b = ts - (ts - window.start_ns) % self.bucket_ns
                    counts[b] = counts.get(b, 0) + 1
        return counts


def _metadata_count(store: ArchiveStore, stored: StoredObject) -> int | None:
    metadata: Mapping[str, str] = stored.metadata
    if META_COUNT not in metadata:
        head = store.head(stored.key)
        metadata = head.metadata if head is not None else {}
    try:
        return int(metadata[META_COUNT])
    except (KeyError, ValueError):
        return None


def _distinct_timestamps(
    archive: ArchiveStore, sealed_key: str | None, bucket_keys: Sequence[str]
) -> Iterator[int]:
    """Timestamps of the distinct ``(timestamp, id)`` events the objects hold together."""
    streams: list[LineReader] = []
    sealed_lines: LineReader | None = None
    opened: list[IO[bytes]] = []
    try:
        if sealed_key is not None:
            stream = open_object(archive, sealed_key)
            if stream is not None:
                opened.append(stream)
                sealed_lines = LineReader(stream)
        for key in bucket_keys:
            stream = open_object(archive, key)
            if stream is not None:
                opened.append(stream)
                streams.append(LineReader(stream))
        previous: tuple[int, str] | None = None
        for sort_key_, _line in merge_sorted_streams(sealed_lines, streams):
            identity = (sort_key_[0], sort_key_[1])
            if identity != previous:
                yield sort_key_[0]
            previous = identity
    finally:
        for stream in opened:
            stream.close()
