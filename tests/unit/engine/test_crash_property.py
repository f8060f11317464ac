"""Property: a crash anywhere, followed by a clean rerun, converges to the uninterrupted archive.

Faults hit the k-th side-effecting call (store put/delete, checkpoint save, a source page),
either once (an error the engine sees) or as a kill (that call and every later one fails, so
no cleanup code can write anything), optionally after the put took effect (response lost). A
time budget may also run out mid-run. Late-indexed events appear between phases.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from di_archiver.domain.engine import ArchiveEngine
from di_archiver.errors import StoreError
from di_archiver.raw_events import RawEvent
from di_archiver.timestamps import format_timestamp_ns
from tests.unit.engine.fakes import ORG, ORG_B, FakeSource, MemoryCheckpoints, MemoryStore, event
from tests.unit.engine.helpers import CONFIG, HOUR, MINUTE, NOW, Clock

PHASES = (NOW, NOW + HOUR, NOW + 3 * HOUR)
SERVICES = ("directory", "sso", "radius", "quantum_vault")


class Crash(Exception):
    """Not an ArchiverError: stands for anything unexpected (a bug, a kill, a lost socket)."""


@dataclass
class Faults:
    k: int
    kill: bool
    effect_first: bool
    as_store_error: bool
    calls: int = 0
    fired: bool = False

    def tick(self) -> bool:
        self.calls += 1
        if self.fired and self.kill:
            return True
        if self.calls == self.k:
            self.fired = True
            return True
        return False

    def fail(self) -> None:
        raise StoreError("injected") if self.as_store_error else Crash("injected")


class LateSource(FakeSource):
    """Events become visible at ``available_at``, like DI's late indexing."""

    def __init__(self, clock: Clock, available: Mapping[str, int], **kw: Any) -> None:
        super().__init__(**kw)
        self.clock, self.available = clock, available

    def _matching(self, org_id: str, start_ns: int, end_ns: int) -> list[dict[str, Any]]:
        return [
            e
            for e in super()._matching(org_id, start_ns, end_ns)
            if self.available[e["id"]] <= self.clock.now
        ]


def faulty(
    source: FakeSource, store: MemoryStore, checkpoints: MemoryCheckpoints, faults: Faults
) -> tuple[Any, Any, Any]:
    class Src:
        def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[list[RawEvent]]:
            for page in source.iter_pages(org_id, start_ns, end_ns):
                if faults.tick():
                    faults.fail()
                yield page

        def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
            return source.count(org_id, start_ns, end_ns)

    class Store:
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
            failing = faults.tick()
            if failing and not faults.effect_first:
                faults.fail()
            if not (failing and faults.kill and faults.calls > faults.k):
                store.put(key, body, metadata)
            if failing:
                faults.fail()

        def delete(self, key: str) -> None:
            if faults.tick():
                faults.fail()
            store.delete(key)

    class Checkpoints:
        def load(self, org_id: str) -> Any:
            return checkpoints.load(org_id)

        def save(self, org_id: str, document: Mapping[str, Any]) -> None:
            if faults.tick():
                faults.fail()
            checkpoints.save(org_id, document)

    return Src(), Store(), Checkpoints()


def archive_state(store: MemoryStore, checkpoints: MemoryCheckpoints) -> tuple[Any, ...]:
    return (
        store.content(),
        {org: doc["closed_through"] for org, doc in sorted(checkpoints.documents.items())},
    )


def countdown(calls: int | None) -> Callable[[], float]:
    """Plenty of time for ``calls`` budget checks, then none."""
    checks = iter(range(calls if calls is not None else 10**9))
    return lambda: 100.0 if next(checks, None) is not None else 0.0


def run_phases(
    events: list[tuple[str, dict[str, Any], int]],
    *,
    pipeline: bool,
    checkpoint_every: int,
    faults: Faults | None = None,
    fault_phase: int = 0,
    budget_calls: int | None = None,
    concurrency: int = 1,
    prefetch: bool = True,
) -> tuple[Any, ...]:
    clock = Clock()
    source = LateSource(clock, {e["id"]: avail for _, e, avail in events}, page_size=2)
    for org, e, _ in events:
        source.add(org, e)
    store, checkpoints = MemoryStore(), MemoryCheckpoints()
    config = replace(
        CONFIG,
        pipeline=pipeline,
        prefetch=prefetch,
        checkpoint_every=checkpoint_every,
        concurrency=concurrency,
    )

    def engine(src: Any, sto: Any, chk: Any) -> ArchiveEngine:
        return ArchiveEngine(source=src, store=sto, checkpoints=chk, config=config, clock=clock)

    for phase, now in enumerate(PHASES):
        clock.now = now
        if faults is not None and phase == fault_phase:
            remaining = countdown(budget_calls)
            # Any failure is what we are testing; the clean rerun below must repair it.
            with contextlib.suppress(Exception):
                engine(*faulty(source, store, checkpoints, faults)).run(
                    [ORG, ORG_B], remaining_seconds=remaining
                )
        engine(source, store, checkpoints).run([ORG, ORG_B])
    return archive_state(store, checkpoints)


@st.composite
def corpora(draw: st.DrawFn) -> list[tuple[str, dict[str, Any], int]]:
    start = NOW - 7 * HOUR
    offsets = st.one_of(
        st.integers(0, 10 * HOUR // MINUTE).map(lambda m: m * MINUTE),  # on minute/hour boundaries
        st.integers(0, 10 * HOUR),  # any nanosecond
    )
    delays = st.sampled_from([0, 0, 0, 30 * MINUTE, 2 * HOUR, 5 * HOUR])
    items = draw(
        st.lists(
            st.tuples(st.sampled_from([ORG, ORG_B]), offsets, st.sampled_from(SERVICES), delays),
            max_size=25,
        )
    )
    corpus = []
    for i, (org, offset, service, delay) in enumerate(items):
        ts = start + offset
        e = event(format_timestamp_ns(ts), f"id{i}", service, n=i)
        corpus.append((org, e, ts + delay))
    return corpus


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=corpora(),
    k=st.integers(1, 40),
    kill=st.booleans(),
    effect_first=st.booleans(),
    as_store_error=st.booleans(),
    fault_phase=st.integers(0, len(PHASES) - 1),
    budget_calls=st.one_of(st.none(), st.integers(0, 12)),
    pipeline=st.booleans(),
    prefetch=st.booleans(),
    checkpoint_every=st.integers(1, 3),
    concurrency=st.sampled_from([1, 3]),
)
def test_crash_anywhere_then_rerun_converges(
    events: list[tuple[str, dict[str, Any], int]],
    k: int,
    kill: bool,
    effect_first: bool,
    as_store_error: bool,
    fault_phase: int,
    budget_calls: int | None,
    pipeline: bool,
    prefetch: bool,
    checkpoint_every: int,
    concurrency: int,
) -> None:
    # Given the archive an uninterrupted sequence of runs produces (one cursor per org)
    expected = run_phases(events, pipeline=pipeline, checkpoint_every=checkpoint_every)
    # When one run of the same sequence crashes (or runs out of time) and is rerun at once,
    # with several buckets in flight (threads make the k-th call vary: any k must converge)
    faults = Faults(k=k, kill=kill, effect_first=effect_first, as_store_error=as_store_error)
    got = run_phases(
        events,
        pipeline=pipeline,
        checkpoint_every=checkpoint_every,
        faults=faults,
        fault_phase=fault_phase,
        budget_calls=budget_calls,
        concurrency=concurrency,
        prefetch=prefetch,
    )
    # Then the archive content and checkpoints are identical
    assert got == expected
    # And no event is archived twice
    lines = Counter(line for content in expected[0].values() for line in content)
    assert all(n == 1 for n in lines.values())
    ids = Counter(json.loads(line)["id"] for line in lines)
    assert all(n == 1 for n in ids.values())
