"""Daily maintenance: seal every org's closed days, then reconcile closed days from a cursor.

Two phases, so a time budget that runs out never starves the orgs late in the list:

1. **Seal** every org (cheap, and each run makes lasting progress, so the fixed org order is
   fair: an org sealed today has nothing left to seal tomorrow). The budget is checked before
   each org and before each day (``DaySealer.seal_org(..., should_stop=...)``).
2. **Reconcile** every closed day in scope (sealed or not, and the closed hours of today), one
   ``(day, org)`` unit at a time, newest day first and then by org id. A run starts right after
   the unit the previous run reached (the *reconcile cursor*) and wraps around, so successive
   runs cover every org and day even when one run can afford only a slice. Without a budget a
   run covers every unit.

The cursor lives in the :class:`CheckpointStore` under :data:`RECONCILE_CURSOR_KEY`, one small
document (``last_day``, ``last_org``). It is only a fairness hint: losing or corrupting it makes
the next run start at the newest day again, which is always safe.

Organisations are independent: any exception while handling one org (an ``ArchiverError``, or
e.g. a ``JSONDecodeError`` from a corrupt archived line) is recorded in the report with its type
and the other orgs still run; the caller (Lambda handler or CLI) turns ``report.failures`` into
the MaintenanceFailed metric and a non-zero exit / raised error.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date

from di_archiver.domain.counting import ExactCounter
from di_archiver.domain.ports import (
    ArchiveStore,
    CheckpointStore,
    EventSource,
    HeadPublisher,
    Signer,
    TempFileStore,
)
from di_archiver.domain.reconcile import BucketSnapshotter, DayCheck, DayWindow, Reconciler
from di_archiver.domain.seal import (
    DaySealer,
    MaintenanceObserver,
    NullMaintenanceObserver,
    Retention,
    SealResult,
    checkpoint_bucket_minutes,
    checkpoint_span,
)
from di_archiver.errors import ArchiverError, IntegrityError, SettingsError, describe_failure
from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns

RECONCILE_CURSOR_KEY = "0" * 24
"""Checkpoint-store key of the reconcile cursor.

Shaped like an org id because the SSM store accepts nothing else, yet never a real one: JumpCloud
org ids are ObjectIds whose first eight hex digits are their creation time (zero is 1970).
"""

TEMP_FILE_MAX_AGE_S = 3600.0
"""A temporary file older than this is a killed write's leftover, not a write in progress."""

CURSOR_SCHEMA_VERSION = 1
CURSOR_SAVE_EVERY = 20
"""Units between cursor saves; a unit that re-read buckets or failed is saved at once."""


@dataclass(frozen=True, slots=True)
class OrgMaintenance:
    org_id: str
    sealed: tuple[SealResult, ...] = ()
    checks: tuple[DayCheck, ...] = ()
    error: str | None = None
    skipped_reason: str | None = None
    error_type: str | None = None

    @property
    def days_sealed(self) -> int:
        return sum(1 for r in self.sealed if r.manifest_written and not r.repaired)

    @property
    def days_repaired(self) -> int:
        return sum(1 for r in self.sealed if r.repaired) + sum(
            1 for c in self.checks if c.status == "repaired"
        )

    @property
    def findings(self) -> tuple[DayCheck, ...]:
        return tuple(c for c in self.checks if c.finding)


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    orgs: tuple[OrgMaintenance, ...] = field(default_factory=tuple)
    stopped_early: bool = False
    temp_files_removed: tuple[str, ...] = ()

    @property
    def days_sealed(self) -> int:
        return sum(o.days_sealed for o in self.orgs)

    @property
    def days_repaired(self) -> int:
        return sum(o.days_repaired for o in self.orgs)

    @property
    def days_reconciled(self) -> int:
        return sum(len(o.checks) for o in self.orgs)

    @property
    def failures(self) -> tuple[OrgMaintenance, ...]:
        return tuple(o for o in self.orgs if o.error is not None)

    @property
    def findings(self) -> tuple[DayCheck, ...]:
        """Days whose counts still disagree with DI after the repair (a non-zero exit)."""
        return tuple(f for o in self.orgs for f in o.findings)

    def raise_for_findings(self) -> None:
        """Raise an IntegrityError naming every day reconcile left disagreeing with DI."""
        if self.findings:
            raise IntegrityError(
                f"reconcile left {len(self.findings)} day(s) disagreeing with DI: "
                + "; ".join(f.describe() for f in self.findings[:20])
            )

    def raise_for_failures(self) -> None:
        """Raise one ArchiverError naming every failed org (messages are secret-free)."""
        if self.failures:
            raise ArchiverError(
                "maintenance failed for "
                + "; ".join(f"org {o.org_id}: {o.error}" for o in self.failures)
            )


@dataclass(frozen=True, slots=True)
class ReconcileCursor:
    """The last ``(day, org)`` unit a reconcile pass reached."""

    day: date
    org_id: str

    @property
    def order(self) -> tuple[int, str]:
        """Position in the reconcile order: newest day first, then org id."""
        return (-self.day.toordinal(), self.org_id)


def load_reconcile_cursor(checkpoints: CheckpointStore) -> ReconcileCursor | None:
    """The stored cursor, or ``None`` when absent or unreadable (then start at the newest)."""
    document = checkpoints.load(RECONCILE_CURSOR_KEY)
    if not document:
        return None
    try:
        return ReconcileCursor(date.fromisoformat(document["last_day"]), str(document["last_org"]))
    except (KeyError, TypeError, ValueError):
        return None


def save_reconcile_cursor(
    checkpoints: CheckpointStore, cursor: ReconcileCursor, *, now_ns: int
) -> None:
    checkpoints.save(
        RECONCILE_CURSOR_KEY,
        {
            "schema_version": CURSOR_SCHEMA_VERSION,
            "kind": "reconcile-cursor",
            "last_day": cursor.day.isoformat(),
            "last_org": cursor.org_id,
            "saved_at": format_timestamp_ns(now_ns),
        },
    )


def rotate(
    units: Sequence[ReconcileCursor], after: ReconcileCursor | None
) -> list[ReconcileCursor]:
    """``units`` in reconcile order, starting right after ``after`` and wrapping around."""
    ordered = sorted(units, key=lambda u: u.order)
    if after is None:
        return ordered
    split = bisect.bisect_right([u.order for u in ordered], after.order)
    return ordered[split:] + ordered[:split]


@dataclass
class _OrgProgress:
    org_id: str
    sealed: list[SealResult] = field(default_factory=list)
    checks: list[DayCheck] = field(default_factory=list)
    error: str | None = None
    error_type: str | None = None
    skipped_reason: str | None = None

    def freeze(self) -> OrgMaintenance:
        return OrgMaintenance(
            self.org_id,
            tuple(self.sealed),
            tuple(sorted(self.checks, key=lambda c: c.day)),
            error=self.error,
            skipped_reason=self.skipped_reason,
            error_type=self.error_type,
        )


def maintain(
    *,
    org_ids: Sequence[str],
    store: ArchiveStore,
    checkpoints: CheckpointStore,
    prefix: str,
    source: EventSource | None = None,
    snapshotter: BucketSnapshotter | None = None,
    lookback_ns: int = 90 * 86_400 * NS_PER_SECOND,
    clock: Callable[[], int] = time.time_ns,
    observer: MaintenanceObserver | None = None,
    retention: Retention | None = None,
    remaining_seconds: Callable[[], float] | None = None,
    reserve_seconds: float = 60.0,
    reconcile: bool = True,
    counter: ExactCounter | None = None,
    seal: bool = True,
    signer: Signer | None = None,
    publishers: Sequence[HeadPublisher] = (),
) -> MaintenanceReport:
    """Seal every org, then (with a source and snapshotter) reconcile from the cursor.

    ``seal=False`` is the DI-facing archive role's pass: it may not write sealed objects or
    manifests, so it only reconciles, re-snapshotting short buckets into hourly objects that
    the seal role's next pass merges (and signs). ``signer``/``publishers`` sign and publish
    every manifest the pass writes.

    ``counter`` counts DI exactly; pass one that outlives the call (a warm Lambda's) to keep
    each org's learnt ``end_time`` reading, else one is made over ``source``.
    """
    if RECONCILE_CURSOR_KEY in org_ids:
        raise SettingsError(f"org id {RECONCILE_CURSOR_KEY} is reserved for the reconcile cursor")
    observer = observer or NullMaintenanceObserver()
    # One counter for the whole pass: each org's end_time reading is learnt once.
    if counter is None and source is not None:
        counter = ExactCounter(source)
    sealer = DaySealer(
        store=store,
        prefix=prefix,
        source=source,
        clock=clock,
        retention=retention,
        observer=observer,
        counter=counter,
        signer=signer,
        publishers=publishers,
    )

    def should_stop() -> bool:
        return remaining_seconds is not None and remaining_seconds() < reserve_seconds

    def fail(progress: _OrgProgress, exc: Exception) -> None:
        progress.error_type, progress.error = describe_failure(exc)
        observer.on_warning("maintenance failed", org_id=progress.org_id, error=progress.error)

    temp_removed = _remove_stale_temp_files(store, prefix, observer)
    progress: dict[str, _OrgProgress] = {}
    closed: dict[str, tuple[int, int | None]] = {}
    stopped = False
    for org_id in org_ids:
        if should_stop():
            stopped = True
            break
        org = progress[org_id] = _OrgProgress(org_id)
        try:
            span = checkpoint_span(checkpoints, org_id)
            if span is None:
                org.skipped_reason = "no checkpoint yet"
                continue
            closed_ns, archived_from = span
            if seal:
                org.sealed.extend(
                    sealer.seal_org(
                        org_id, closed_ns, archived_from=archived_from, should_stop=should_stop
                    )
                )
        except Exception as exc:  # one org's failure must not block the others
            fail(org, exc)
            continue
        closed[org_id] = (closed_ns, archived_from)

    if reconcile and source is not None and snapshotter is not None and not stopped:
        stopped = _reconcile_phase(
            closed=closed,
            progress=progress,
            checkpoints=checkpoints,
            make_reconciler=lambda org_id: Reconciler(
                source=source,
                sealer=sealer,
                snapshotter=snapshotter,
                bucket_ns=checkpoint_bucket_minutes(checkpoints, org_id) * 60 * NS_PER_SECOND,
                lookback_ns=lookback_ns,
                clock=clock,
                observer=observer,
                counter=counter,
                reseal=seal,
            ),
            should_stop=should_stop,
            fail=fail,
            clock=clock,
        )
    return MaintenanceReport(
        tuple(p.freeze() for p in progress.values()),
        stopped_early=stopped or should_stop(),
        temp_files_removed=temp_removed,
    )


def _remove_stale_temp_files(
    store: ArchiveStore, prefix: str, observer: MaintenanceObserver
) -> tuple[str, ...]:
    """Delete temporary files that killed writes left behind (``verify`` reports them)."""
    if not isinstance(store, TempFileStore):
        return ()
    root = prefix.strip("/") + "/" if prefix.strip("/") else ""
    removed = []
    for path, age_s in list(store.leftover_temp_files(root)):
        if age_s >= TEMP_FILE_MAX_AGE_S:
            store.remove_temp_file(path)
            removed.append(path)
            observer.on_warning("removed the temporary file of an interrupted write", path=path)
    return tuple(removed)


def _reconcile_phase(
    *,
    closed: Mapping[str, tuple[int, int | None]],
    progress: Mapping[str, _OrgProgress],
    checkpoints: CheckpointStore,
    make_reconciler: Callable[[str], Reconciler],
    should_stop: Callable[[], bool],
    fail: Callable[[_OrgProgress, Exception], None],
    clock: Callable[[], int],
) -> bool:
    """Reconcile ``(day, org)`` units from the stored cursor; True when the budget ran out."""
    reconcilers: dict[str, Reconciler] = {}
    windows: dict[tuple[str, date], DayWindow] = {}
    for org_id, (closed_ns, archived_from) in closed.items():
        if should_stop():
            return True
        try:
            reconciler = reconcilers[org_id] = make_reconciler(org_id)
            reconciler.sealer.complete_pending_relink(org_id)
            for window in reconciler.windows_in_scope(org_id, closed_ns, archived_from):
                windows[org_id, window.day] = window
        except Exception as exc:  # one org's failure must not block the others
            fail(progress[org_id], exc)
    try:
        cursor = load_reconcile_cursor(checkpoints)
    except ArchiverError:
        cursor = None  # only a fairness hint: start at the newest day

    failed: set[str] = {org_id for org_id, p in progress.items() if p.error is not None}
    last: ReconcileCursor | None = None
    unsaved = 0
    stopped = False
    units = [ReconcileCursor(day, org_id) for org_id, day in windows]
    for unit in rotate(units, cursor):
        if unit.org_id in failed:
            # Its other days wait for the next cycle: retrying a broken org (revoked key, DI
            # outage) day after day would spend the budget the healthy orgs need.
            continue
        if should_stop():
            stopped = True
            break
        expensive = False
        try:
            check = reconcilers[unit.org_id].reconcile_window(
                unit.org_id, windows[unit.org_id, unit.day]
            )
            progress[unit.org_id].checks.append(check)
            expensive = check.status != "ok"
        except Exception as exc:  # one org's failure must not block the others
            fail(progress[unit.org_id], exc)
            failed.add(unit.org_id)
            expensive = True
        last, unsaved = unit, unsaved + 1
        if expensive or unsaved >= CURSOR_SAVE_EVERY:
            save_reconcile_cursor(checkpoints, last, now_ns=clock())
            unsaved = 0
    if last is not None and unsaved:
        save_reconcile_cursor(checkpoints, last, now_ns=clock())
    return stopped
