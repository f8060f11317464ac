"""Shared builders for engine tests: a settable clock and an engine over the in-memory fakes."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from di_archiver.domain.engine import ArchiveEngine, EngineConfig
from di_archiver.timestamps import NS_PER_SECOND, datetime_to_ns
from tests.unit.engine.fakes import FakeSource, MemoryCheckpoints, MemoryStore, RecordingObserver

HOUR = 3600 * NS_PER_SECOND
MINUTE = 60 * NS_PER_SECOND
NOW = datetime_to_ns(datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
CONFIG = EngineConfig(
    prefix="di",
    bucket_ns=HOUR,
    lag_ns=5 * MINUTE,
    settle_ns=2 * HOUR,
    lookback_ns=6 * HOUR,
    max_events_per_bucket=1000,
    time_budget_reserve_s=10.0,
)


def at(text: str) -> int:
    return datetime_to_ns(datetime.fromisoformat(text).replace(tzinfo=UTC))


@dataclass
class Clock:
    now: int = NOW

    def __call__(self) -> int:
        return self.now


@dataclass
class Rig:
    source: FakeSource
    store: MemoryStore
    checkpoints: MemoryCheckpoints
    observer: RecordingObserver
    clock: Clock
    engine: ArchiveEngine


def rig(source: FakeSource | None = None, **config: Any) -> Rig:
    source = source or FakeSource()
    store, checkpoints, observer, clock = (
        MemoryStore(),
        MemoryCheckpoints(),
        RecordingObserver(),
        Clock(),
    )
    engine = ArchiveEngine(
        source=source,
        store=store,
        checkpoints=checkpoints,
        config=replace(CONFIG, **config),
        clock=clock,
        observer=observer,
    )
    return Rig(source, store, checkpoints, observer, clock, engine)
