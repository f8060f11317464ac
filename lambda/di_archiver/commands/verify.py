"""``di-archiver verify``: prove an archive is complete and unaltered (read-only).

Recomputes every object's SHA-256 and event count against its metadata and its day manifest,
and walks each org's manifest chain. Prints one line per finding and each org's chain head
(keep it somewhere else to anchor the chain). Exit 0 when clean, 1 on any finding.
"""

from __future__ import annotations

import argparse
from datetime import date

from di_archiver import application
from di_archiver.errors import SettingsError
from di_archiver.wiring import store_for_location

NAME = "verify"
HELP = "Verify hashes, counts and the manifest chain of a local or S3 archive."

DEFAULT_PREFIX = "di"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``verify``'s arguments."""
    parser.add_argument(
        "--archive",
        default="./di-archive",
        metavar="s3://BUCKET/PREFIX | DIR",
        help="The archive to verify (default ./di-archive).",
    )
    parser.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (an emulator).")
    parser.add_argument(
        "--org", dest="orgs", action="append", metavar="ORG_ID", help="Only this org (repeat)."
    )
    parser.add_argument("--from", dest="start", metavar="YYYY-MM-DD", help="First day to check.")
    parser.add_argument("--to", dest="end", metavar="YYYY-MM-DD", help="Last day to check.")


def _day(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{flag} must be a date like 2026-05-01, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    """Verify and print findings; exit 1 when there is any."""
    store, prefix = store_for_location(
        args.archive, endpoint_url=args.endpoint_url, default_prefix=DEFAULT_PREFIX
    )
    report = application.verify(
        store,
        prefix=prefix,
        org_ids=args.orgs,
        start_day=_day(args.start, "--from"),
        end_day=_day(args.end, "--to"),
    )
    for finding in report.findings:
        print(f"FINDING {finding}")
    for org, (day, sha) in sorted(report.chain_heads.items()):
        print(f"org {org}: chain head {day} sha256 {sha}")
    print(
        f"checked {report.objects_checked} objects, {report.events_checked} events, "
        f"{report.manifests_checked} manifests: "
        + ("OK" if report.ok else f"{len(report.findings)} FINDINGS")
    )
    return 0 if report.ok else 1
