"""Use case ``verify``: recompute hashes, counts, order and manifest chains (read-only)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from di_archiver.domain.ports import ArchiveStore
from di_archiver.domain.verify import VerifyReport, verify_archive
from di_archiver.observability import Mode


def verify(
    store: ArchiveStore,
    *,
    prefix: str,
    org_ids: Iterable[str] | None = None,
    start_day: date | None = None,
    end_day: date | None = None,
    last_days: int | None = None,
) -> VerifyReport:
    """Verify the selected orgs and days; ``last_days`` starts the window that many days ago.

    A scheduled verify reads a recent window so it fits one invocation on any archive size;
    the manifest chain inside the window is still walked link by link.
    """
    if last_days is not None:
        start_day = (datetime.now(UTC) - timedelta(days=last_days)).date()
    return verify_archive(
        store, prefix=prefix, org_ids=org_ids, start_day=start_day, end_day=end_day
    )


def verify_summary(report: VerifyReport, *, mask: Any = str) -> dict[str, Any]:
    """The small JSON summary the Lambda returns (``mask`` shortens org ids for logs)."""
    return {
        "mode": Mode.VERIFY.value,
        "objects": report.objects_checked,
        "events": report.events_checked,
        "manifests": report.manifests_checked,
        "chain_heads": {
            mask(org): [day.isoformat(), sha] for org, (day, sha) in report.chain_heads.items()
        },
    }
