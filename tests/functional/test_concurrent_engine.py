"""Exactly once with several buckets in flight, over real HTTP, with faults, and after a kill.

The simulator injects every fault kind (429 with and without Retry-After, 5xx, slow, cut and
reset answers) while the engine runs 4 buckets of 2 orgs at once behind one rate limiter. One
test spans late indexing over several runs; the other SIGKILLs an archiving process mid-run
(no cleanup code runs) and checks that a rerun converges to the API's exact answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.adapters.rate_limit import RateLimiter
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.archive_format import decode_lines
from di_archiver.domain.engine import ArchiveEngine, EngineConfig
from di_archiver.layout import org_prefix
from di_archiver.simulator import (
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    Simulator,
    SimulatorClock,
    SimulatorConfig,
)
from di_archiver.timestamps import NS_PER_SECOND, datetime_to_ns

ORG_A = "64a0c0ffee0000000000a001"
ORG_B = "64a0c0ffee0000000000b002"
KEY = "sim-concurrency-key"
HOUR = 3600 * NS_PER_SECOND
T0 = datetime_to_ns(datetime(2026, 5, 4, 12, 0, tzinfo=UTC))
CONFIG = EngineConfig(
    prefix="di",
    bucket_ns=HOUR,
    lag_ns=300 * NS_PER_SECOND,
    settle_ns=2 * HOUR,
    lookback_ns=24 * HOUR,
    max_events_per_bucket=100_000,
    time_budget_reserve_s=0.0,
    concurrency=4,
    checkpoint_every=1,
)
FAULTS = replace(FaultConfig.modest(0.03, seed=9), slow_ms=20, retry_after_seconds=1)


def make_simulator(*, late: LateIndexingConfig, latency_ms: int = 0) -> Simulator:
    return Simulator(
        SimulatorConfig(
            seed=13,
            orgs=(OrgSpec(org_id=ORG_A, event_count=6000), OrgSpec(org_id=ORG_B, event_count=3000)),
            span_seconds=22 * 3600,
            future_span_seconds=3 * 3600,
            api_keys={KEY: ORG_A},
            faults=FAULTS,
            late=late,
            latency_ms=latency_ms,
        ),
        clock=SimulatorClock(now_ns=T0),
    )


def make_client(base_url: str) -> DIClient:
    return DIClient(
        base_url=base_url,
        credentials=ApiKeyCredentials(KEY),
        page_limit=300,
        retry=RetryPolicy(max_attempts=12, base_delay=0.0, max_delay=0.0),
        sleep=lambda _seconds: None,
        rate_limiter=RateLimiter(rate_per_s=500.0, max_in_flight=6),
    )


def canonical_archive(store: LocalArchiveStore, org_id: str) -> Counter[str]:
    found: Counter[str] = Counter()
    for stored in store.list(org_prefix("di", org_id)):
        body = store.get(stored.key)
        assert body is not None
        found.update(json.dumps(json.loads(line), sort_keys=True) for line in decode_lines(body))
    return found


def canonical(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(e, sort_keys=True) for e in events)


@pytest.fixture
def late_simulator() -> Iterator[tuple[Simulator, str]]:
    # Late events arrive within the settle horizon, so the engine alone recovers them.
    late = LateIndexingConfig(share=0.15, median_delay_seconds=1200, max_delay_seconds=5400)
    sim = make_simulator(late=late)
    with sim.serve(port=0) as server:
        yield sim, server.base_url


def test_concurrent_runs_across_late_indexing_archive_every_event_exactly_once(
    late_simulator: tuple[Simulator, str], tmp_path: Path
) -> None:
    # Given faults and late indexing on, and an engine with 4 buckets in flight
    sim, base_url = late_simulator
    client = make_client(base_url)
    store = LocalArchiveStore(tmp_path / "archive")
    engine = ArchiveEngine(
        source=client,
        store=store,
        checkpoints=FileCheckpointStore(tmp_path / "checkpoints.json"),
        config=CONFIG,
        clock=sim.clock.now_ns,
    )
    backfill_start = (T0 - CONFIG.lookback_ns) // HOUR * HOUR
    # When it runs now and every simulated hour for 5 hours (> late delay + settle)
    with client:
        engine.run([ORG_A, ORG_B])
        for _ in range(5):
            sim.clock.advance(3600)
            report = engine.run([ORG_A, ORG_B])
    # Then every visible event up to now - lag is archived exactly once, equal to the API's
    horizon = sim.clock.now_ns() - CONFIG.lag_ns
    for org in (ORG_A, ORG_B):
        expected = canonical(sim.visible_events(org, backfill_start, horizon))
        assert canonical_archive(store, org) == expected
    # And the checkpoints followed the closed buckets; faults and 429s really happened
    assert {o.checkpoint_after_ns for o in report.orgs} == {
        (sim.clock.now_ns() - CONFIG.settle_ns) // HOUR * HOUR
    }
    assert client.stats.retries > 0
    assert client.stats.throttles > 0


_ARCHIVER = """
import json
import sys
from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.adapters.rate_limit import RateLimiter
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.domain.engine import ArchiveEngine, EngineConfig

base_url, archive, checkpoints, now, config = sys.argv[1:6]
client = DIClient(
    base_url=base_url,
    credentials=ApiKeyCredentials(sys.stdin.readline().strip()),
    page_limit=300,
    retry=RetryPolicy(max_attempts=12, base_delay=0.0, max_delay=0.0),
    rate_limiter=RateLimiter(rate_per_s=500.0, max_in_flight=6),
)
engine = ArchiveEngine(
    source=client,
    store=LocalArchiveStore(archive),
    checkpoints=FileCheckpointStore(checkpoints),
    config=EngineConfig(**json.loads(config)),
    clock=lambda: int(now),
)
engine.run(sys.argv[6:])
"""


def test_a_run_killed_mid_flight_converges_on_rerun(tmp_path: Path) -> None:
    # Given a slow-ish API with faults, and an archiving process with 4 buckets in flight
    sim = make_simulator(late=LateIndexingConfig.off(), latency_ms=60)
    archive, checkpoints = tmp_path / "archive", tmp_path / "checkpoints.json"
    store = LocalArchiveStore(archive)
    knobs = {f: getattr(CONFIG, f) for f in CONFIG.__dataclass_fields__}
    with sim.serve(port=0) as server:
        proc = subprocess.Popen(
            [
                *(sys.executable, "-c", _ARCHIVER, server.base_url),
                *(str(archive), str(checkpoints), str(T0), json.dumps(knobs), ORG_A, ORG_B),
            ],
            stdin=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert proc.stdin is not None
        proc.stdin.write(KEY + "\n")
        proc.stdin.close()
        # When it is SIGKILLed once some buckets are written (no cleanup code can run)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if sum(1 for _ in store.list("di/")) >= 12:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the archiver finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        killed_with = sum(1 for _ in store.list("di/"))
        # And the run is repeated in full
        client = make_client(server.base_url)
        engine = ArchiveEngine(
            source=client,
            store=store,
            checkpoints=FileCheckpointStore(checkpoints),
            config=CONFIG,
            clock=sim.clock.now_ns,
        )
        with client:
            report = engine.run([ORG_A, ORG_B])
    # Then the killed run had written part of the archive, and the rerun completed it exactly
    backfill_start = (T0 - CONFIG.lookback_ns) // HOUR * HOUR
    horizon = T0 - CONFIG.lag_ns
    assert killed_with >= 12
    for org in (ORG_A, ORG_B):
        expected = canonical(sim.visible_events(org, backfill_start, horizon))
        assert canonical_archive(store, org) == expected
    assert {o.checkpoint_after_ns for o in report.orgs} == {(T0 - CONFIG.settle_ns) // HOUR * HOUR}
