"""Use cases of the fan-out deployment (an MSP with many orgs): dispatch, and archive one org.

A scheduled *dispatch* run enqueues one message per configured org on the FIFO work queue;
a worker function consumes one message at a time and *archives that org*. When the org's run
stopped early (its invocation's time ran out with buckets left), the worker enqueues the org
again at once, so a backfill continues without waiting for the next schedule; the FIFO group of
the org holds that message until the current one is finished and deleted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from msgspec import Struct

from di_archiver.application.archive import ArchiveReport
from di_archiver.application.runtime import Runtime
from di_archiver.errors import SettingsError
from di_archiver.observability import Mode
from di_archiver.settings import ArchiverSettings
from di_archiver.timestamps import NS_PER_SECOND

# SQS FIFO deduplicates equal ids within five minutes; a dispatch slot of one minute makes a
# retried dispatcher invocation harmless without hiding the next scheduled one.
DISPATCH_SLOT_NS = 60 * NS_PER_SECOND


class OrgMessage(Struct, frozen=True):
    """One unit of queued work: archive ``org_id``."""

    org_id: str
    dedup_id: str
    body: dict[str, Any]


class OrgQueue(Protocol):
    """Where per-org work is queued (SQS FIFO in AWS; a list in tests)."""

    def send(self, messages: Sequence[OrgMessage]) -> None:
        """Enqueue every message (one group per org) or raise QueueError."""


class DispatchReport(Struct, frozen=True):
    orgs: tuple[str, ...]

    def summary(self) -> dict[str, Any]:
        return {"mode": Mode.DISPATCH.value, "orgs_dispatched": len(self.orgs)}


def _archive_message(org_id: str, dedup_id: str) -> OrgMessage:
    return OrgMessage(org_id, dedup_id, {"mode": Mode.ARCHIVE.value, "org_id": org_id})


def dispatch(settings: ArchiverSettings, queue: OrgQueue, *, now_ns: int) -> DispatchReport:
    """Enqueue one archive message per configured org (the fan-out schedule's job)."""
    slot = now_ns // DISPATCH_SLOT_NS
    queue.send([_archive_message(org, f"{org}-dispatch-{slot}") for org in settings.org_ids])
    return DispatchReport(tuple(settings.org_ids))


def archive_org(
    settings: ArchiverSettings,
    runtime: Runtime,
    org_id: str,
    *,
    queue: OrgQueue | None,
    remaining_seconds: Callable[[], float] | None = None,
) -> ArchiveReport:
    """Archive one configured org (a queued message); re-enqueue it if it is behind.

    Raises ``EngineRunError`` when the org failed: the message is then retried by SQS and,
    after its receive limit, moved to the dead-letter queue (which alarms).
    """
    if org_id not in settings.org_ids:
        raise SettingsError("queued org_id is not one of the configured DI_ARCHIVER_ORG_IDS")
    run = runtime.engine.run([org_id], remaining_seconds=remaining_seconds)
    report = ArchiveReport(Mode.ARCHIVE, (run,), *runtime.api_stats())
    (result,) = run.orgs
    if result.stopped_early and queue is not None:
        # Keyed by where this run stopped: a retried worker cannot queue the same step twice.
        queue.send([_archive_message(org_id, f"{org_id}-continue-{result.checkpoint_after_ns}")])
    return report
