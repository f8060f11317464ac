"""Crash anywhere in seal/reconcile, rerun: the archive converges to the uninterrupted one."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from di_archiver.archive_format import decode_lines
from di_archiver.domain.maintenance import maintain
from di_archiver.domain.manifest import Manifest
from di_archiver.domain.verify import verify_archive
from di_archiver.layout import parse_object_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    HOUR,
    ORG,
    PREFIX,
    Crash,
    FakeEngine,
    FakeSource,
    MemoryCheckpoints,
    MemoryStore,
    day_ns,
    make_event,
    populate,
)

DAYS = 3


def fresh() -> tuple[FakeSource, MemoryStore, FakeEngine, MemoryCheckpoints]:
    source = FakeSource(now=day_ns(DAY0) + (DAYS + 1) * DAY)
    populate(source, DAY0, DAYS, per_day=12)
    store = MemoryStore()
    engine = FakeEngine(source, store)
    engine.archive_days(ORG, DAY0, DAYS)
    checkpoints = MemoryCheckpoints()
    checkpoints.close_through(ORG, day_ns(DAY0) + DAYS * DAY)
    return source, store, engine, checkpoints


def run(crash_points: list[int]) -> MemoryStore:
    """Seal, let DI index late events on two days, maintain again; crash where told."""
    source, store, engine, checkpoints = fresh()
    late = [
        make_event(900, day_ns(DAY0) + 3 * HOUR + 5, "sso"),
        make_event(901, day_ns(DAY0) + 2 * DAY + 23 * HOUR + 7, "radius"),
    ]

    def step_maintain() -> None:
        report = maintain(
            org_ids=[ORG],
            store=store,
            checkpoints=checkpoints,
            prefix=PREFIX,
            source=source,
            snapshotter=engine,
            clock=lambda: source.now,
        )
        # maintain records any org's exception and carries on with the other orgs; an
        # injected crash stands for a killed process, so it still ends the step here.
        if any(org.error_type == Crash.__name__ for org in report.failures):
            raise Crash("injected crash inside maintenance")

    def step_late() -> None:
        for event in late:
            source.add(event, visible_at=source.now)
        source.now += HOUR

    # Crash points are gaps between crashes, counted in store mutations from the first
    # maintenance step on, so later points land in reruns and in the reconcile step.
    position = store.mutations
    for gap in crash_points:
        position += gap
        store.fail_at.add(position)
    for step in (step_maintain, step_late, step_maintain):
        while True:
            try:
                step()
                break
            except Crash:
                continue
    store.fail_at = set()
    return store


def snapshot(store: MemoryStore) -> dict[str, Any]:
    """Everything that must converge: events per object, manifest contents without history."""
    state: dict[str, Any] = {}
    for key, (body, _) in store.objects.items():
        if "/_manifests/" in key:
            manifest = Manifest.from_bytes(body)
            state[key] = (
                [(o.key, o.sha256, o.count) for o in manifest.objects],
                manifest.di_count,
                manifest.archived_count,
            )
        else:
            assert parse_object_key(key).sealed, f"bucket object left behind: {key}"
            state[key] = [json.loads(line) for line in decode_lines(body)]
    return state


BASELINE = snapshot(run([]))


def test_baseline_holds_every_event_once() -> None:
    ids = [e["id"] for key, v in BASELINE.items() if "/_manifests/" not in key for e in v]
    assert len(ids) == len(set(ids)) == DAYS * 14 + 2


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crash_points=st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=3))
def test_any_crash_sequence_converges(crash_points: list[int]) -> None:
    # Given crashes at the k-th store mutation (then again during the reruns)
    # When every interrupted step is rerun until it completes
    store = run(crash_points)

    # Then the archive equals the uninterrupted one: no event lost or doubled, chain valid
    assert snapshot(store) == BASELINE
    report = verify_archive(store, prefix=PREFIX)
    assert report.findings == []
