"""``di-archiver verify``: prove an archive is complete and unaltered (read-only).

Recomputes every object's SHA-256 and event count against its metadata and its day manifest,
and walks each org's manifest chain. Prints one line per finding and each org's chain head
(keep it somewhere else to anchor the chain). Exit 0 when clean, 1 on any finding.
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from di_archiver import application
from di_archiver.commands.common import EXIT_FINDINGS, EXIT_OK, Progress, emit
from di_archiver.commands.run import add_archive_argument, add_org_arguments
from di_archiver.errors import SettingsError
from di_archiver.wiring import store_for_location

NAME = "verify"
HELP = "Verify hashes, counts and the manifest chain of a local or S3 archive (read-only)."

DEFAULT_PREFIX = "di"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``verify``'s arguments."""
    add_archive_argument(parser)
    parser.add_argument("--endpoint-url", metavar="URL", help="S3 endpoint (an emulator).")
    add_org_arguments(parser, required=False)
    # The old spelling keeps working; --org-id is the one every command documents.
    parser.add_argument("--org", dest="org_ids", action="append", help=argparse.SUPPRESS)
    parser.add_argument(
        "--from",
        dest="start",
        metavar="YYYY-MM-DD",
        help="First day to check (default: the archive's first).",
    )
    parser.add_argument(
        "--to", dest="end", metavar="YYYY-MM-DD", help="Last day to check (default: today)."
    )
    key = parser.add_mutually_exclusive_group()
    key.add_argument(
        "--public-key",
        metavar="PEM",
        help="Check every manifest's signature with this public key (offline; e.g. from "
        "`aws kms get-public-key` or `di-archiver keygen`).",
    )
    key.add_argument(
        "--kms-key-id",
        metavar="ARN",
        help="Check signatures with this KMS key's public key (kms:GetPublicKey).",
    )
    parser.add_argument(
        "--expect-head",
        action="append",
        default=[],
        metavar="[ORG:]DAY:SHA256",
        help="A published head (from the seal run's event, log line or heads file): its "
        "manifest must still exist unchanged, so deleting the newest days is found (repeat).",
    )


def _day(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SettingsError(f"{flag} must be a date like 2026-05-01, got {value!r}") from None


def run(args: argparse.Namespace) -> int:
    """Verify and print findings; exit 1 when there is any."""
    start, end = _day(args.start, "--from"), _day(args.end, "--to")
    if start is not None and end is not None and start > end:
        raise SettingsError(f"--from {args.start} is after --to {args.end}: nothing to check")
    if not args.archive.startswith("s3://") and not Path(args.archive).is_dir():
        raise SettingsError(
            f"--archive {args.archive}: no archive there; pass --archive DIR or s3://BUCKET/PREFIX"
        )
    expected = [application.parse_expected_head(value) for value in args.expect_head]
    verifier = None
    if args.public_key or args.kms_key_id:
        from di_archiver.wiring import build_verifier  # noqa: PLC0415

        verifier = build_verifier(
            None,
            public_key_file=args.public_key,
            kms_key_id=args.kms_key_id,
            endpoint_url=args.endpoint_url,
        )
    store, prefix = store_for_location(
        args.archive, endpoint_url=args.endpoint_url, default_prefix=DEFAULT_PREFIX
    )
    progress = Progress("verifying", unit="objects", enabled=False if args.json else None)
    if progress.enabled and start is None and end is None and not args.org_ids:
        progress.total = application.count_objects(store, prefix=prefix)
    try:
        report = application.verify(
            store,
            prefix=prefix,
            org_ids=args.org_ids,
            start_day=start,
            end_day=end,
            on_object=lambda _key: progress.advance(),
            verifier=verifier,
            expected_heads=expected,
        )
    finally:
        progress.close()
    document = {
        "command": NAME,
        "ok": report.ok,
        "objects": report.objects_checked,
        "events": report.events_checked,
        "manifests": report.manifests_checked,
        "signatures": report.signatures_checked if verifier is not None else None,
        "findings": [{"kind": f.kind, "key": f.key, "detail": f.detail} for f in report.findings],
        "chain_heads": {
            org: {"day": day.isoformat(), "sha256": sha}
            for org, (day, sha) in sorted(report.chain_heads.items())
        },
    }
    lines = [f"FINDING {finding}" for finding in report.findings]
    lines += [
        f"org {org}: chain head {day} sha256 {sha}"
        for org, (day, sha) in sorted(report.chain_heads.items())
    ]
    if verifier is None:
        lines.append(
            "signatures NOT checked: pass --public-key PEM or --kms-key-id ARN to prove who "
            "sealed each day"
        )
    else:
        lines.append(
            f"checked {report.signatures_checked} signature(s) with key "
            f"{verifier.fingerprint[:16]}..."
        )
    lines.append(
        f"checked {report.objects_checked} objects, {report.events_checked} events, "
        f"{report.manifests_checked} manifests: "
        + ("OK" if report.ok else f"{len(report.findings)} FINDINGS")
    )
    emit(args, document, lines)
    return EXIT_OK if report.ok else EXIT_FINDINGS
