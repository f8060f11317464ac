"""``di-archiver demo``: the whole idea in under a minute, with no AWS and no JumpCloud account.

It starts the DI simulator (faults and late indexing on, simulated clock), archives a few days
of events into a local directory, moves the clock past every late-indexing delay, archives
again, seals the closed days (day objects + hash-chained manifests), reconciles them with DI's
counts, verifies the archive's hashes and chain, and proves the archive holds every visible
event exactly once, byte-identical JSON.

Other features add report sections by appending ``"module:function"`` to ``REPORT_HOOKS``; each
function gets the :class:`DemoResult` and returns lines to print (e.g. named query answers).
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msgspec.structs import replace

from di_archiver import application
from di_archiver.adapters.local_store import LocalArchiveStore
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.adapters.signing import LocalKeySigner
from di_archiver.archive_format import decode_lines, event_timestamp_ns
from di_archiver.commands.common import (
    DEFAULT_ARCHIVE,
    EXIT_FINDINGS,
    EXIT_OK,
    CountingPublisher,
    emit,
)
from di_archiver.errors import SettingsError
from di_archiver.layout import parse_object_key, validate_org_id
from di_archiver.raw_events import serialise_event
from di_archiver.settings import ArchiverSettings
from di_archiver.simulator import Simulator, SimulatorClock, SimulatorConfig
from di_archiver.simulator.config import (
    DEMO_API_KEY,
    DEMO_ORG_ID,
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
)
from di_archiver.timestamps import NS_PER_SECOND
from di_archiver.wiring import build_runtime

NAME = "demo"
HELP = "Archive a simulated org into ./di-archive and prove every event is there exactly once."

DEFAULT_DIR = DEFAULT_ARCHIVE  # every command's default: query/verify/status find it as is
# Written into the archive directory by the demo: a rerun removes only a directory it made.
DEMO_MARKER = ".di-archiver-demo"
DEMO_SIGNING_KEY = "demo-signing-key.pem"
# A fixed instant (a bucket boundary) keeps the demo reproducible; the clock only moves on demand.
DEMO_NOW_NS = 1_778_112_000 * 1_000_000_000  # 2026-05-07T00:00:00Z
LAG_SECONDS = 300
BUCKET_MINUTES = 60
SETTLE_SECONDS = 2 * 3600  # the production default
# Longer than the settle horizon on purpose: some events are indexed after their bucket closed
# (and their day was sealed), which only reconcile recovers; the demo shows it in one pass.
LATE_MAX_DELAY_S = 12 * 3600
ADVANCE_SECONDS = 8 * 3600

REPORT_HOOKS: list[str] = ["di_archiver.query.local:demo_report"]


@dataclass
class DemoResult:
    """What the demo did; report hooks read it (``archive_dir`` holds the archive)."""

    archive_dir: Path
    prefix: str
    org_ids: tuple[str, ...]
    events_by_service: Counter[str] = field(default_factory=Counter)
    objects: int = 0
    bytes: int = 0
    archived_lines: int = 0
    expected_lines: int = 0
    missing: int = 0
    extra: int = 0
    duplicates: int = 0
    late_recovered: int = 0
    first_run_events: int = 0
    api_retries: int = 0
    api_errors: int = 0
    days_sealed: int = 0
    days_repaired: int = 0
    buckets_repaired: int = 0
    events_repaired: int = 0
    reconcile_findings: int = -1
    verify_findings: int = -1
    manifests: int = 0
    signing_key: Path | None = None
    key_fingerprint: str = ""
    manifests_signed: int = 0
    signatures_checked: int = 0
    head: tuple[str, str] | None = None
    head_checked: bool = False
    seconds: float = 0.0

    @property
    def exactly_once(self) -> bool:
        return self.expected_lines > 0 and not (self.missing or self.extra or self.duplicates)

    @property
    def passed(self) -> bool:
        return self.exactly_once and self.verify_findings == 0 and self.reconcile_findings == 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register ``demo``'s arguments."""
    parser.add_argument(
        "--dir",
        "--archive",
        dest="dir",
        default=DEFAULT_DIR,
        metavar="DIR",
        help="Archive directory; a rerun replaces it only if an earlier demo created it "
        f"(default: {DEFAULT_DIR}).",
    )
    parser.add_argument(
        "--org-id",
        default=DEMO_ORG_ID,
        metavar="ORG_ID",
        help="Id of the simulated organisation (24 hex characters).",
    )
    parser.add_argument("--events", type=int, default=30_000, help="Simulated events (one org).")
    parser.add_argument("--days", type=float, default=3.0, help="Days of history to simulate.")
    parser.add_argument("--fault-rate", type=float, default=0.02, help="Per fault type, 0-0.15.")
    parser.add_argument("--seed", type=int, default=7, help="Simulator seed.")
    parser.add_argument(
        "--keep", action="store_true", help="Keep an existing --dir instead of starting fresh."
    )


def _archive_contents(result: DemoResult, store_dir: Path) -> Counter[bytes]:
    store = LocalArchiveStore(store_dir)
    lines: Counter[bytes] = Counter()
    for stored in store.list(result.prefix + "/"):
        body = store.get(stored.key)
        if body is None or not stored.key.endswith(".jsonl.gz"):
            continue
        decoded = decode_lines(body)
        lines.update(decoded)
        result.objects += 1
        result.bytes += stored.size
        result.events_by_service[parse_object_key(stored.key).service] += len(decoded)
    return lines


def _empty(directory: Path) -> bool:
    return directory.is_dir() and not any(directory.iterdir())


def _is_marker(path: Path) -> bool:
    """The demo's own marker: a regular file, never a symlink (writing through one would
    overwrite its target)."""
    return path.is_file() and not path.is_symlink()


def _remove_earlier_demo(directory: Path) -> None:
    """Start fresh, but never delete a directory the demo did not create (a real archive)."""
    if directory.is_symlink() or not (
        directory.is_dir() and (_is_marker(directory / DEMO_MARKER) or _empty(directory))
    ):
        raise SettingsError(
            f"--dir {directory}: exists and was not created by the demo; pass another --dir "
            "(or --keep to archive into it)"
        )
    shutil.rmtree(directory)


def run_demo(
    directory: Path,
    *,
    events: int = 30_000,
    days: float = 3.0,
    fault_rate: float = 0.02,
    seed: int = 7,
    keep: bool = False,
    org_id: str = DEMO_ORG_ID,
) -> DemoResult:
    """Run the demo and return its result (``main`` prints it)."""
    if not 0.0 <= fault_rate <= 0.15:
        raise SettingsError(
            f"--fault-rate must be between 0 and 0.15 (per fault type), got {fault_rate}"
        )
    if events < 1:
        raise SettingsError(f"--events must be positive, got {events}")
    if not 0 < days <= 30:
        raise SettingsError(f"--days must be in (0, 30], got {days}")
    validate_org_id(org_id)
    began = time.monotonic()
    if directory.exists() and not keep:
        _remove_earlier_demo(directory)
    # Only a directory the demo creates (or finds empty) gets the marker: with --keep into an
    # existing directory, a marker would let a later run delete what was there before.
    marker = directory / DEMO_MARKER
    ours = not directory.exists() or _empty(directory) or _is_marker(marker)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if ours and not _is_marker(marker):
            marker.write_text("created by di-archiver demo\n", encoding="utf-8")
    except OSError as exc:
        raise SettingsError(
            f"--dir {directory}: cannot create the demo directory ({exc.strerror or exc}); "
            "choose a writable place"
        ) from exc
    # The demo signs like a deployment, with a local key instead of KMS; it lives beside the
    # archive prefix (never inside it), and a real deployment keeps it in KMS.
    key_path = directory / DEMO_SIGNING_KEY
    signer = (
        LocalKeySigner.from_pem_file(key_path)
        if key_path.exists()
        else LocalKeySigner.generate(key_path)
    )
    heads = CountingPublisher()
    clock = SimulatorClock(now_ns=DEMO_NOW_NS)
    sim = Simulator(
        SimulatorConfig(
            seed=seed,
            orgs=(OrgSpec(org_id=org_id, event_count=events),),
            span_seconds=days * 86_400.0,
            future_span_seconds=float(ADVANCE_SECONDS),
            faults=FaultConfig.modest(rate=fault_rate, seed=seed),
            late=LateIndexingConfig(
                share=0.05, median_delay_seconds=600.0, max_delay_seconds=LATE_MAX_DELAY_S
            ),
        ),
        clock=clock,
    )
    settings = ArchiverSettings.build(
        {
            "org_ids": [org_id],
            "archive_dir": str(directory),
            "checkpoint_file": str(directory / "checkpoints.json"),
            "bucket_minutes": BUCKET_MINUTES,
            "lag_seconds": LAG_SECONDS,
            "settle_seconds": SETTLE_SECONDS,
            "lookback_days": int(days) + 1,
            "signing_key_file": str(key_path),
        }
    )
    result = DemoResult(
        archive_dir=directory, prefix=settings.archive_prefix, org_ids=settings.org_ids
    )
    result.signing_key, result.key_fingerprint = key_path, signer.fingerprint
    # Short back-off keeps the demo quick; production keeps the patient default.
    fast_retry = RetryPolicy(max_attempts=10, base_delay=0.02, max_delay=0.2)
    with sim.serve(port=0) as server:
        # The demo's simulator enforces no rate limit; JumpCloud's polite ceiling stays the
        # default for real runs.
        settings = settings.replace(base_url=server.base_url, rate_limit_per_second=1000.0)

        runtime = build_runtime(
            settings,
            secret={"api_key": DEMO_API_KEY},
            clock=clock.now_ns,
            client_options={"retry": fast_retry},
        )
        try:
            result.first_run_events = application.archive(settings, runtime).events
            first_pass = _archive_contents(DemoResult(directory, result.prefix, ()), directory)
            clock.advance(ADVANCE_SECONDS)
            application.archive(settings, runtime)
            ports = replace(runtime.maintenance_ports, publishers=[heads])
            maintenance = application.maintain(settings, ports, clock=clock.now_ns)
        finally:
            runtime.close()
        maintenance.raise_for_failures()
        result.days_sealed = maintenance.days_sealed
        result.days_repaired = maintenance.days_repaired
        checks = [check for org in maintenance.orgs for check in org.checks]
        result.buckets_repaired = sum(len(check.buckets_resnapshotted) for check in checks)
        result.events_repaired = sum(
            check.archived_after - check.archived_before
            for check in checks
            if check.status == "repaired"
        )
        result.reconcile_findings = len(maintenance.findings)
        result.api_retries, result.api_errors = runtime.api_stats()
        result.manifests_signed = heads.signed
        newest = heads.newest.get(org_id)
        expected_heads = []
        if newest is not None:
            result.head = newest
            expected_heads.append(
                application.parse_expected_head(f"{org_id}:{newest[0]}:{newest[1]}")
            )
        verified = application.verify(
            runtime.store,
            prefix=settings.archive_prefix,
            verifier=signer.verifier(),
            expected_heads=expected_heads,
        )
        result.verify_findings = len(verified.findings)
        result.manifests = verified.manifests_checked
        result.signatures_checked = verified.signatures_checked
        result.head_checked = bool(expected_heads) and not any(
            f.kind == "head" for f in verified.findings
        )
        horizon_ns = clock.now_ns() - LAG_SECONDS * NS_PER_SECOND
        expected = Counter(
            serialise_event(event) for event in sim.visible_events(org_id, 0, horizon_ns)
        )
    archived = _archive_contents(result, directory)
    first_horizon = DEMO_NOW_NS - LAG_SECONDS * NS_PER_SECOND
    result.late_recovered = sum(
        1 for line in archived if line not in first_pass and _ts_ns(line) < first_horizon
    )
    result.archived_lines = sum(archived.values())
    result.expected_lines = sum(expected.values())
    result.missing = sum((expected - archived).values())
    result.extra = sum((archived - expected).values())
    result.duplicates = sum(count - 1 for count in archived.values() if count > 1)
    result.seconds = time.monotonic() - began
    return result


def _ts_ns(line: bytes) -> int:
    return event_timestamp_ns(json.loads(line))


def format_result(result: DemoResult) -> list[str]:
    """The report's core lines (hooks append theirs after these)."""
    per_event = result.bytes / result.archived_lines if result.archived_lines else 0.0
    lines = [
        f"di-archiver demo: archive in {result.archive_dir}",
        f"  events archived    {result.archived_lines} ({result.first_run_events} on the first "
        f"pass; {result.late_recovered} late-indexed events recovered by the second)",
        f"  objects            {result.objects}",
        f"  bytes (gzip)       {result.bytes} ({per_event:.1f} bytes/event)",
        f"  API faults absorbed {result.api_errors} ({result.api_retries} retries)",
        "  events per service:",
    ]
    for service, count in sorted(result.events_by_service.items()):
        lines.append(f"    {service:<22}{count:>8}")
    lines.append(
        f"  sealed days        {result.days_sealed} (one object per service and day, "
        f"{result.manifests} hash-chained manifests; {result.days_repaired} repaired by reconcile)"
    )
    lines.append(
        f"  late events        reconcile found {result.events_repaired} events indexed after "
        f"their hour closed and repaired {result.buckets_repaired} buckets of "
        f"{result.days_repaired} days in one pass; {max(result.reconcile_findings, 0)} findings"
    )
    verify_verdict = "PASS" if result.verify_findings == 0 else "FAIL"
    lines.append(
        f"  verify             {verify_verdict}: {max(result.verify_findings, 0)} findings "
        "(hashes, counts, order, manifest chain, signatures, published head)"
    )
    lines.append(
        f"  signatures         {result.manifests_signed} manifests signed with the local key "
        f"{result.key_fingerprint[:16]}... ({result.signing_key}); "
        f"{result.signatures_checked} signatures verified with its public key"
    )
    if result.head is not None:
        lines.append(
            f"  published head     {result.head[0]} sha256 {result.head[1][:16]}... "
            + ("matches the archive" if result.head_checked else "DOES NOT match the archive")
        )
    verdict = "PASS" if result.exactly_once else "FAIL"
    lines.append(
        f"  exactly-once check {verdict}: {result.expected_lines} visible events, "
        f"{result.missing} missing, {result.extra} extra, {result.duplicates} duplicated"
    )
    lines.append(f"  took {result.seconds:.1f} s")
    return lines


def report_hooks(names: Sequence[str] = ()) -> list[Callable[[DemoResult], Iterable[str]]]:
    """Resolve ``"module:function"`` hooks (imported only when the demo runs)."""
    hooks = []
    for name in names or REPORT_HOOKS:
        module, _, function = name.partition(":")
        hooks.append(getattr(importlib.import_module(module), function))
    return hooks


def result_document(result: DemoResult) -> dict[str, Any]:
    """The demo's result for ``--json``."""
    return {
        "command": NAME,
        "ok": result.passed,
        "archive": str(result.archive_dir),
        "org_ids": list(result.org_ids),
        "events_archived": result.archived_lines,
        "events_first_pass": result.first_run_events,
        "late_events_recovered": result.late_recovered,
        "objects": result.objects,
        "bytes": result.bytes,
        "events_per_service": dict(sorted(result.events_by_service.items())),
        "api": {"retries": result.api_retries, "transient_errors_absorbed": result.api_errors},
        "days_sealed": result.days_sealed,
        "days_repaired": result.days_repaired,
        "reconcile": {
            "events_repaired": result.events_repaired,
            "buckets_repaired": result.buckets_repaired,
            "findings": result.reconcile_findings,
        },
        "manifests": result.manifests,
        "manifests_signed": result.manifests_signed,
        "signatures_verified": result.signatures_checked,
        "signing_key_fingerprint": result.key_fingerprint,
        "published_head": (
            {"day": result.head[0], "sha256": result.head[1], "matches": result.head_checked}
            if result.head is not None
            else None
        ),
        "verify_findings": result.verify_findings,
        "exactly_once": {
            "ok": result.exactly_once,
            "expected": result.expected_lines,
            "missing": result.missing,
            "extra": result.extra,
            "duplicated": result.duplicates,
        },
        "seconds": round(result.seconds, 3),
    }


def run(args: argparse.Namespace) -> int:
    """Run the demo, print the report; exit 1 if the exactly-once check or verify fails."""
    result = run_demo(
        Path(args.dir),
        events=args.events,
        days=args.days,
        fault_rate=args.fault_rate,
        seed=args.seed,
        keep=args.keep,
        org_id=args.org_id,
    )
    lines = format_result(result)
    for hook in report_hooks():
        lines.extend(hook(result))
    emit(args, result_document(result), lines)
    return EXIT_OK if result.passed else EXIT_FINDINGS
