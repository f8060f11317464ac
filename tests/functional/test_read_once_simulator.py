"""Steady state against the simulator over real HTTP: a run 15 minutes after the previous one
reads the new events and one count request per open bucket, and nothing else.

The simulator's own request counters are the witness (what DI would bill and log), under both
readings of ``end_time``. Late indexing on, the archive still ends equal to DI.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.archive_format import decode_lines
from di_archiver.domain.engine import ArchiveEngine, EngineConfig
from di_archiver.domain.planning import horizon_of
from di_archiver.simulator import LateIndexingConfig, OrgSpec, Simulator, SimulatorClock
from di_archiver.simulator.config import DEMO_API_KEY, DEMO_ORG_ID, SimulatorConfig
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND, datetime_to_ns

MINUTE = 60 * NS_PER_SECOND
HOUR = 60 * MINUTE
T0 = datetime_to_ns(datetime(2026, 5, 4, 12, 0, 7, 123456, tzinfo=UTC))
LAG = 300 * NS_PER_SECOND
CONFIG = EngineConfig(
    prefix="di",
    bucket_ns=HOUR,
    lag_ns=LAG,
    settle_ns=2 * HOUR,
    lookback_ns=12 * HOUR,
    max_events_per_bucket=100_000,
    time_budget_reserve_s=0.0,
)


def horizon(now_ns: int) -> int:
    return horizon_of(now_ns, LAG)


class World:
    def __init__(self, sim: Simulator, base_url: str, root: Path, concurrency: int) -> None:
        self.sim, self.clock_ns = sim, T0
        self.client = DIClient(base_url=base_url, credentials=ApiKeyCredentials(DEMO_API_KEY))
        self.store = LocalArchiveStore(root)
        self.checkpoints = FileCheckpointStore(root / "checkpoints.json")
        self.use_concurrency(concurrency)

    def use_concurrency(self, concurrency: int) -> None:
        self.engine = ArchiveEngine(
            source=self.client,
            store=self.store,
            checkpoints=self.checkpoints,
            config=EngineConfig(**{**CONFIG.__dict__, "concurrency": concurrency}),
            clock=lambda: self.clock_ns,
        )

    def advance(self, ns: int) -> None:
        self.clock_ns += ns
        self.sim.clock.advance(ns / NS_PER_SECOND)

    def archived(self) -> list[dict[str, Any]]:
        events = []
        for item in self.store.list("di/"):
            body = self.store.get(item.key)
            assert body is not None
            events.extend(json.loads(line) for line in decode_lines(body))
        return events


@pytest.fixture(params=[False, True], ids=["exclusive-end", "inclusive-end"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    sim = Simulator(
        SimulatorConfig.quiet(
            seed=31,
            orgs=(OrgSpec(org_id=DEMO_ORG_ID, event_count=6000),),
            span_seconds=12 * 3600.0,
            future_span_seconds=3 * 3600.0,
            end_time_inclusive=request.param,
        ),
        clock=SimulatorClock(now_ns=T0),
    )
    with sim.serve(port=0) as server:
        yield World(sim, server.base_url, tmp_path / "archive", concurrency=1)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_run_15_minutes_later_reads_new_events_and_one_count_per_open_bucket(
    world: World, concurrency: int
) -> None:
    world.use_concurrency(concurrency)
    # Given a first run and its open buckets' marks
    world.engine.run([DEMO_ORG_ID])
    marks = world.checkpoints.load(DEMO_ORG_ID)["open_buckets"]  # type: ignore[index]
    assert len(marks) >= 2
    before = horizon(world.clock_ns)
    # When the next run starts 15 minutes later
    world.advance(15 * MINUTE)
    world.sim.reset_stats()
    world.engine.run([DEMO_ORG_ID])
    stats = world.sim.stats
    # Then it sent one count request per open bucket with a mark
    assert stats["requests:events/count"] == len(marks)
    # And DI served only the new events (plus, when end_time is inclusive, the events of the
    # new horizon's millisecond, which the archive leaves to the next run)
    after = horizon(world.clock_ns)
    new = world.sim.count_visible(DEMO_ORG_ID, before, after)
    edge = world.sim.count_visible(DEMO_ORG_ID, after, after + NS_PER_MS)
    assert new > 0
    assert new <= stats["events_served"] <= new + edge
    # And the archive holds every event up to the horizon exactly once, as DI returns it
    archived = world.archived()
    assert len({(e["timestamp"], e["id"]) for e in archived}) == len(archived)
    expected = world.sim.visible_events(DEMO_ORG_ID, None, after)
    assert sorted(archived, key=_key) == sorted(expected, key=_key)


def _key(event: dict[str, Any]) -> tuple[str, str]:
    return event["timestamp"], event["id"]


def test_late_events_in_archived_parts_are_found_by_count_and_archived_once(
    tmp_path: Path,
) -> None:
    # Given late indexing within the settle horizon and runs every 15 minutes for 4 hours
    sim = Simulator(
        SimulatorConfig.quiet(
            seed=37,
            orgs=(OrgSpec(org_id=DEMO_ORG_ID, event_count=6000),),
            span_seconds=12 * 3600.0,
            future_span_seconds=5 * 3600.0,
            late=LateIndexingConfig(share=0.2, median_delay_seconds=900, max_delay_seconds=5400),
        ),
        clock=SimulatorClock(now_ns=T0),
    )
    with sim.serve(port=0) as server:
        world = World(sim, server.base_url, tmp_path / "archive", concurrency=2)
        for _ in range(16):
            world.engine.run([DEMO_ORG_ID])
            world.advance(15 * MINUTE)
        world.engine.run([DEMO_ORG_ID])
        # Then every event DI returns up to the horizon is archived exactly once
        archived = world.archived()
        expected = sim.visible_events(DEMO_ORG_ID, None, horizon(world.clock_ns))
        assert sorted(archived, key=_key) == sorted(expected, key=_key)
