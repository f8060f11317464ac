"""Use case ``maintain``: seal closed days, then (optionally) reconcile them with DI's counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from di_archiver.domain.ports import ObjectLockProbe
from di_archiver.errors import SettingsError
from di_archiver.observability import Mode
from di_archiver.settings import ArchiverSettings
from di_archiver.timestamps import NS_PER_SECOND

if TYPE_CHECKING:
    from di_archiver.application.runtime import MaintenancePorts
    from di_archiver.domain.maintenance import MaintenanceReport
    from di_archiver.domain.seal import MaintenanceObserver, Retention

# The sealing and reconcile domain (seal, manifests, certificates, reconcile) is imported by the
# functions that use it: the package imports this module, and an archive invocation needs none
# of it on its cold start.


def object_lock_retention(settings: ArchiverSettings) -> Retention | None:
    """Object Lock retention for sealed days and manifests, when the settings ask for it."""
    if settings.object_lock_mode is None or settings.object_lock_days is None:
        return None
    from di_archiver.domain.seal import Retention  # noqa: PLC0415

    return Retention(days=settings.object_lock_days, mode=settings.object_lock_mode.value)


def check_object_lock(store: object, retention: Retention | None) -> None:
    """Refuse to write unlocked sealed objects into a locked bucket, or locked ones elsewhere.

    Only stores that can say whether they lock are checked; a local archive cannot lock and
    the sealer refuses retention there itself.
    """
    if not isinstance(store, ObjectLockProbe):
        return
    locked = store.object_lock_enabled()
    if locked and retention is None:
        raise SettingsError(
            f"bucket {store.bucket} has Object Lock enabled: pass --object-lock-mode and "
            "--object-lock-days (the deployment's retention) so sealed objects and manifests "
            "written by this command are locked like the others"
        )
    if not locked and retention is not None:
        raise SettingsError(
            f"bucket {store.bucket} does not have Object Lock enabled: drop --object-lock-mode "
            "and --object-lock-days"
        )


def maintain(
    settings: ArchiverSettings,
    ports: MaintenancePorts,
    *,
    reconcile: bool = True,
    seal: bool = True,
    observer: MaintenanceObserver | None = None,
    remaining_seconds: Callable[[], float] | None = None,
    clock: Callable[[], int] | None = None,
) -> MaintenanceReport:
    """Seal every configured org's closed days, then reconcile (with a source and snapshotter).

    Failures of single orgs are in the report (``raise_for_failures`` turns them into an error).
    ``seal=False`` reconciles only (the DI-facing role, which may not write sealed days).
    """
    from di_archiver.domain import maintenance  # noqa: PLC0415

    extra: dict[str, Any] = {} if clock is None else {"clock": clock}
    return maintenance.maintain(
        org_ids=list(settings.org_ids),
        store=ports.store,
        checkpoints=ports.checkpoints,
        prefix=settings.archive_prefix,
        source=ports.source,
        snapshotter=ports.snapshotter,
        lookback_ns=settings.lookback_days * 86_400 * NS_PER_SECOND,
        observer=observer,
        retention=object_lock_retention(settings),
        remaining_seconds=remaining_seconds,
        reserve_seconds=float(settings.time_budget_reserve_seconds),
        reconcile=reconcile,
        seal=seal,
        signer=ports.signer,
        publishers=ports.publishers,
        **extra,
    )


def maintenance_summary(report: MaintenanceReport) -> dict[str, Any]:
    """The small JSON summary the Lambda returns and logs."""
    return {
        "mode": Mode.MAINTAIN.value,
        "orgs": len(report.orgs),
        "days_sealed": report.days_sealed,
        "days_repaired": report.days_repaired,
        "stopped_early": report.stopped_early,
    }
