"""``di-archiver seal``: merge every closed day's bucket objects into sealed day objects.

Shares ``run``'s destination and credential arguments. The DI credential is used only to record
DI's day count in each manifest; ``--offline`` seals without it (the count is then null and
``reconcile`` fills it in later).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from di_archiver.settings import AuthKind, Region

if TYPE_CHECKING:
    from di_archiver.domain.maintenance import MaintenanceReport
    from di_archiver.domain.seal import SealResult
    from di_archiver.settings import ArchiverSettings
    from di_archiver.wiring import Runtime

NAME = "seal"
HELP = "Seal closed days: one object per (org, service, day), chained manifests."


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``run``'s destination, DI and credential arguments (seal, reconcile)."""
    from di_archiver.commands.run import add_destination_arguments  # noqa: PLC0415

    add_destination_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--base-url", help="DI API base URL (e.g. the simulator's).")
    source.add_argument(
        "--region", choices=[r.value for r in Region], help="JumpCloud data centre."
    )
    parser.add_argument("--token-url", help="OAuth token URL for service accounts.")
    credential = parser.add_mutually_exclusive_group()
    credential.add_argument("--secret-id", help="Secrets Manager secret holding the credential.")
    credential.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="Environment variable holding the API key (default JUMPCLOUD_API_KEY).",
    )
    parser.add_argument(
        "--auth-kind", choices=[k.value for k in AuthKind], help="Credential kind in --secret-id."
    )
    parser.add_argument("--lookback-days", type=int, help="Reconcile this far back (1-90).")
    parser.set_defaults(services=None, lag=None, settle=None, kms_key_id=None, resnapshot=None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``seal``'s arguments."""
    add_source_arguments(parser)
    parser.add_argument(
        "--offline",
        action="store_true",
        help="Seal without asking DI for day counts (no credential needed).",
    )


def build(args: argparse.Namespace, *, offline: bool) -> tuple[ArchiverSettings, Runtime | None]:
    """Settings, plus a runtime (engine and DI client) unless ``offline``."""
    from di_archiver.commands.run import destination_values, settings_from_args  # noqa: PLC0415
    from di_archiver.settings import ArchiverSettings  # noqa: PLC0415
    from di_archiver.wiring import build_runtime  # noqa: PLC0415

    if offline:
        values: dict[str, Any] = destination_values(args)
        return ArchiverSettings.build(values), None
    settings, secret = settings_from_args(args)
    return settings, build_runtime(settings, secret=secret, endpoint_url=args.endpoint_url)


class PrintingObserver:
    """Prints one line per sealed or repaired day and per warning."""

    def on_day_sealed(self, result: SealResult) -> None:
        print(f"sealed {result.org_id} {result.day}: {result.events} events")

    def on_day_repaired(self, result: SealResult) -> None:
        print(
            f"repaired {result.org_id} {result.day}: now {result.events} events "
            f"(DI counts {result.di_count})"
        )

    def on_warning(self, message: str, **fields: object) -> None:
        details = ", ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        print(f"warning: {message} ({details})")


def print_report(report: MaintenanceReport) -> int:
    """Summary lines; exit status 1 when an org failed."""
    for org in report.orgs:
        if org.skipped_reason:
            print(f"org {org.org_id}: skipped ({org.skipped_reason})")
        elif org.error:
            print(f"org {org.org_id}: FAILED: {org.error}")
        else:
            print(
                f"org {org.org_id}: {org.days_sealed} days sealed, {org.days_repaired} repaired, "
                f"{len(org.checks)} days reconciled"
            )
    return 1 if report.failures else 0


def execute(args: argparse.Namespace, *, reconcile: bool, offline: bool) -> int:
    """Shared body of ``seal`` and ``reconcile``."""
    from di_archiver.domain.maintenance import maintain  # noqa: PLC0415
    from di_archiver.timestamps import NS_PER_SECOND  # noqa: PLC0415
    from di_archiver.wiring import build_checkpoints, build_store  # noqa: PLC0415

    settings, runtime = build(args, offline=offline)
    try:
        report = maintain(
            org_ids=list(settings.org_ids),
            store=build_store(settings, endpoint_url=args.endpoint_url),
            checkpoints=build_checkpoints(settings, endpoint_url=args.endpoint_url),
            prefix=settings.archive_prefix,
            source=runtime.source if runtime else None,
            snapshotter=runtime.engine if runtime else None,
            lookback_ns=settings.lookback_days * 86_400 * NS_PER_SECOND,
            observer=PrintingObserver(),
            reconcile=reconcile,
        )
    finally:
        if runtime is not None:
            runtime.close()
    return print_report(report)


def run(args: argparse.Namespace) -> int:
    """Seal every sealable day of each org."""
    return execute(args, reconcile=False, offline=bool(args.offline))
