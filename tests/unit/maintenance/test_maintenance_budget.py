"""Maintenance under a time budget: every org is sealed, and a rotating cursor reconciles all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from di_archiver.archive_format import event_timestamp_ns
from di_archiver.domain.counting import ExactCounter
from di_archiver.domain.maintenance import (
    RECONCILE_CURSOR_KEY,
    MaintenanceReport,
    ReconcileCursor,
    load_reconcile_cursor,
    maintain,
    rotate,
)
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import SettingsError
from di_archiver.layout import manifest_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    PREFIX,
    FakeEngine,
    FakeSource,
    MemoryCheckpoints,
    MemoryStore,
    day_ns,
    populate,
)

DAYS = 3
ORGS = [f"64a0c0ffee00000000{i:06x}" for i in range(1, 11)]
ALL_DAYS = [DAY0 + timedelta(days=d) for d in range(DAYS)]


class World:
    """Ten orgs, three archived (unsealed) days each, one fake DI for all of them."""

    def __init__(self, orgs: list[str] = ORGS) -> None:
        self.orgs = orgs
        self.source = FakeSource(now=day_ns(DAY0) + (DAYS + 1) * DAY)
        populate(self.source, DAY0, DAYS, per_day=6)
        self.store = MemoryStore()
        self.engine = FakeEngine(self.source, self.store)
        self.checkpoints = MemoryCheckpoints()
        # DI's end_time reading is learnt up front so one day of work costs one count call.
        self.counter = ExactCounter(self.source)
        anchor = event_timestamp_ns(self.source.events[0][1])
        for org in orgs:
            self.engine.archive_days(org, DAY0, DAYS)
            self.checkpoints.close_through(org, day_ns(DAY0) + DAYS * DAY)
            assert self.counter.learn(org, anchor) == "inclusive"

    def budget(self, count_calls: int) -> Callable[[], float]:
        """Remaining "seconds" = DI count calls this run may still make (one per day of work)."""
        start = self.source.count_calls
        return lambda: float(count_calls - (self.source.count_calls - start))

    def maintain(
        self, count_calls: int | None = None, *, reconcile: bool = True
    ) -> MaintenanceReport:
        return maintain(
            org_ids=self.orgs,
            store=self.store,
            checkpoints=self.checkpoints,
            prefix=PREFIX,
            source=self.source,
            snapshotter=self.engine,
            clock=lambda: self.source.now,
            remaining_seconds=None if count_calls is None else self.budget(count_calls),
            reserve_seconds=1.0,
            reconcile=reconcile,
            counter=self.counter,
        )


def checked(report: MaintenanceReport) -> list[tuple[date, str]]:
    return [(c.day, c.org_id) for o in report.orgs for c in o.checks]


def test_a_tiny_budget_still_seals_and_reconciles_every_org_over_successive_runs() -> None:
    # Given ten orgs with three closed days each and a budget of five DI calls per daily run
    world = World()

    # When maintenance runs twenty times
    reports = [world.maintain(count_calls=5) for _ in range(20)]

    # Then the early runs said they stopped early, and every org's every day got sealed...
    assert reports[0].stopped_early
    for org in ORGS:
        for day in ALL_DAYS:
            assert world.store.get(manifest_key(PREFIX, org, day)) is not None, (org, day)
    # ...exactly once (no day sealed twice, none repaired without a reason)
    sealed = Counter(
        (r.org_id, r.day)
        for rep in reports
        for o in rep.orgs
        for r in o.sealed
        if r.manifest_written
    )
    assert set(sealed) == {(org, day) for org in ORGS for day in ALL_DAYS}
    assert set(sealed.values()) == {1}
    assert sum(rep.days_repaired for rep in reports) == 0
    # And every sealed day of every org was reconciled in some run, and the archive verifies
    reconciled = {unit for rep in reports for unit in checked(rep)}
    assert reconciled == {(day, org) for org in ORGS for day in ALL_DAYS}
    assert not any(rep.failures for rep in reports)
    assert verify_archive(world.store, prefix=PREFIX).ok


def test_reconcile_runs_newest_days_first_and_continues_where_the_last_run_stopped() -> None:
    # Given every day of ten orgs sealed (30 reconcile units) and four units of budget per run
    world = World()
    world.maintain(reconcile=False)

    # When maintenance runs eight times
    runs = [checked(world.maintain(count_calls=4)) for _ in range(8)]

    # Then the first run checked the newest day of the first orgs by id
    newest = ALL_DAYS[-1]
    assert sorted(runs[0]) == [(newest, org) for org in sorted(ORGS)[:4]]
    # And each run took the next four units (newest day first, then org id), never repeating a
    # unit before all thirty were checked, and the eighth run wrapped around to the start
    in_order = sorted(
        ((day, org) for org in ORGS for day in ALL_DAYS), key=lambda u: (-u[0].toordinal(), u[1])
    )
    cycle = in_order + in_order
    assert [sorted(run) for run in runs] == [sorted(cycle[4 * i : 4 * i + 4]) for i in range(8)]
    # And the cursor persisted under the reserved checkpoint key names the last unit
    assert load_reconcile_cursor(world.checkpoints) == ReconcileCursor(*in_order[1])


def test_an_unbudgeted_run_reconciles_everything_from_any_cursor() -> None:
    # Given a sealed archive and a cursor left in the middle by an earlier, stopped run
    world = World(ORGS[:3])
    world.maintain(reconcile=False)
    world.checkpoints.save(
        RECONCILE_CURSOR_KEY, {"last_day": ALL_DAYS[1].isoformat(), "last_org": ORGS[1]}
    )

    # When maintenance runs without a time budget
    report = world.maintain()

    # Then every unit is checked exactly once, in rotation order from the cursor
    units = checked(report)
    assert sorted(units) == sorted((day, org) for org in ORGS[:3] for day in ALL_DAYS)
    assert not report.stopped_early


def test_a_corrupt_cursor_restarts_at_the_newest_day() -> None:
    # Given a cursor document that is not a cursor
    world = World(ORGS[:2])
    world.maintain(reconcile=False)
    world.checkpoints.save(RECONCILE_CURSOR_KEY, {"last_day": "yesterday"})

    # When maintenance runs with budget for two units
    report = world.maintain(count_calls=2)

    # Then it starts from the top, reports no failure, and rewrites a valid cursor
    assert sorted(checked(report)) == [(ALL_DAYS[-1], org) for org in sorted(ORGS[:2])]
    assert not report.failures
    assert load_reconcile_cursor(world.checkpoints) == ReconcileCursor(
        ALL_DAYS[-1], sorted(ORGS[:2])[1]
    )


def test_the_cursor_key_is_never_accepted_as_an_org() -> None:
    # Given the reserved cursor key among the org ids
    world = World(ORGS[:1])

    # When maintenance is asked to run, then it refuses with a settings error
    with pytest.raises(SettingsError, match="reserved"):
        maintain(
            org_ids=[ORGS[0], RECONCILE_CURSOR_KEY],
            store=world.store,
            checkpoints=world.checkpoints,
            prefix=PREFIX,
        )


def test_rotate_starts_after_the_cursor_and_wraps() -> None:
    # Given units over two days and two orgs, and a cursor on the second unit
    d1, d2 = DAY0, DAY0 + timedelta(days=1)
    units = [ReconcileCursor(d, o) for d in (d1, d2) for o in ("b", "a")]

    # When rotated from no cursor, the second unit, and a unit that no longer exists
    fresh = rotate(units, None)
    after_second = rotate(units, ReconcileCursor(d2, "b"))
    after_gone = rotate(units, ReconcileCursor(d2, "ab"))

    # Then newest day first, then org id; the rotation continues after the cursor's position
    assert fresh == [
        ReconcileCursor(d2, "a"),
        ReconcileCursor(d2, "b"),
        ReconcileCursor(d1, "a"),
        ReconcileCursor(d1, "b"),
    ]
    assert after_second == fresh[2:] + fresh[:2]
    assert after_gone == fresh[1:] + fresh[:1]
