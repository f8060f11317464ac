"""Use case ``verify``: recompute hashes, counts, order and manifest chains (read-only)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from di_archiver.errors import SettingsError
from di_archiver.layout import OBJECT_SUFFIX
from di_archiver.observability import Mode

if TYPE_CHECKING:
    from di_archiver.domain.ports import ArchiveStore, SignatureVerifier
    from di_archiver.domain.verify import ExpectedHead, VerifyReport

# The verifier (domain.verify) is imported by the functions that use it: the package imports
# this module, and an archive invocation needs none of it on its cold start.


def verify(
    store: ArchiveStore,
    *,
    prefix: str,
    org_ids: Iterable[str] | None = None,
    start_day: date | None = None,
    end_day: date | None = None,
    last_days: int | None = None,
    on_object: Callable[[str], None] | None = None,
    verifier: SignatureVerifier | None = None,
    expected_heads: Sequence[ExpectedHead] = (),
) -> VerifyReport:
    """Verify the selected orgs and days; ``last_days`` starts the window that many days ago.

    A scheduled verify reads a recent window so it fits one invocation on any archive size;
    the manifest chain inside the window is still walked link by link.
    """
    from di_archiver.domain.verify import verify_archive  # noqa: PLC0415

    if last_days is not None:
        start_day = (datetime.now(UTC) - timedelta(days=last_days)).date()
    return verify_archive(
        store,
        prefix=prefix,
        org_ids=org_ids,
        start_day=start_day,
        end_day=end_day,
        verifier=verifier,
        expected_heads=expected_heads,
        on_object=on_object,
    )


def parse_expected_head(value: str) -> ExpectedHead:
    """``DAY:SHA256`` or ``ORG:DAY:SHA256`` (a head published when the day was signed)."""
    parts = value.strip().split(":")
    org = parts[0] if len(parts) == 3 else None
    if len(parts) not in (2, 3):
        raise SettingsError(f"--expect-head must be DAY:SHA256 or ORG:DAY:SHA256, got {value!r}")
    day_text, sha = parts[-2], parts[-1].lower()
    try:
        day = date.fromisoformat(day_text)
    except ValueError:
        raise SettingsError(f"--expect-head: {day_text!r} is not a YYYY-MM-DD day") from None
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise SettingsError("--expect-head: the hash must be 64 hex digits (a SHA-256)")
    from di_archiver.domain.verify import ExpectedHead  # noqa: PLC0415

    return ExpectedHead(org, day, sha)


def verify_summary(report: VerifyReport, *, mask: Any = str) -> dict[str, Any]:
    """The small JSON summary the Lambda returns (``mask`` shortens org ids for logs)."""
    return {
        "mode": Mode.VERIFY.value,
        "objects": report.objects_checked,
        "events": report.events_checked,
        "manifests": report.manifests_checked,
        "signatures": report.signatures_checked,
        "chain_heads": {
            mask(org): [day.isoformat(), sha] for org, (day, sha) in report.chain_heads.items()
        },
    }


def count_objects(store: ArchiveStore, *, prefix: str) -> int:
    """How many archive objects are under ``prefix`` (one listing; for progress totals)."""
    listing = store.list(prefix.strip("/") + "/")
    return sum(1 for stored in listing if stored.key.endswith(OBJECT_SUFFIX))
