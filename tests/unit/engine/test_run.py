"""Runs: checkpoint rules, time budget, several orgs, status."""

import threading
from collections.abc import Iterator
from dataclasses import fields, replace

import pytest

import di_archiver.domain.engine as engine_module
from di_archiver.domain.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from di_archiver.domain.engine import EngineConfig, EngineRunError
from di_archiver.errors import (
    CheckpointError,
    DIAuthenticationError,
    SettingsError,
    StoreError,
    UnexpectedError,
)
from di_archiver.raw_events import RawEvent
from di_archiver.settings import ArchiverSettings
from tests.unit.engine.fakes import ORG, ORG_B, FakeSource, event
from tests.unit.engine.helpers import CONFIG, HOUR, MINUTE, NOW, at, rig


def corpus() -> FakeSource:
    """One event per hour from 06:00 to 11:50 on 2026-05-04 (NOW is 12:00)."""
    source = FakeSource()
    source.add(ORG, *(event(f"2026-05-04T{h:02d}:30:00Z", f"e{h}") for h in range(6, 12)))
    source.add(
        ORG, event("2026-05-04T11:50:00Z", "inside-lag"), event("2026-05-04T11:56:00Z", "past-lag")
    )
    return source


def archived_ids(r) -> set[str]:  # type: ignore[no-untyped-def]
    import json

    return {json.loads(line)["id"] for lines in r.store.content().values() for line in lines}


class _ThreadRecordingSource(FakeSource):
    def __init__(self) -> None:
        super().__init__()
        self.threads: set[str] = set()

    def iter_pages(self, org_id: str, start_ns: int, end_ns: int) -> Iterator[list[RawEvent]]:
        for page in super().iter_pages(org_id, start_ns, end_ns):
            self.threads.add(threading.current_thread().name)
            yield page


@pytest.mark.parametrize(("cpus", "fetched_on"), [(1, "MainThread"), (2, "di-archiver-fetch")])
def test_pages_are_fetched_ahead_on_a_thread_only_where_another_cpu_can_run(
    monkeypatch: pytest.MonkeyPatch, cpus: int, fetched_on: str
) -> None:
    # Given a process that may run on one CPU, or on two
    monkeypatch.setattr(engine_module.os, "sched_getaffinity", lambda _: set(range(cpus)))
    given = {f.name: getattr(CONFIG, f.name) for f in fields(EngineConfig) if f.name != "prefetch"}
    config = EngineConfig(**given)
    source = _ThreadRecordingSource()
    source.add(ORG, *(event(f"2026-05-04T{h:02d}:30:00Z", f"e{h}") for h in range(6, 12)))
    r = rig(source, prefetch=config.prefetch)
    # When a run reads its pages
    r.engine.run([ORG])
    # Then they were read on the caller's thread with one CPU, one page ahead with two
    assert config.prefetch is (cpus > 1)
    assert source.threads == {fetched_on}


@pytest.mark.parametrize(("pipeline", "prefetch"), [(True, True), (True, False), (False, False)])
def test_first_run_backfills_and_checkpoints_the_closed_buckets(
    pipeline: bool, prefetch: bool
) -> None:
    # Given no checkpoint, a 6-hour lookback, 5-minute lag, 2-hour settle
    r = rig(corpus(), pipeline=pipeline, prefetch=prefetch)
    # When the engine runs at 12:00
    report = r.engine.run([ORG])
    # Then buckets 06:00-12:00 are snapshotted (the last partially, up to 11:55)
    assert [(b.start_ns, b.closed) for b in r.observer.buckets] == [
        (at(f"2026-05-04T{h:02d}:00"), h < 10) for h in range(6, 12)
    ]
    assert archived_ids(r) == {f"e{h}" for h in range(6, 12)} | {"inside-lag"}
    # And the checkpoint covers only the closed buckets, in the documented shape, with the
    # open buckets' high-water marks
    assert r.checkpoints.documents[ORG] == {
        "schema_version": 1,
        "closed_through": "2026-05-04T10:00:00Z",
        "archived_from": "2026-05-04T06:00:00Z",
        "bucket_minutes": 60,
        "updated_at": "2026-05-04T12:00:00Z",
        "open_buckets": [
            {"start": "2026-05-04T10:00:00Z", "through": "2026-05-04T11:00:00Z", "events": 1},
            {"start": "2026-05-04T11:00:00Z", "through": "2026-05-04T11:55:00Z", "events": 2},
        ],
    }
    (org,) = report.orgs
    assert (org.checkpoint_before_ns, org.checkpoint_after_ns) == (None, at("2026-05-04T10:00"))
    assert (org.buckets, org.buckets_written, org.events, org.stopped_early) == (6, 6, 7, False)
    assert org.freshness_lag_s == 300.0


def test_open_buckets_are_rewritten_until_closed_then_left_alone() -> None:
    # Given a first run at 12:00
    r = rig(corpus())
    r.engine.run([ORG])
    # When a late event for 10:xx appears and the engine runs an hour later
    r.source.add(ORG, event("2026-05-04T10:45:00Z", "late"))
    r.clock.now = NOW + HOUR
    report = r.engine.run([ORG])
    # Then planning resumed at the checkpoint, picked up the late event, and closed 10:00-11:00
    assert report.orgs[0].checkpoint_before_ns == at("2026-05-04T10:00")
    assert r.observer.buckets[6].start_ns == at("2026-05-04T10:00")
    assert {"late", "past-lag"} <= archived_ids(r)
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T11:00:00Z"


def test_checkpoint_does_not_pass_a_bucket_whose_write_failed() -> None:
    # Given a store whose PUT fails for the 08:00 bucket
    r = rig(corpus())
    put = r.store.put

    def failing_put(key, body, metadata):  # type: ignore[no-untyped-def]
        if "/0800-0900" in key:
            raise StoreError("disk full")
        put(key, body, metadata)

    r.store.put = failing_put  # type: ignore[method-assign]
    # When the engine runs: then the run fails but the checkpoint covers 06:00-08:00 only
    with pytest.raises(EngineRunError, match="disk full") as caught:
        r.engine.run([ORG])
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T08:00:00Z"
    assert caught.value.report.orgs[0].checkpoint_after_ns == at("2026-05-04T08:00")
    # And a rerun without the fault completes everything
    r.store.put = put  # type: ignore[method-assign]
    r.engine.run([ORG])
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"
    assert archived_ids(r) == {f"e{h}" for h in range(6, 12)} | {"inside-lag"}


def test_the_time_budget_stops_new_buckets_and_the_next_run_continues() -> None:
    # Given only enough time for two buckets (reserve 10 s)
    r = rig(corpus())
    remaining = iter([100.0, 50.0, 5.0])
    report = r.engine.run([ORG], remaining_seconds=lambda: next(remaining, 0.0))
    # Then the run stops early with the two finished closed buckets checkpointed
    assert report.stopped_early
    assert report.orgs[0].buckets == 2
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T08:00:00Z"
    assert report.orgs[0].freshness_lag_s == 4 * 3600.0
    # When the next run has time: then it continues from there and completes
    report = r.engine.run([ORG])
    assert r.observer.buckets[2].start_ns == at("2026-05-04T08:00")
    assert not report.stopped_early
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


def test_checkpoints_are_saved_periodically_during_a_long_backfill() -> None:
    # Given a 2-day lookback with a save every 24 closed buckets
    r = rig(FakeSource(), lookback_ns=48 * HOUR)
    r.engine.run([ORG])
    # Then 46 buckets closed but only the pin, one periodic save (after 24) and the final
    # save happened, not one save per bucket
    assert r.checkpoints.saves == 3
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


def test_one_orgs_permanent_error_does_not_stop_the_others() -> None:
    # Given org A's key is rejected and org B is fine
    source = corpus()
    source.add(ORG_B, event("2026-05-04T07:00:00Z", "b-event"))
    source.errors[ORG] = DIAuthenticationError("the API key was rejected", status=401)
    r = rig(source)
    # When both run: then B is archived and checkpointed, A is reported, and the run raises
    with pytest.raises(EngineRunError) as caught:
        r.engine.run([ORG, ORG_B])
    report = caught.value.report
    assert [o.org_id for o in report.failed] == [ORG]
    assert "DIAuthenticationError" in (report.failed[0].error or "")
    assert isinstance(caught.value.__cause__, DIAuthenticationError)
    assert any(f"org={ORG_B}/" in k for k in r.store.objects)
    assert not any(f"org={ORG}/" in k for k in r.store.objects)
    assert r.checkpoints.documents[ORG_B]["closed_through"] == "2026-05-04T10:00:00Z"
    assert [o.org_id for o in r.observer.orgs] == [ORG, ORG_B]


def test_an_unexpected_exception_in_one_org_does_not_starve_the_others() -> None:
    # Given org A's source raises something that is not an ArchiverError (a bug, a surprise)
    source = corpus()
    source.add(ORG_B, event("2026-05-04T07:00:00Z", "b-event"))
    source.errors[ORG] = RuntimeError("something nobody planned for")
    r = rig(source)
    # When both run
    with pytest.raises(EngineRunError) as caught:
        r.engine.run([ORG, ORG_B])
    # Then B is archived and checkpointed, and A's failure is recorded with its type
    report = caught.value.report
    assert [o.org_id for o in report.failed] == [ORG]
    assert "RuntimeError: something nobody planned for" in (report.failed[0].error or "")
    assert isinstance(caught.value.failures[0][1], UnexpectedError)
    assert isinstance(caught.value.failures[0][1].__cause__, RuntimeError)
    assert r.checkpoints.documents[ORG_B]["closed_through"] == "2026-05-04T10:00:00Z"


def test_resnapshot_aligns_outward_and_never_moves_the_checkpoint() -> None:
    # Given a completed run
    r = rig(corpus())
    r.engine.run([ORG])
    before = dict(r.checkpoints.documents[ORG])
    r.source.add(ORG, event("2026-05-04T07:59:00Z", "very-late"))
    # When re-snapshotting 07:10-07:20
    report = r.engine.resnapshot(ORG, at("2026-05-04T07:10"), at("2026-05-04T07:20"))
    # Then the whole 07:00-08:00 bucket was rewritten and the checkpoint is unchanged
    assert report.orgs[0].buckets == 1
    assert report.orgs[0].buckets_written == 1
    assert "very-late" in archived_ids(r)
    assert r.checkpoints.documents[ORG] == before


def test_saving_an_older_checkpoint_is_refused() -> None:
    r = rig()
    save_checkpoint(r.checkpoints, ORG, Checkpoint(at("2026-05-04T10:00"), 60, NOW))
    with pytest.raises(CheckpointError, match="backwards"):
        save_checkpoint(r.checkpoints, ORG, Checkpoint(at("2026-05-04T09:00"), 60, NOW))
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


GOOD = {"schema_version": 1, "closed_through": "2026-05-04T10:00:00Z", "bucket_minutes": 60}


@pytest.mark.parametrize(
    ("document", "match"),
    [
        ("2026-05-04T10:00:00Z", "not a JSON object"),
        ({**GOOD, "schema_version": None}, "schema_version"),
        ({**GOOD, "schema_version": True}, "schema_version"),
        ({**GOOD, "schema_version": 2}, "upgrade"),
        ({**GOOD, "closed_through": "tomorrow"}, "RFC 3339"),
        ({**GOOD, "closed_through": None}, "closed_through"),
        ({**GOOD, "closed_through": "2026-05-04T10:30:00Z"}, "boundary"),
        ({**GOOD, "bucket_minutes": 7}, "bucket_minutes"),
        ({**GOOD, "closed_through": "2027-01-01T00:00:00Z"}, "future"),
    ],
)
def test_a_bad_checkpoint_is_a_clear_error_and_nothing_is_written(
    document: object, match: str
) -> None:
    # Given a stored checkpoint that is invalid
    r = rig(corpus())
    r.checkpoints.documents[ORG] = document  # type: ignore[assignment]
    # When the engine runs: then it fails with a CheckpointError saying what to do
    with pytest.raises(EngineRunError, match=match) as caught:
        r.engine.run([ORG])
    assert isinstance(caught.value.failures[0][1], CheckpointError)
    assert "delete the checkpoint" in str(caught.value)
    assert r.store.objects == {}
    assert r.checkpoints.documents[ORG] == document


def test_a_changed_bucket_width_is_a_settings_error() -> None:
    r = rig(corpus())
    r.checkpoints.documents[ORG] = {**GOOD, "bucket_minutes": 30}
    with pytest.raises(SettingsError, match="DI_ARCHIVER_BUCKET_MINUTES"):
        load_checkpoint(r.checkpoints, ORG, bucket_ns=HOUR)
    with pytest.raises(EngineRunError):
        r.engine.run([ORG])
    assert r.store.objects == {}


def test_status_reports_checkpoint_lag_and_open_buckets() -> None:
    r = rig(corpus())
    before = r.engine.status([ORG])[0]
    assert (before.checkpoint_ns, before.lag_s, before.open_buckets) == (None, None, 6)
    r.engine.run([ORG])
    after = r.engine.status([ORG])[0]
    assert after.checkpoint_ns == at("2026-05-04T10:00")
    assert (after.lag_s, after.open_buckets, after.bucket_minutes) == (7200.0, 2, 60)


def test_config_from_settings_converts_units() -> None:
    settings = ArchiverSettings.build(
        {"org_ids": ORG, "archive_dir": "/tmp/x", "bucket_minutes": 30, "lag_seconds": 120}
    )
    config = EngineConfig.from_settings(settings)
    assert (config.bucket_ns, config.lag_ns, config.bucket_minutes) == (30 * MINUTE, 2 * MINUTE, 30)
    assert config.lookback_ns == 90 * 24 * HOUR
    with pytest.raises(SettingsError):
        replace(config, bucket_ns=7 * MINUTE)
