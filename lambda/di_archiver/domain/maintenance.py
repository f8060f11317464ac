"""Daily maintenance: seal every sealable day, then reconcile sealed days with DI.

Organisations are independent: one org's failure is recorded in the report and the others
still run; the caller (Lambda handler or CLI) turns ``report.failures`` into the
MaintenanceFailed metric and a non-zero exit / raised error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from di_archiver.domain.ports import ArchiveStore, CheckpointStore, EventSource
from di_archiver.domain.reconcile import BucketSnapshotter, DayCheck, Reconciler
from di_archiver.domain.seal import (
    DaySealer,
    MaintenanceObserver,
    NullMaintenanceObserver,
    Retention,
    SealResult,
    checkpoint_bucket_minutes,
    closed_through_ns,
)
from di_archiver.errors import ArchiverError
from di_archiver.timestamps import NS_PER_SECOND


@dataclass(frozen=True, slots=True)
class OrgMaintenance:
    org_id: str
    sealed: tuple[SealResult, ...] = ()
    checks: tuple[DayCheck, ...] = ()
    error: str | None = None
    skipped_reason: str | None = None

    @property
    def days_sealed(self) -> int:
        return sum(1 for r in self.sealed if r.manifest_written and not r.repaired)

    @property
    def days_repaired(self) -> int:
        return sum(1 for r in self.sealed if r.repaired) + sum(
            1 for c in self.checks if c.status == "repaired"
        )


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    orgs: tuple[OrgMaintenance, ...] = field(default_factory=tuple)
    stopped_early: bool = False

    @property
    def days_sealed(self) -> int:
        return sum(o.days_sealed for o in self.orgs)

    @property
    def days_repaired(self) -> int:
        return sum(o.days_repaired for o in self.orgs)

    @property
    def failures(self) -> tuple[OrgMaintenance, ...]:
        return tuple(o for o in self.orgs if o.error is not None)

    def raise_for_failures(self) -> None:
        """Raise one ArchiverError naming every failed org (messages are secret-free)."""
        if self.failures:
            raise ArchiverError(
                "maintenance failed for "
                + "; ".join(f"org {o.org_id}: {o.error}" for o in self.failures)
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
) -> MaintenanceReport:
    """Seal then (with a source and snapshotter) reconcile each org; returns what happened."""
    observer = observer or NullMaintenanceObserver()
    sealer = DaySealer(
        store=store,
        prefix=prefix,
        source=source,
        clock=clock,
        retention=retention,
        observer=observer,
    )

    def should_stop() -> bool:
        return remaining_seconds is not None and remaining_seconds() < reserve_seconds

    results = []
    stopped = False
    for org_id in org_ids:
        if should_stop():
            stopped = True
            break
        sealed: tuple[SealResult, ...] = ()
        checks: tuple[DayCheck, ...] = ()
        try:
            closed = closed_through_ns(checkpoints, org_id)
            if closed is None:
                results.append(OrgMaintenance(org_id, skipped_reason="no checkpoint yet"))
                continue
            sealed = tuple(sealer.seal_org(org_id, closed))
            if reconcile and source is not None and snapshotter is not None:
                reconciler = Reconciler(
                    source=source,
                    sealer=sealer,
                    snapshotter=snapshotter,
                    bucket_ns=checkpoint_bucket_minutes(checkpoints, org_id) * 60 * NS_PER_SECOND,
                    lookback_ns=lookback_ns,
                    clock=clock,
                    observer=observer,
                )
                checks = tuple(reconciler.reconcile_org(org_id, closed, should_stop=should_stop))
        except ArchiverError as exc:
            observer.on_warning("maintenance failed", org_id=org_id, error=str(exc))
            results.append(OrgMaintenance(org_id, sealed, checks, error=str(exc)))
            continue
        results.append(OrgMaintenance(org_id, sealed, checks))
    return MaintenanceReport(tuple(results), stopped_early=stopped or should_stop())
