"""Seal, late indexing, reconcile and verify end to end: simulator over HTTP, real engine."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.adapters.s3_store import S3ArchiveStore
from di_archiver.adapters.ssm_checkpoint import SsmCheckpointStore
from di_archiver.archive_format import decode_lines
from di_archiver.cli import main
from di_archiver.domain.engine import ArchiveEngine, EngineConfig
from di_archiver.domain.maintenance import MaintenanceReport, maintain
from di_archiver.layout import manifest_key, sealed_day_key
from di_archiver.simulator import Simulator, SimulatorClock, SimulatorConfig
from di_archiver.simulator.config import (
    DEMO_API_KEY,
    DEMO_ORG_ID,
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
)
from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns, parse_timestamp_ns

HOUR = 3600 * NS_PER_SECOND
DAY = 24 * HOUR
PREFIX = "di"
NOW = int(datetime(2026, 5, 10, 6, tzinfo=UTC).timestamp()) * NS_PER_SECOND
# The backfill starts at 05-06 06:00 (NOW - lookback): that day is covered, though empty.
SEALED_DAYS = [date(2026, 5, 6), date(2026, 5, 7), date(2026, 5, 8), date(2026, 5, 9)]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    sim = Simulator(
        SimulatorConfig(
            seed=11,
            orgs=(OrgSpec(org_id=DEMO_ORG_ID, event_count=6000),),
            span_seconds=3 * 86_400.0,
            faults=FaultConfig.modest(0.02, seed=5),
            late=LateIndexingConfig(share=0.08, median_delay_seconds=3 * 3600.0),
        ),
        clock=SimulatorClock(now_ns=NOW),
    )
    with sim.serve(port=0) as server:
        client = DIClient(
            base_url=server.base_url,
            credentials=ApiKeyCredentials(DEMO_API_KEY),
            retry=RetryPolicy(max_attempts=10, base_delay=0.0),
        )
        store = LocalArchiveStore(tmp_path / "archive")
        checkpoints = FileCheckpointStore(tmp_path / "archive" / "checkpoints.json")
        engine = ArchiveEngine(
            source=client,
            store=store,
            checkpoints=checkpoints,
            config=EngineConfig(
                prefix=PREFIX,
                bucket_ns=HOUR,
                lag_ns=300 * NS_PER_SECOND,
                settle_ns=2 * HOUR,
                lookback_ns=4 * DAY,
                max_events_per_bucket=100_000,
                time_budget_reserve_s=0.0,
            ),
            clock=sim.clock.now_ns,
        )
        yield {
            "sim": sim,
            "client": client,
            "store": store,
            "checkpoints": checkpoints,
            "engine": engine,
            "dir": tmp_path / "archive",
        }
        client.close()


def run_maintain(world: dict[str, Any]) -> MaintenanceReport:
    return maintain(
        org_ids=[DEMO_ORG_ID],
        store=world["store"],
        checkpoints=world["checkpoints"],
        prefix=PREFIX,
        source=world["client"],
        snapshotter=world["engine"],
        lookback_ns=30 * DAY,
        clock=world["sim"].clock.now_ns,
    )


def sealed_events(store: LocalArchiveStore, day: date) -> list[dict[str, Any]]:
    data = store.get(manifest_key(PREFIX, DEMO_ORG_ID, day))
    assert data is not None
    events = []
    for entry in json.loads(data)["objects"]:
        assert entry["key"] == sealed_day_key(PREFIX, DEMO_ORG_ID, entry["service"], day)
        body = store.get(entry["key"])
        assert body is not None
        events.extend(json.loads(line) for line in decode_lines(body))
    return events


def ground_truth(sim: Simulator, day: date) -> list[dict[str, Any]]:
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * NS_PER_SECOND
    # The simulator filters at ms; the archive enforces [start, end) on the full timestamp.
    return [
        e
        for e in sim.visible_events(DEMO_ORG_ID, start - HOUR, start + DAY + HOUR)
        if start <= parse_timestamp_ns(e["timestamp"]) < start + DAY
    ]


def canonical(events: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in events)


def test_late_events_after_sealing_are_repaired_once_and_the_archive_verifies(
    world: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    sim, store = world["sim"], world["store"]
    # Given an archived and sealed org while some events are not yet indexed by DI
    world["engine"].run([DEMO_ORG_ID])
    first = run_maintain(world)
    assert first.days_sealed == len(SEALED_DAYS)
    held_at_seal = sum(len(sealed_events(store, d)) for d in SEALED_DAYS)

    # When DI indexes the late events and maintenance runs (twice)
    sim.clock.advance(2 * 86_400)
    missing_at_seal = sum(len(ground_truth(sim, d)) for d in SEALED_DAYS) - held_at_seal
    second = run_maintain(world)
    third = run_maintain(world)

    # Then every visible event of every sealed day is archived exactly once, byte-equal JSON
    assert missing_at_seal > 0
    assert second.days_repaired >= 1
    for day in SEALED_DAYS:
        assert canonical(sealed_events(store, day)) == canonical(ground_truth(sim, day))
    # And a repaired day is not repaired again
    assert third.days_repaired == 0
    assert {c.status for c in third.orgs[0].checks} == {"ok"}
    # And the CLI verifies the archive (exit 0), and flags a removed sealed object (exit 1)
    assert main(["verify", "--archive", str(world["dir"])]) == 0
    victim = sealed_day_key(PREFIX, DEMO_ORG_ID, "directory", SEALED_DAYS[2])
    store.delete(victim)
    capsys.readouterr()
    assert main(["verify", "--archive", str(world["dir"])]) == 1
    assert f"FINDING missing: {victim}" in capsys.readouterr().out


# -- Object Lock retention from the CLI (moto) ----------------------------------------------------

LOCKED_BUCKET, PLAIN_BUCKET = "di-archive-locked", "di-archive-plain"
SSM_PATH = "/di-archiver/checkpoints"


@pytest.fixture
def s3_archives() -> Iterator[Any]:
    """A lock-enabled and a plain bucket, each holding two closed, unsealed days of one org."""
    from tests.unit.integrity.fakes import DAY0, FakeEngine, FakeSource, day_ns, populate

    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=LOCKED_BUCKET, ObjectLockEnabledForBucket=True)
        s3.create_bucket(Bucket=PLAIN_BUCKET)
        source = FakeSource(now=day_ns(DAY0) + 3 * DAY)
        populate(source, DAY0, 2, per_day=6)
        for bucket in (LOCKED_BUCKET, PLAIN_BUCKET):
            FakeEngine(source, S3ArchiveStore(bucket)).archive_days(DEMO_ORG_ID, DAY0, 2)  # type: ignore[arg-type]
        SsmCheckpointStore(SSM_PATH).save(
            DEMO_ORG_ID,
            {
                "schema_version": 1,
                "closed_through": format_timestamp_ns(day_ns(DAY0) + 2 * DAY),
                "bucket_minutes": 60,
            },
        )
        yield s3


def seal_args(bucket: str, *extra: str) -> list[str]:
    return [
        "seal",
        "--offline",
        "--org-id",
        DEMO_ORG_ID,
        "--archive",
        f"s3://{bucket}/{PREFIX}",
        "--checkpoint",
        f"ssm:{SSM_PATH}",
        *extra,
    ]


def keys(s3: Any, bucket: str) -> list[str]:
    return [item["Key"] for item in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_seal_refuses_an_object_lock_bucket_without_retention_flags(
    s3_archives: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a lock-enabled archive bucket with closed days to seal
    before = keys(s3_archives, LOCKED_BUCKET)

    # When `seal` runs without --object-lock-mode/--object-lock-days
    status = main(seal_args(LOCKED_BUCKET))

    # Then it refuses with an error naming both flags, and nothing was written or deleted
    err = capsys.readouterr().err
    assert status == 2
    assert "Object Lock enabled" in err
    assert "--object-lock-mode" in err
    assert "--object-lock-days" in err
    assert keys(s3_archives, LOCKED_BUCKET) == before
    assert not [k for k in before if "/_manifests/" in k]


def test_seal_with_retention_flags_locks_sealed_objects_and_manifests(
    s3_archives: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a lock-enabled archive bucket with closed days to seal
    # When `seal` runs with the deployment's retention
    status = main(
        seal_args(LOCKED_BUCKET, "--object-lock-mode", "COMPLIANCE", "--object-lock-days", "30")
    )

    # Then every sealed day object and manifest carries compliance retention about 30 days out
    assert status == 0, capsys.readouterr().err
    written = [k for k in keys(s3_archives, LOCKED_BUCKET) if "/day." in k or "/_manifests/" in k]
    assert len([k for k in written if "/_manifests/" in k]) == 2
    for key in written:
        head = s3_archives.head_object(Bucket=LOCKED_BUCKET, Key=key)
        assert head["ObjectLockMode"] == "COMPLIANCE"
        days_out = (head["ObjectLockRetainUntilDate"].timestamp() - time.time()) / 86_400
        assert 29 < days_out <= 30


@pytest.mark.parametrize(
    ("bucket", "extra", "message"),
    [
        (
            PLAIN_BUCKET,
            ("--object-lock-mode", "GOVERNANCE", "--object-lock-days", "7"),
            "does not have Object Lock",
        ),
        (LOCKED_BUCKET, ("--object-lock-mode", "COMPLIANCE"), "object_lock_days, or neither"),
        (LOCKED_BUCKET, ("--object-lock-days", "7"), "object_lock_days, or neither"),
    ],
)
def test_seal_rejects_inconsistent_retention_flags(
    s3_archives: Any,
    capsys: pytest.CaptureFixture[str],
    bucket: str,
    extra: tuple[str, ...],
    message: str,
) -> None:
    # Given an archive bucket and retention flags that do not fit it (or only one of the two)
    # When `seal` runs
    status = main(seal_args(bucket, *extra))

    # Then it refuses before writing anything
    assert status == 2
    assert message in capsys.readouterr().err
    assert not [k for k in keys(s3_archives, bucket) if "/_manifests/" in k]


def test_reconcile_refuses_an_object_lock_bucket_without_retention_flags(
    s3_archives: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a lock-enabled archive bucket and a DI credential in the environment
    monkeypatch.setenv("JUMPCLOUD_API_KEY", "k" * 40)
    args = seal_args(LOCKED_BUCKET)
    args[:2] = ["reconcile", "--base-url", "http://127.0.0.1:9"]

    # When `reconcile` runs without retention flags
    status = main(args)

    # Then it refuses like seal (before reaching DI), without echoing the credential
    err = capsys.readouterr().err
    assert status == 2
    assert "--object-lock-mode" in err
    assert "k" * 40 not in err
