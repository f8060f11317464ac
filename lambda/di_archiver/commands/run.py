"""``di-archiver run``: one archiving pass (or a resnapshot) from the command line.

The credential never travels as an argument (shell history, ``ps``): it comes from Secrets
Manager (``--secret-id``) or from environment variables (``JUMPCLOUD_API_KEY``, or
``JUMPCLOUD_CLIENT_ID`` + ``JUMPCLOUD_CLIENT_SECRET``; ``--api-key-env NAME`` picks another).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from di_archiver import application
from di_archiver.adapters.secrets import secret_from_env
from di_archiver.errors import SettingsError
from di_archiver.settings import ArchiverSettings, AuthKind, Region
from di_archiver.timestamps import format_timestamp_ns, parse_timestamp_ns
from di_archiver.wiring import build_runtime

if TYPE_CHECKING:
    from di_archiver.domain.engine import RunReport

NAME = "run"
HELP = "Archive every open time bucket once (or re-snapshot a window) and advance checkpoints."

DEFAULT_ARCHIVE = "./di-archive"
LOCAL_CHECKPOINT_NAME = "checkpoints.json"


def add_destination_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments naming the orgs, the archive and the checkpoint store (run and status)."""
    parser.add_argument(
        "--org-id",
        dest="org_ids",
        action="append",
        required=True,
        metavar="ORG_ID",
        help="JumpCloud organisation id (24 hex characters); repeat for several orgs.",
    )
    parser.add_argument(
        "--archive",
        default=DEFAULT_ARCHIVE,
        metavar="s3://BUCKET/PREFIX | DIR",
        help=f"Where archive objects go (default {DEFAULT_ARCHIVE}).",
    )
    parser.add_argument(
        "--checkpoint",
        metavar="ssm:/PATH | FILE.json",
        help="Checkpoint store: an SSM parameter path, or a local JSON file. Default: "
        f"DIR/{LOCAL_CHECKPOINT_NAME} for a local archive, SSM /di-archiver/checkpoints for S3 "
        "(a deployed stack uses ssm:/di-archiver/<stackName>/checkpoints).",
    )
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="S3/SSM/Secrets Manager endpoint (an emulator such as moto_server or LocalStack).",
    )
    parser.add_argument("--bucket-minutes", type=int, help="Bucket width (divides 1440).")


def add_di_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments naming the DI API and where its credential comes from (run, seal, reconcile)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--base-url", help="DI API base URL (e.g. the simulator's).")
    source.add_argument(
        "--region", choices=[r.value for r in Region], help="JumpCloud data centre."
    )
    parser.add_argument("--token-url", help="OAuth token URL for service accounts.")
    credential = parser.add_mutually_exclusive_group()
    credential.add_argument(
        "--secret-id", help="Secrets Manager secret holding the credential JSON."
    )
    credential.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="Name of the environment variable holding the API key (default JUMPCLOUD_API_KEY).",
    )
    parser.add_argument(
        "--auth-kind",
        choices=[k.value for k in AuthKind],
        help="Credential kind in --secret-id (default api_key).",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``run``'s arguments."""
    add_destination_arguments(parser)
    add_di_arguments(parser)
    parser.add_argument("--services", help="Comma-separated DI services (default: all).")
    parser.add_argument("--lag", type=int, metavar="SECONDS", help="Stay this far behind now.")
    parser.add_argument(
        "--settle", type=int, metavar="SECONDS", help="Keep buckets open this long for late events."
    )
    parser.add_argument("--lookback-days", type=int, help="First-run backfill depth (1-90).")
    parser.add_argument("--kms-key-id", help="SSE-KMS key for S3 objects (default SSE-S3).")
    parser.add_argument(
        "--resnapshot",
        nargs=2,
        metavar=("START", "END"),
        help="Re-snapshot the buckets in [START, END) (RFC 3339) instead of a normal pass.",
    )


def destination_values(args: argparse.Namespace) -> dict[str, Any]:
    """Settings values for ``--archive``/``--checkpoint``/``--org-id``/``--bucket-minutes``."""
    values: dict[str, Any] = {"org_ids": list(args.org_ids)}
    archive: str = args.archive
    if archive.startswith("s3://"):
        bucket, _, prefix = archive.removeprefix("s3://").partition("/")
        if not bucket:
            raise SettingsError("--archive s3://BUCKET/PREFIX needs a bucket name")
        values["archive_bucket"] = bucket
        if prefix.strip("/"):
            values["archive_prefix"] = prefix.strip("/")
    else:
        values["archive_dir"] = archive
    checkpoint: str | None = args.checkpoint
    if checkpoint is None:
        if "archive_dir" in values:
            values["checkpoint_file"] = os.path.join(archive, LOCAL_CHECKPOINT_NAME)
    elif checkpoint.startswith("ssm:"):
        values["checkpoint_parameter_prefix"] = checkpoint.removeprefix("ssm:")
    else:
        values["checkpoint_file"] = checkpoint
    if args.bucket_minutes is not None:
        values["bucket_minutes"] = args.bucket_minutes
    return values


def settings_from_args(
    args: argparse.Namespace, *, environ: Mapping[str, str] | None = None
) -> tuple[ArchiverSettings, dict[str, str] | None]:
    """Validated settings plus the credential read from the environment (if not Secrets Manager).

    The credential is read here, before the settings are built, and never becomes a setting.
    """
    values = destination_values(args)
    optional = {
        "base_url": args.base_url,
        "region": args.region,
        "token_url": args.token_url,
        "secret_id": args.secret_id,
        "auth_kind": args.auth_kind,
        "services": args.services,
        "lag_seconds": args.lag,
        "settle_seconds": args.settle,
        "lookback_days": args.lookback_days,
        "kms_key_id": args.kms_key_id,
    }
    values.update({k: v for k, v in optional.items() if v is not None})
    secret: dict[str, str] | None = None
    if args.secret_id is None:
        secret = secret_from_env(environ, api_key_env=args.api_key_env)
        values["auth_kind"] = (
            AuthKind.API_KEY.value if "api_key" in secret else AuthKind.SERVICE_ACCOUNT.value
        )
    return ArchiverSettings.build(values), secret


def format_report(report: RunReport) -> list[str]:
    """Human-readable lines, one per org plus a total."""
    lines = []
    for org in report.orgs:
        checkpoint = (
            format_timestamp_ns(org.checkpoint_after_ns)
            if org.checkpoint_after_ns is not None
            else "none"
        )
        lag = f"{org.freshness_lag_s:.0f}s" if org.freshness_lag_s is not None else "n/a"
        lines.append(
            f"org {org.org_id}: {org.buckets} buckets ({org.buckets_written} written, "
            f"{org.buckets_unchanged} unchanged), {org.events} events, "
            f"{org.bytes_written} bytes written, checkpoint {checkpoint}, lag {lag}"
            + (" [stopped early: run again to continue]" if org.stopped_early else "")
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Run one pass; exit 0 on success (errors exit 2 through the CLI)."""
    settings, secret = settings_from_args(args)
    window: tuple[int, int] | None = None
    if args.resnapshot:
        start, end = (parse_timestamp_ns(value) for value in args.resnapshot)
        if start >= end:
            raise SettingsError("--resnapshot START must be before END")
        window = (start, end)
    runtime = build_runtime(settings, secret=secret, endpoint_url=args.endpoint_url)
    try:
        if window is None:
            report = application.archive(settings, runtime)
        else:
            start, end = window
            report = application.resnapshot(settings, runtime, start_ns=start, end_ns=end)
    finally:
        runtime.close()
    for run_report in report.runs:
        for line in format_report(run_report):
            print(line)
    print(
        f"API: {report.api_retries} retries, {report.api_errors_absorbed} transient errors absorbed"
    )
    return 0
