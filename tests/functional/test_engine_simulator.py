"""The engine against the simulator over real HTTP, with faults and late indexing on.

Several runs spanning the late-indexing delay (simulator clock and engine clock advance
together) must leave every visible event in the archive exactly once, equal to the API's object,
with two orgs fully separate. Runs against a local directory and a moto S3 bucket.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.archive_format import decode_lines
from di_archiver.domain.engine import ArchiveEngine, EngineConfig
from di_archiver.domain.ports import ArchiveStore
from di_archiver.layout import org_prefix
from di_archiver.simulator import (
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    Simulator,
    SimulatorClock,
    SimulatorConfig,
)
from di_archiver.timestamps import NS_PER_SECOND, datetime_to_ns, parse_timestamp_ns

ORG_A = "64a0c0ffee0000000000a001"
ORG_B = "64a0c0ffee0000000000b002"
KEY = "sim-functional-key"
HOUR = 3600 * NS_PER_SECOND
T0 = datetime_to_ns(datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
CONFIG = EngineConfig(
    prefix="di",
    bucket_ns=HOUR,
    lag_ns=300 * NS_PER_SECOND,
    settle_ns=2 * HOUR,
    lookback_ns=18 * HOUR,
    max_events_per_bucket=100_000,
    time_budget_reserve_s=0.0,
)


@pytest.fixture
def simulator() -> Iterator[tuple[Simulator, str]]:
    faults = replace(FaultConfig.modest(0.04, seed=5), slow_ms=20, retry_after_seconds=1)
    sim = Simulator(
        SimulatorConfig(
            seed=11,
            orgs=(OrgSpec(org_id=ORG_A, event_count=5000), OrgSpec(org_id=ORG_B, event_count=2500)),
            span_seconds=16 * 3600,
            future_span_seconds=3 * 3600,
            api_keys={KEY: ORG_A},
            faults=faults,
            # Late events arrive within the settle horizon, so the engine alone recovers them
            # (later ones are reconcile's job).
            late=LateIndexingConfig(share=0.15, median_delay_seconds=1200, max_delay_seconds=5400),
        ),
        clock=SimulatorClock(now_ns=T0),
    )
    with sim.serve(port=0) as server:
        yield sim, server.base_url


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArchiveStore]:
    if request.param == "local":
        yield LocalArchiveStore(tmp_path / "archive")
        return
    from di_archiver.adapters.s3_store import S3ArchiveStore

    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="archive")
        yield S3ArchiveStore("archive")


def archived(store: ArchiveStore, org_id: str) -> list[dict[str, Any]]:
    events = []
    for stored in store.list(org_prefix("di", org_id)):
        body = store.get(stored.key)
        assert body is not None
        events.extend(json.loads(line) for line in decode_lines(body))
    return events


def canonical(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(e, sort_keys=True) for e in events)


def test_runs_across_late_indexing_archive_every_visible_event_exactly_once(
    simulator: tuple[Simulator, str], store: ArchiveStore, tmp_path: Path
) -> None:
    # Given the simulator (faults and late indexing on) and an engine sharing its clock
    sim, base_url = simulator
    client = DIClient(
        base_url=base_url,
        credentials=ApiKeyCredentials(KEY),
        page_limit=500,
        retry=RetryPolicy(max_attempts=12, base_delay=0.0, max_delay=0.0),
        sleep=lambda _seconds: None,
    )
    engine = ArchiveEngine(
        source=client,
        store=store,
        checkpoints=FileCheckpointStore(tmp_path / "checkpoints.json"),
        config=CONFIG,
        clock=sim.clock.now_ns,
    )
    backfill_start = (T0 - CONFIG.lookback_ns) // HOUR * HOUR
    first_horizon = T0 - CONFIG.lag_ns
    # When the engine runs now and every simulated hour for 5 hours (> late delay + settle)
    with client:
        engine.run([ORG_A, ORG_B])
        early = {
            org: sim.count_visible(org, backfill_start, first_horizon) for org in (ORG_A, ORG_B)
        }
        for _ in range(5):
            sim.clock.advance(3600)
            report = engine.run([ORG_A, ORG_B])
    # Then every event visible now up to now - lag is archived exactly once, byte-equal as JSON
    horizon = sim.clock.now_ns() - CONFIG.lag_ns
    for org in (ORG_A, ORG_B):
        expected = sim.visible_events(org, backfill_start, horizon)
        got = archived(store, org)
        assert canonical(got) == canonical(expected)
        assert {e["organization"] for e in got} <= {org}
        assert all(backfill_start <= parse_timestamp_ns(e["timestamp"]) < horizon for e in got)
        # And late-indexed events of buckets snapshotted in the first run were recovered
        assert sim.count_visible(org, backfill_start, first_horizon) > early[org]
    # And the checkpoint followed the closed buckets, and faults really happened
    assert {o.checkpoint_after_ns for o in report.orgs} == {
        (sim.clock.now_ns() - CONFIG.settle_ns) // HOUR * HOUR
    }
    assert client.stats.retries > 0


def test_a_hanging_di_request_is_cut_at_the_run_deadline_and_the_run_stops_early(
    tmp_path: Path,
) -> None:
    # Given a DI whose every answer takes 4 s, and a run with 3 s left and a 1 s reserve
    sim = Simulator(
        SimulatorConfig(
            seed=3,
            orgs=(OrgSpec(org_id=ORG_A, event_count=50),),
            span_seconds=16 * 3600,
            api_keys={KEY: ORG_A},
            faults=FaultConfig(rate_slow=1.0, slow_ms=4000),
            late=LateIndexingConfig.off(),
        ),
        clock=SimulatorClock(now_ns=T0),
    )
    store = LocalArchiveStore(tmp_path / "archive")
    checkpoints = FileCheckpointStore(tmp_path / "checkpoints.json")
    with sim.serve(port=0) as server:
        client = DIClient(
            base_url=server.base_url,
            credentials=ApiKeyCredentials(KEY),
            sleep=lambda _seconds: None,
            min_attempt_seconds=0.2,
        )
        engine = ArchiveEngine(
            source=client,
            store=store,
            checkpoints=checkpoints,
            config=replace(CONFIG, time_budget_reserve_s=1.0),
            clock=sim.clock.now_ns,
        )
        end = time.monotonic() + 3.0
        # When the engine runs with the Lambda's remaining time
        with client:
            report = engine.run([ORG_A], remaining_seconds=lambda: end - time.monotonic())
    # Then the first request was cut by the deadline (not the 60 s read timeout) and the run
    # ended early without failing: nothing half-done is archived, the pinned checkpoint stays
    assert client.stats.transport_errors >= 1
    assert report.stopped_early
    assert report.failed == ()
    assert list(store.list("di/")) == []
    assert checkpoints.load(ORG_A) is not None
