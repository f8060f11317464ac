"""``di-archiver run``: one archiving pass (or a resnapshot) from the command line.

The credential never travels as an argument (shell history, ``ps``): it comes from Secrets
Manager (``--secret-id``) or from environment variables (``JUMPCLOUD_API_KEY``, or
``JUMPCLOUD_CLIENT_ID`` + ``JUMPCLOUD_CLIENT_SECRET``; ``--api-key-env NAME`` picks another).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from di_archiver import application
from di_archiver.adapters.secrets import secret_from_env
from di_archiver.commands.common import (
    DEFAULT_ARCHIVE,
    EXIT_FAILURE,
    EXIT_OK,
    SETTING_FLAGS,
    Progress,
    emit,
    flag_vocabulary,
    human_duration,
)
from di_archiver.errors import ArchiverError, SecretError, SettingsError
from di_archiver.settings import ENV_PREFIX, ArchiverSettings, AuthKind, Region
from di_archiver.timestamps import format_timestamp_ns, parse_timestamp_ns
from di_archiver.wiring import build_runtime

if TYPE_CHECKING:
    from di_archiver.domain.engine import BucketResult, OrgRunResult

NAME = "run"
HELP = "Archive every open time bucket once (or re-snapshot a window) and advance checkpoints."

LOCAL_CHECKPOINT_NAME = "checkpoints.json"


def _default(field: str) -> object:
    return ArchiverSettings.default_of(field)


def add_org_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--org-id`` (repeatable); every command that reads or writes an org takes it."""
    parser.add_argument(
        "--org-id",
        dest="org_ids",
        action="append",
        required=required,
        metavar="ORG_ID",
        help="JumpCloud organisation id (24 hex characters); repeat for several orgs"
        + ("." if required else " (default: every org in the archive)."),
    )


def add_archive_argument(parser: argparse.ArgumentParser) -> None:
    """``--archive`` with the one default every command shares."""
    parser.add_argument(
        "--archive",
        default=DEFAULT_ARCHIVE,
        metavar="s3://BUCKET/PREFIX | DIR",
        help="The archive: a local directory or an S3 bucket and prefix "
        f"(default: {DEFAULT_ARCHIVE}, where the demo writes).",
    )


def add_destination_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments naming the orgs, the archive and the checkpoint store (run and status)."""
    add_org_arguments(parser)
    add_archive_argument(parser)
    parser.add_argument(
        "--checkpoint",
        metavar="ssm:/PATH | FILE.json",
        help="Checkpoint store: an SSM parameter path, or a local JSON file (default: "
        f"DIR/{LOCAL_CHECKPOINT_NAME} for a local archive, "
        f"ssm:{_default('checkpoint_parameter_prefix')} for S3; a deployed stack uses "
        "ssm:/di-archiver/<stackName>/checkpoints).",
    )
    parser.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="S3/SSM/Secrets Manager endpoint (an emulator such as moto_server or LocalStack).",
    )
    parser.add_argument(
        "--bucket-minutes",
        type=int,
        metavar="MINUTES",
        help=f"Bucket width, divides 1440 (default: {_default('bucket_minutes')}).",
    )


def add_di_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments naming the DI API and where its credential comes from (run, seal, reconcile)."""
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--base-url", metavar="URL", help="DI API base URL (e.g. the simulator's).")
    source.add_argument(
        "--jumpcloud-region",
        "--region",
        dest="region",
        choices=[r.value for r in Region],
        help="JumpCloud data centre (default: standard). Not the AWS region: boto3 takes that "
        "from AWS_REGION / AWS_DEFAULT_REGION or your profile.",
    )
    parser.add_argument("--token-url", metavar="URL", help="OAuth token URL for service accounts.")
    credential = parser.add_mutually_exclusive_group()
    credential.add_argument(
        "--secret-id", help="Secrets Manager secret holding the credential JSON."
    )
    credential.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="Name of the environment variable holding the API key (default: JUMPCLOUD_API_KEY; "
        "or JUMPCLOUD_CLIENT_ID + JUMPCLOUD_CLIENT_SECRET for a service account).",
    )
    parser.add_argument(
        "--auth-kind",
        choices=[k.value for k in AuthKind],
        help="Credential kind in --secret-id (default: api_key).",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``run``'s arguments."""
    add_destination_arguments(parser)
    add_di_arguments(parser)
    parser.add_argument(
        "--services", metavar="A,B", help="Comma-separated DI services (default: all)."
    )
    parser.add_argument(
        "--lag",
        type=int,
        metavar="SECONDS",
        help="Archive only up to this far behind now: DI indexes events with a delay "
        f"(default: {_default('lag_seconds')}).",
    )
    parser.add_argument(
        "--settle",
        type=int,
        metavar="SECONDS",
        help="Re-read a bucket for late-indexed events this long after it ends "
        f"(default: {_default('settle_seconds')}).",
    )
    parser.add_argument(
        "--lookback-days",
        type=int,
        metavar="DAYS",
        help=f"First-run backfill depth, 1-90 (default: {_default('lookback_days')}).",
    )
    parser.add_argument(
        "--kms-key-id", help="SSE-KMS key for S3 objects (default: SSE-S3 encryption)."
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="N",
        help="Time buckets archived at once; about rate x page latency reaches the rate limit "
        f"(default: DI_ARCHIVER_CONCURRENCY, else {_default('concurrency')}).",
    )
    parser.add_argument(
        "--rate-limit",
        type=float,
        metavar="PER_SECOND",
        help="DI requests/s with this credential (default: DI_ARCHIVER_RATE_LIMIT_PER_SECOND, "
        f"else {_default('rate_limit_per_second'):g}).",
    )
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
            raise SettingsError(f"--archive {archive!r}: s3://BUCKET/PREFIX needs a bucket name")
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


def build_settings(values: dict[str, Any]) -> ArchiverSettings:
    """Validated settings whose errors name the flags the user typed."""
    return ArchiverSettings.build(values, source="command line", flags=SETTING_FLAGS)


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
        "concurrency": getattr(args, "concurrency", None),
        "rate_limit_per_second": getattr(args, "rate_limit", None),
    }
    env = os.environ if environ is None else environ
    for name in ("concurrency", "rate_limit_per_second"):
        # A laptop backfill can keep its choice in the environment, like the Lambda does.
        variable = ENV_PREFIX + name.upper()
        if optional[name] is None and env.get(variable):
            optional[name] = env[variable]
    values.update({k: v for k, v in optional.items() if v is not None})
    secret: dict[str, str] | None = None
    if args.secret_id is None:
        try:
            secret = secret_from_env(environ, api_key_env=args.api_key_env)
        except SecretError as exc:
            # Nothing was given: a usage error (exit 2), not a failure of Secrets Manager.
            raise SettingsError(str(exc)) from None
        values["auth_kind"] = (
            AuthKind.API_KEY.value if "api_key" in secret else AuthKind.SERVICE_ACCOUNT.value
        )
    return build_settings(values), secret


class RunProgress:
    """The engine's observer for the CLI: a progress line, empty buckets, warnings."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.empty: dict[str, int] = {}
        self.warnings: list[str] = []

    def on_bucket(self, result: BucketResult) -> None:
        if result.events == 0 and result.objects_written == 0:
            self.empty[result.org_id] = self.empty.get(result.org_id, 0) + 1
        self.progress.advance(note=f"org {result.org_id}")

    def on_org(self, result: OrgRunResult) -> None:
        """Nothing to do per org: the summary prints every org at the end."""

    def on_warning(self, message: str, **fields: object) -> None:
        details = ", ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        self.warnings.append(f"warning: {message} ({details})" if details else message)


def org_document(org: OrgRunResult, empty: int) -> dict[str, Any]:
    """One org's result for ``--json``."""

    def ts(value: int | None) -> str | None:
        return None if value is None else format_timestamp_ns(value)

    return {
        "org_id": org.org_id,
        "ok": org.error is None,
        "error": None if org.error is None else flag_vocabulary(org.error),
        "buckets": org.buckets,
        "buckets_written": org.buckets_written,
        "buckets_unchanged": max(0, org.buckets_unchanged - empty),
        "buckets_empty": empty,
        "events": org.events,
        "bytes_written": org.bytes_written,
        "checkpoint_before": ts(org.checkpoint_before_ns),
        "checkpoint_after": ts(org.checkpoint_after_ns),
        "behind_now_seconds": org.freshness_lag_s,
        "stopped_early": org.stopped_early,
    }


def format_org(doc: Mapping[str, Any]) -> str:
    """One org's result as a line a person reads."""
    if not doc["ok"]:
        done = f"{doc['buckets']} buckets, {doc['events']} events before it failed"
        return f"org {doc['org_id']}: FAILED ({done}): {doc['error']}"
    line = (
        f"org {doc['org_id']}: {doc['buckets']} buckets ({doc['buckets_written']} written, "
        f"{doc['buckets_unchanged']} unchanged, {doc['buckets_empty']} empty: no events), "
        f"{doc['events']} events, {doc['bytes_written']} bytes written; archive now trails "
        f"DI by {human_duration(doc['behind_now_seconds'])}; checkpoint (closed, not re-read) "
        f"{doc['checkpoint_after'] or 'none yet'}"
    )
    return line + (" [stopped early: run again to continue]" if doc["stopped_early"] else "")


def run(args: argparse.Namespace) -> int:
    """Run one pass; per-org results also when an org fails (exit 3 then)."""
    settings, secret = settings_from_args(args)
    window: tuple[int, int] | None = None
    if args.resnapshot:
        start, end = (parse_timestamp_ns(value) for value in args.resnapshot)
        if start >= end:
            raise SettingsError(
                f"--resnapshot START must be before END, got {args.resnapshot[0]} "
                f"and {args.resnapshot[1]}"
            )
        window = (start, end)
    progress = Progress("archiving", unit="buckets", enabled=None if not args.json else False)
    observer = RunProgress(progress)
    runtime = build_runtime(
        settings, secret=secret, endpoint_url=args.endpoint_url, observer=observer
    )
    failure: ArchiverError | None = None
    try:
        if progress.enabled:
            progress.total = application.planned_buckets(settings, runtime, window=window)
        try:
            if window is None:
                report = application.archive(settings, runtime)
            else:
                report = application.resnapshot(
                    settings, runtime, start_ns=window[0], end_ns=window[1]
                )
            runs = report.runs
        except application.EngineRunError as exc:
            # The orgs that succeeded are archived and checkpointed: say so, then fail.
            failure, runs = exc, (exc.report,)
    finally:
        progress.close()
        runtime.close()
    retries, absorbed = runtime.api_stats()
    orgs = [
        org_document(org, observer.empty.get(org.org_id, 0)) for run in runs for org in run.orgs
    ]
    document = {
        "command": NAME,
        "mode": "archive" if window is None else "resnapshot",
        "ok": failure is None,
        "orgs": orgs,
        "api": {"retries": retries, "transient_errors_absorbed": absorbed},
        "warnings": observer.warnings,
    }
    lines = [*observer.warnings, *(format_org(doc) for doc in orgs)]
    lines.append(
        f"DI API: {absorbed} transient errors absorbed by {retries} retries (-v shows each)"
    )
    emit(args, document, lines)
    if failure is not None:
        print(f"di-archiver run: error: {flag_vocabulary(str(failure))}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK
