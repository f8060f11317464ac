"""Late events: one run and one maintenance pass leave the archive equal to DI, exactly.

The simulator serves DI over real HTTP under both readings of ``end_time``. The corpus is
shaped so the last millisecond of a sealed day holds far more events than are indexed late:
exactly the case where counting ``[start, end - 1 ms]`` and accepting "either reading" hid a
shortfall for good.
"""

from __future__ import annotations

import json
from collections import Counter
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
from di_archiver.domain.verify import verify_archive
from di_archiver.layout import parse_object_key
from di_archiver.query import local
from di_archiver.simulator import Simulator, SimulatorClock, SimulatorConfig
from di_archiver.simulator.config import DEMO_API_KEY, DEMO_ORG_ID, FaultConfig, OrgSpec
from di_archiver.simulator.corpus import OrgCorpus
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND, parse_timestamp_ns

HOUR = 3600 * NS_PER_SECOND
DAY = 24 * HOUR
PREFIX = "di"
NOW = int(datetime(2026, 5, 10, 6, tzinfo=UTC).timestamp()) * NS_PER_SECOND
CROWDED_DAY = date(2026, 5, 8)
CROWDED_DAY_END = int(datetime(2026, 5, 9, tzinfo=UTC).timestamp()) * NS_PER_SECOND
LATE_AT = NOW + HOUR  # when the late events become searchable
SETTLE = 2 * HOUR


def crowd_last_millisecond(corpus: OrgCorpus, day_end_ns: int, span_ns: int) -> list[int]:
    """Move every event of ``[day_end - span, day_end)`` into the day's last millisecond.

    Rows stay in API order (ms, then internal doc id) and visible at once; returns the rows.
    """
    lo = corpus.first_pos_at_or_after_ms((day_end_ns - span_ns) // NS_PER_MS)
    hi = corpus.first_pos_at_or_after_ms(day_end_ns // NS_PER_MS)
    rows = list(range(lo, hi))
    last_ms = day_end_ns // NS_PER_MS - 1
    for row in rows:
        corpus.ts_ns[row] = last_ms * NS_PER_MS + corpus.ts_ns[row] % NS_PER_MS
        corpus.avail_ns[row] = corpus.ts_ns[row]
    order = sorted(rows, key=lambda row: corpus.doc_hash[row])
    arrays: tuple[Any, ...] = (
        corpus.ts_ns,
        corpus.avail_ns,
        corpus.gen_index,
        corpus.service_code,
        corpus.doc_hash,
    )
    for values in arrays:
        moved = [values[row] for row in order]
        for row, value in zip(rows, moved, strict=True):
            values[row] = value
    return rows


def index_late(corpus: OrgCorpus, rows: list[int], at_ns: int) -> None:
    for row in rows:
        corpus.avail_ns[row] = at_ns


def rows_between(corpus: OrgCorpus, start_ns: int, end_ns: int) -> list[int]:
    return list(
        range(
            corpus.first_pos_at_or_after_ms(start_ns // NS_PER_MS),
            corpus.first_pos_at_or_after_ms(end_ns // NS_PER_MS),
        )
    )


@pytest.fixture(params=[False, True], ids=["exclusive-end", "inclusive-end"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    sim = Simulator(
        SimulatorConfig.quiet(
            seed=23,
            orgs=(OrgSpec(org_id=DEMO_ORG_ID, event_count=5000),),
            span_seconds=3 * 86_400.0,
            end_time_inclusive=request.param,
            faults=FaultConfig.modest(0.02, seed=3),
        ),
        clock=SimulatorClock(now_ns=NOW),
    )
    corpus = sim.corpus(DEMO_ORG_ID)
    crowded = crowd_last_millisecond(corpus, CROWDED_DAY_END, 40 * 60 * NS_PER_SECOND)
    day_start = CROWDED_DAY_END - DAY
    # Late: a few events spread over the crowded day (fewer than its last ms holds), one of
    # the last millisecond itself, and one in a closed but unsealed hour of the current day.
    spread = rows_between(corpus, day_start, CROWDED_DAY_END - HOUR)[::150]
    today = rows_between(corpus, NOW - 5 * HOUR, NOW - 4 * HOUR)[:1]
    late = [*spread, crowded[len(crowded) // 2], *today]
    index_late(corpus, late, LATE_AT)
    assert len(crowded) > len(late) + 5
    assert today
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
                settle_ns=SETTLE,
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
            "late": late,
            "crowded": crowded,
        }
        client.close()


def maintain_once(world: dict[str, Any]) -> MaintenanceReport:
    return maintain(
        org_ids=[DEMO_ORG_ID],
        store=world["store"],
        checkpoints=world["checkpoints"],
        prefix=PREFIX,
        source=world["client"],
        snapshotter=world["engine"],
        lookback_ns=4 * DAY,
        clock=world["sim"].clock.now_ns,
    )


def visible_archive(store: LocalArchiveStore, start_ns: int, end_ns: int) -> Counter[str]:
    """Every event the table sees (sealed and bucket objects) with ``start <= ts < end``."""
    seen: Counter[str] = Counter()
    for stored in store.list(f"{PREFIX}/org="):
        parse_object_key(stored.key)  # only data objects live under org=
        body = store.get(stored.key)
        assert body is not None
        for line in decode_lines(body):
            event = json.loads(line)
            if start_ns <= parse_timestamp_ns(event["timestamp"]) < end_ns:
                seen[json.dumps(event, sort_keys=True)] += 1
    return seen


def ground_truth(sim: Simulator, start_ns: int, end_ns: int) -> Counter[str]:
    return Counter(
        json.dumps(e, sort_keys=True) for e in sim.visible_events(DEMO_ORG_ID, start_ns, end_ns)
    )


def closed_through(world: dict[str, Any]) -> int:
    document = world["checkpoints"].load(DEMO_ORG_ID)
    return parse_timestamp_ns(document["closed_through"])


def test_one_run_and_one_maintenance_pass_leave_the_archive_exactly_equal_to_di(
    world: dict[str, Any],
) -> None:
    sim, store = world["sim"], world["store"]
    # Given one run while some events are not yet indexed (the crowded day gets sealed short)
    world["engine"].run([DEMO_ORG_ID])
    through = closed_through(world)
    archived_from = NOW - 4 * DAY
    assert through == NOW - SETTLE

    # When DI indexes the late events and one maintenance pass (seal + reconcile) runs
    sim.clock.set_ns(LATE_AT + 10 * NS_PER_SECOND)
    missing = ground_truth(sim, archived_from, through) - visible_archive(
        store, archived_from, through
    )
    assert sum(missing.values()) == len(world["late"])
    report = maintain_once(world)

    # Then every closed window of the archive equals DI's answer: nothing missing, none twice
    assert visible_archive(store, archived_from, through) == ground_truth(
        sim, archived_from, through
    )
    # And the pass says what it repaired: the crowded day and today's closed hours, each with
    # the buckets that differed and both counts
    checks = {c.day: c for c in report.orgs[0].checks}
    crowded = checks[CROWDED_DAY]
    assert crowded.status == "repaired"
    assert crowded.sealed
    assert (
        crowded.archived_after
        == crowded.di_count
        == crowded.archived_before + len(world["late"]) - 1
    )
    assert {b.name for b in crowded.buckets} >= {"2300-2400"}
    assert all(b.archived_after == b.di_count for b in crowded.buckets)
    today = checks[date(2026, 5, 10)]
    assert today.status == "repaired"
    assert not today.sealed
    assert [(b.name, b.di_count - b.archived_before) for b in today.buckets] == [("0100-0200", 1)]
    assert not report.findings

    # And a second pass finds nothing left to do
    again = maintain_once(world)
    assert {c.status for c in again.orgs[0].checks} == {"ok"}
    assert again.days_repaired == 0


def query_rows(archive: Path, sql: str) -> list[tuple[Any, ...]]:
    return local.run_query(sql, archive=archive).rows


def assert_each_event_visible_once(archive: Path) -> int:
    """What ``di-archiver query`` sees: no (id, timestamp) twice; returns the event count."""
    twice = query_rows(
        archive,
        "SELECT id, timestamp, count(*) AS n FROM events GROUP BY id, timestamp "
        "HAVING count(*) > 1",
    )
    assert twice == []
    ((total,),) = query_rows(archive, "SELECT count(*) AS n FROM events")
    return int(total)


def test_deleting_the_checkpoint_or_resnapshotting_a_sealed_day_never_shows_an_event_twice(
    world: dict[str, Any], tmp_path: Path
) -> None:
    sim, store, engine = world["sim"], world["store"], world["engine"]
    archive = tmp_path / "archive"
    # Given a run and a maintenance pass (every closed day sealed), then DI indexes late events
    engine.run([DEMO_ORG_ID])
    maintain_once(world)
    sealed_total = assert_each_event_visible_once(archive)
    sim.clock.set_ns(LATE_AT + 10 * NS_PER_SECOND)

    # When the checkpoint is deleted and the archiver runs again (a backfill over sealed days)
    (archive / "checkpoints.json").unlink()
    engine.run([DEMO_ORG_ID])
    # Then the sealed days' late events are staged where no query reads them: nothing twice
    after_rerun = assert_each_event_visible_once(archive)
    assert [s.key for s in store.list(f"{PREFIX}/_late/")]
    # And verify checks the staged objects and finds nothing wrong with the archive
    checked = verify_archive(store, prefix=PREFIX)
    assert checked.findings == []
    assert checked.staged_objects > 0

    # When a sealed day that gained events is re-snapshotted by hand
    day_start = CROWDED_DAY_END - DAY
    engine.resnapshot(DEMO_ORG_ID, day_start, CROWDED_DAY_END)
    # Then again nothing is visible twice
    assert assert_each_event_visible_once(archive) == after_rerun >= sealed_total

    # When maintenance runs once, the staged events are merged into their sealed days
    report = maintain_once(world)
    through = closed_through(world)
    # Then the archive equals DI over everything closed, each event exactly once
    assert not report.findings
    assert [s.key for s in store.list(f"{PREFIX}/_late/")] == []
    assert visible_archive(store, NOW - 4 * DAY, through) == ground_truth(
        sim, NOW - 4 * DAY, through
    )
    assert assert_each_event_visible_once(archive) == sum(visible_archive(store, 0, 2**62).values())


def test_reconcile_names_each_differing_bucket_and_exits_one_on_a_finding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an org archived and reconciled through the CLI against a live simulator
    sim = Simulator(
        SimulatorConfig.quiet(
            seed=5, orgs=(OrgSpec(org_id=DEMO_ORG_ID, event_count=3000),), span_seconds=2 * 86_400.0
        )
    )
    monkeypatch.setenv("DI_KEY", DEMO_API_KEY)
    archive = tmp_path / "cli-archive"
    with sim.serve(port=0) as server:
        common = ["--org-id", DEMO_ORG_ID, "--archive", str(archive), "--base-url",
                  server.base_url, "--api-key-env", "DI_KEY"]  # fmt: skip
        assert main(["run", *common, "--lookback-days", "2"]) == 0
        assert main(["reconcile", *common]) == 0
        capsys.readouterr()
        # When DI no longer returns two events of yesterday's 10:00 hour (DI lost them)
        yesterday = sim.clock.now_ns() // DAY * DAY - DAY
        corpus = sim.corpus(DEMO_ORG_ID)
        gone = rows_between(corpus, yesterday + 10 * HOUR, yesterday + 11 * HOUR)[:2]
        index_late(corpus, gone, 2**62)
        code = main(["reconcile", *common])
    out = capsys.readouterr().out

    # Then reconcile exits 1 and names the day and the bucket with both counts; nothing deleted
    assert code == 1
    finding = next(line for line in out.splitlines() if line.startswith("FINDING "))
    assert (
        f"day {datetime.fromtimestamp(yesterday // NS_PER_SECOND, UTC).date()}: di_lower" in finding
    )
    assert "1000-1100 DI " in finding
    held = int(finding.split("1000-1100 DI ")[1].split()[0])
    assert f"1000-1100 DI {held} archive {held + 2}->{held + 2} (di_lower)" in finding
    assert "reconcile finding(s)" in out
