"""Every named query, run locally over an archive the engine built from the simulator, answers
exactly what plain Python computes from ``sim.visible_events``; S3 reads only the dt it needs.
"""

from __future__ import annotations

from collections import Counter
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
from di_archiver.domain.engine import ArchiveEngine, EngineConfig
from di_archiver.query import local
from di_archiver.query.catalog import named_queries
from di_archiver.simulator import (
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    Simulator,
    SimulatorClock,
    SimulatorConfig,
)
from di_archiver.timestamps import NS_PER_SECOND, datetime_to_ns
from tests.unit.query import truth

ORG_A = "64a0c0ffee0000000000a001"
ORG_B = "64a0c0ffee0000000000b002"
KEY = "sim-query-key"
HOUR = 3600 * NS_PER_SECOND
T0 = datetime_to_ns(datetime(2026, 5, 6, 6, 0, tzinfo=UTC))
CONFIG = EngineConfig(
    prefix="di",
    bucket_ns=HOUR,
    lag_ns=300 * NS_PER_SECOND,
    settle_ns=2 * HOUR,
    lookback_ns=54 * HOUR,
    max_events_per_bucket=100_000,
    time_budget_reserve_s=0.0,
)


@pytest.fixture(scope="module")
def built() -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    """(archive root, visible events of both orgs) after one engine pass with faults off."""
    import tempfile

    sim = Simulator(
        SimulatorConfig(
            seed=23,
            orgs=(OrgSpec(org_id=ORG_A, event_count=1500), OrgSpec(org_id=ORG_B, event_count=500)),
            span_seconds=50 * 3600,
            api_keys={KEY: ORG_A},
            faults=FaultConfig(),
            late=LateIndexingConfig(share=0),
        ),
        clock=SimulatorClock(now_ns=T0),
    )
    with tempfile.TemporaryDirectory() as scratch, sim.serve(port=0) as server:
        root = Path(scratch) / "archive"
        client = DIClient(base_url=server.base_url, credentials=ApiKeyCredentials(KEY))
        engine = ArchiveEngine(
            source=client,
            store=LocalArchiveStore(root),
            checkpoints=FileCheckpointStore(Path(scratch) / "checkpoints.json"),
            config=CONFIG,
            clock=sim.clock.now_ns,
        )
        with client:
            engine.run([ORG_A, ORG_B])
        start = (T0 - CONFIG.lookback_ns) // HOUR * HOUR
        horizon = T0 - CONFIG.lag_ns
        events = [e for org in (ORG_A, ORG_B) for e in sim.visible_events(org, start, horizon)]
        yield root, events


def _window(events: list[dict[str, Any]]) -> tuple[date, date]:
    days = sorted({truth.day(e) for e in events})
    return date.fromisoformat(days[0]), date.fromisoformat(days[-1])


def _most_common(values: list[Any]) -> Any:
    return Counter(v for v in values if v).most_common(1)[0][0]


def test_every_named_query_matches_ground_truth(built: tuple[Path, list[dict[str, Any]]]) -> None:
    # Given an engine-built archive and the simulator's visible events
    root, events = built
    first, last = _window(events)
    window = {"from_day": first.isoformat(), "to_day": last.isoformat()}
    admin = _most_common([(e.get("initiated_by") or {}).get("email") for e in events
                          if (e.get("initiated_by") or {}).get("type") == "admin"])  # fmt: skip
    sso_user = _most_common([(e.get("initiated_by") or {}).get("username") for e in events
                             if e.get("service") == "sso"])  # fmt: skip
    assoc_user = _most_common([e["association"]["connection"]["to"].get("name") for e in events
                               if e.get("event_type") == "association_change"])  # fmt: skip

    def run(name: str, **extra: str) -> list[dict[str, Any]]:
        return local.run_named(name, window | extra, archive=root).records()

    # When every named query runs, Then its answer equals the independent computation
    answers: dict[str, tuple[Any, Any]] = {
        name: (sorted(r["id"] for r in run(name)), getattr(truth, name)(events, first, last))
        for name in ("failed_admin_logins", "admin_logins_without_mfa", "admins_created",
                     "password_item_reveals")
    }  # fmt: skip
    answers["events_by_admin"] = (
        sorted(r["id"] for r in run("events_by_admin", admin=admin)),
        truth.events_by_admin(events, first, last, admin),
    )
    answers["radius_failures_by_user_day"] = (
        {(r["day"], r["username"]): r["failures"] for r in run("radius_failures_by_user_day")},
        truth.radius_failures_by_user_day(events, first, last),
    )
    answers["events_per_service_per_day"] = (
        {
            (r["org"], r["service"], r["day"]): r["events"]
            for r in run("events_per_service_per_day")
        },
        truth.events_per_service_per_day(events, first, last),
    )
    answers["sso_apps_for_user"] = (
        {r["application"]: r["sign_ins"] for r in run("sso_apps_for_user", user=sso_user)},
        truth.sso_apps_for_user(events, first, last, sso_user),
    )
    answers["user_group_membership_changes"] = (
        sorted(
            (r["id"], r["op"], r["group_name"])
            for r in run("user_group_membership_changes", user=assoc_user)
        ),
        truth.user_group_membership_changes(events, first, last, assoc_user),
    )
    assert set(answers) == set(named_queries())
    for name, (got, expected) in answers.items():
        assert got == expected, name
    # And the corpus exercised the queries (these answers are not trivially empty)
    for name in (
        "failed_admin_logins",
        "events_by_admin",
        "radius_failures_by_user_day",
        "events_per_service_per_day",
        "sso_apps_for_user",
        "password_item_reveals",
    ):
        assert answers[name][1], name  # fmt: skip


def test_s3_query_downloads_only_the_filtered_days(
    built: tuple[Path, list[dict[str, Any]]],
) -> None:
    # Given the same archive in a (moto) S3 bucket
    root, events = built
    first, last = _window(events)
    day = last.isoformat()
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="archive")
        objects = list(root.rglob("*.jsonl.gz"))
        for path in objects:
            s3.upload_file(str(path), "archive", path.relative_to(root).as_posix())
        # When one day is queried, and then the whole archive
        one = local.run_query(
            f"SELECT count(*) AS n FROM events WHERE dt = '{day}'",
            archive="s3://archive/di",
            s3_client=s3,
        )
        whole = local.run_query("SELECT count(*) AS n FROM events", archive="s3://archive/di",
                                s3_client=s3)  # fmt: skip
    # Then only that day's objects were read, and the counts are right
    day_objects = [p for p in objects if f"/dt={day}/" in p.as_posix()]
    assert one.files_read == len(day_objects)
    assert one.bytes_read == sum(p.stat().st_size for p in day_objects)
    assert one.rows == [(sum(1 for e in events if truth.day(e) == day),)]
    assert whole.files_read == len(objects)
    assert whole.rows == [(len(events),)]
    assert first < last
