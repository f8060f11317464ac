"""Seal, late indexing, reconcile and verify end to end: simulator over HTTP, real engine."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.adapters.retry import RetryPolicy
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
from di_archiver.timestamps import NS_PER_SECOND, parse_timestamp_ns

HOUR = 3600 * NS_PER_SECOND
DAY = 24 * HOUR
PREFIX = "di"
NOW = int(datetime(2026, 5, 10, 6, tzinfo=UTC).timestamp()) * NS_PER_SECOND
SEALED_DAYS = [date(2026, 5, 7), date(2026, 5, 8), date(2026, 5, 9)]


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
    victim = sealed_day_key(PREFIX, DEMO_ORG_ID, "directory", SEALED_DAYS[1])
    store.delete(victim)
    capsys.readouterr()
    assert main(["verify", "--archive", str(world["dir"])]) == 1
    assert f"FINDING missing: {victim}" in capsys.readouterr().out
