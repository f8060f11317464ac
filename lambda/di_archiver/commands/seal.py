"""``di-archiver seal``: merge every closed day's bucket objects into sealed day objects.

Shares ``run``'s destination and credential arguments. The DI credential is used only to record
DI's day count in each manifest; ``--offline`` seals without it (the count is then null and
``reconcile`` fills it in later).

On an Object Lock archive, sealed objects and manifests written here (first seals, repairs,
relinks) must carry the deployment's retention: pass ``--object-lock-mode`` and
``--object-lock-days``. For an ``s3://`` archive the bucket's Object Lock configuration is read
first, and a run that would write unlocked objects into a locked bucket (or ask a bucket without
Object Lock to lock) is refused before anything is written.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from di_archiver import application
from di_archiver.commands import run as run_command
from di_archiver.commands.common import (
    EXIT_FAILURE,
    EXIT_FINDINGS,
    EXIT_OK,
    CountingPublisher,
    Progress,
    emit,
    flag_vocabulary,
)
from di_archiver.commands.run import (
    add_destination_arguments,
    add_di_arguments,
    destination_values,
    settings_from_args,
)
from di_archiver.settings import ArchiverSettings, ObjectLockMode
from di_archiver.wiring import build_checkpoints, build_runtime, build_signer, build_store

if TYPE_CHECKING:
    from di_archiver.domain.maintenance import MaintenanceReport
    from di_archiver.domain.seal import SealResult

NAME = "seal"
HELP = "Seal closed days: one object per (org, service, day), chained manifests."


def add_source_arguments(parser: argparse.ArgumentParser) -> None:
    """``run``'s destination, DI and credential arguments (seal, reconcile)."""
    add_destination_arguments(parser)
    add_di_arguments(parser)
    parser.add_argument("--lookback-days", type=int, help="Reconcile this far back (1-90).")
    parser.add_argument(
        "--object-lock-mode",
        choices=[m.value for m in ObjectLockMode],
        help="Object Lock mode for sealed objects and manifests (with --object-lock-days); "
        "required when the archive bucket has Object Lock enabled.",
    )
    parser.add_argument(
        "--object-lock-days",
        type=int,
        metavar="DAYS",
        help="Object Lock retention in days (with --object-lock-mode), as the deployment sets it.",
    )
    signing = parser.add_mutually_exclusive_group()
    signing.add_argument(
        "--signing-key",
        metavar="PEM",
        help="Sign every manifest written with this EC P-256 private key file "
        "(`di-archiver keygen` makes one; keep it outside the archive).",
    )
    signing.add_argument(
        "--signing-kms-key-id",
        metavar="ARN",
        help="Sign every manifest written with this KMS key (SIGN_VERIFY, ECC_NIST_P256).",
    )
    parser.add_argument(
        "--heads-file",
        metavar="PATH",
        help="Append each signed day's manifest hash here (keep it outside the archive; "
        "`verify --expect-head` checks against it).",
    )
    parser.set_defaults(services=None, lag=None, settle=None, kms_key_id=None, resnapshot=None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``seal``'s arguments."""
    add_source_arguments(parser)
    parser.add_argument(
        "--offline",
        action="store_true",
        help="Seal without asking DI for day counts (no credential needed).",
    )


def _lock_values(args: argparse.Namespace) -> dict[str, Any]:
    values = {
        "object_lock_mode": args.object_lock_mode,
        "object_lock_days": args.object_lock_days,
        "signing_key_file": args.signing_key,
        "signing_key_id": args.signing_kms_key_id,
    }
    return {k: v for k, v in values.items() if v is not None}


def build_settings(
    args: argparse.Namespace, *, offline: bool
) -> tuple[ArchiverSettings, dict[str, str] | None]:
    """Validated settings (with any Object Lock flags) plus the credential read from the env."""
    lock = _lock_values(args)
    if offline:
        return run_command.build_settings({**destination_values(args), **lock}), None
    settings, secret = settings_from_args(args)
    if lock:
        # Re-validated, so "both or neither" is enforced exactly as for the Lambda's settings.
        settings = run_command.build_settings({**settings.values(), **lock})
    return settings, secret


class CollectingObserver:
    """Collects one line per sealed or repaired day and per warning; drives the progress line."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.days: list[dict[str, Any]] = []
        self.warnings: list[str] = []

    def _day(self, action: str, result: SealResult) -> None:
        self.days.append(
            {
                "action": action,
                "org_id": result.org_id,
                "day": result.day.isoformat(),
                "events": result.events,
                "di_count": result.di_count,
            }
        )
        self.progress.advance(note=f"{action} {result.org_id} {result.day}")

    def on_day_sealed(self, result: SealResult) -> None:
        self._day("sealed", result)

    def on_day_repaired(self, result: SealResult) -> None:
        self._day("repaired", result)

    def on_warning(self, message: str, **fields: object) -> None:
        details = ", ".join(f"{k}={v}" for k, v in sorted(fields.items()))
        self.warnings.append(f"warning: {message} ({details})")


def report_document(report: MaintenanceReport, observer: CollectingObserver) -> dict[str, Any]:
    orgs = [
        {
            "org_id": org.org_id,
            "ok": org.error is None,
            "error": org.error,
            "skipped": org.skipped_reason,
            "days_sealed": org.days_sealed,
            "days_repaired": org.days_repaired,
            "days_reconciled": len(org.checks),
        }
        for org in report.orgs
    ]
    reconciled = [
        {
            "org_id": check.org_id,
            **check.counts(),
            "finding": check.finding,
            "sealed": check.sealed,
            "line": check.describe(),
        }
        for org in report.orgs
        for check in org.checks
        if check.status != "ok"
    ]
    return {
        "ok": not report.failures and not report.findings,
        "orgs": orgs,
        "reconciled": reconciled,
        "findings": [item["line"] for item in reconciled if item["finding"]],
        "temp_files_removed": list(report.temp_files_removed),
        "days": observer.days,
        "warnings": observer.warnings,
        "stopped_early": report.stopped_early,
    }


def report_lines(document: dict[str, Any]) -> list[str]:
    lines = list(document["warnings"])
    for day in document["days"]:
        if day["action"] == "sealed":
            lines.append(f"sealed {day['org_id']} {day['day']}: {day['events']} events")
        elif day["di_count"] is not None and day["di_count"] > day["events"]:
            # Re-sealed, yet still short of DI: never worded as a success.
            lines.append(
                f"re-sealed {day['org_id']} {day['day']}: now {day['events']} events, "
                f"DI counts {day['di_count']}: still short"
            )
        else:
            lines.append(
                f"repaired {day['org_id']} {day['day']}: now {day['events']} events "
                f"(DI counts {day['di_count']})"
            )
    for item in document["reconciled"]:
        lines.append(("FINDING " if item["finding"] else "reconciled ") + item["line"])
    for org in document["orgs"]:
        if org["skipped"]:
            lines.append(f"org {org['org_id']}: skipped ({org['skipped']})")
        elif org["error"]:
            lines.append(f"org {org['org_id']}: FAILED: {flag_vocabulary(org['error'])}")
        else:
            lines.append(
                f"org {org['org_id']}: {org['days_sealed']} days sealed, "
                f"{org['days_repaired']} repaired, {org['days_reconciled']} days reconciled"
            )
    if document["stopped_early"]:
        lines.append("stopped early (time budget): run again to continue")
    if document["findings"]:
        lines.append(
            f"{len(document['findings'])} reconcile finding(s): the archive and DI still "
            "disagree (nothing was deleted); run reconcile again, then investigate"
        )
    return lines


def execute(args: argparse.Namespace, *, reconcile: bool, offline: bool) -> int:
    """Shared body of ``seal`` and ``reconcile``: exit 3 when an org failed, 1 on findings."""
    settings, secret = build_settings(args, offline=offline)
    store = build_store(settings, endpoint_url=args.endpoint_url)
    # Before any credential is read or object written: a refusal must leave nothing behind.
    application.check_object_lock(store, application.object_lock_retention(settings))
    runtime = (
        None if offline else build_runtime(settings, secret=secret, endpoint_url=args.endpoint_url)
    )
    signer = build_signer(settings, endpoint_url=args.endpoint_url)
    counter = CountingPublisher()
    publishers: list[Any] = [counter]
    if args.heads_file:
        from di_archiver.adapters.heads import FileHeadPublisher  # noqa: PLC0415

        publishers.append(FileHeadPublisher(args.heads_file))
    ports = application.MaintenancePorts(
        store=store,
        checkpoints=build_checkpoints(settings, endpoint_url=args.endpoint_url),
        source=runtime.source if runtime else None,
        snapshotter=runtime.engine if runtime else None,
        signer=signer,
        publishers=publishers,
    )
    verb = "sealing and reconciling" if reconcile else "sealing"
    progress = Progress(verb, unit="days", enabled=False if args.json else None)
    observer = CollectingObserver(progress)
    try:
        report = application.maintain(settings, ports, reconcile=reconcile, observer=observer)
    finally:
        progress.close()
        if runtime is not None:
            runtime.close()
    document = {"command": args.command, **report_document(report, observer)}
    document["signing"] = {
        "key": signer.fingerprint if signer is not None else None,
        "manifests_signed": counter.signed,
        "heads": {org: {"day": d, "sha256": h} for org, (d, h) in sorted(counter.newest.items())},
    }
    lines = report_lines(document)
    if signer is None:
        lines.append(
            "manifests NOT signed: pass --signing-key PEM or --signing-kms-key-id ARN so "
            "verify can prove who sealed them"
        )
    else:
        lines.append(f"signed {counter.signed} manifest(s) with key {signer.fingerprint[:16]}...")
        lines += [
            f"org {org}: head {day} sha256 {sha} (store it: verify --expect-head {org}:{day}:{sha})"
            for org, (day, sha) in sorted(counter.newest.items())
        ]
    emit(args, document, lines)
    if report.failures:
        return EXIT_FAILURE
    return EXIT_FINDINGS if report.findings else EXIT_OK


def run(args: argparse.Namespace) -> int:
    """Seal every sealable day of each org."""
    return execute(args, reconcile=False, offline=bool(args.offline))
