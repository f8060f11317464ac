"""Findings 6, 7, 8 and 9: bad configuration and unlucky operators get a clear error, not a
credential sent in clear text, a silent no-op, a silent archive run or a deleted directory."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from di_archiver import application as app
from di_archiver.application.archive import IncompleteResnapshotError
from di_archiver.application.runtime import Runtime
from di_archiver.commands.demo import DEMO_MARKER, run_demo
from di_archiver.domain.checkpoint import Checkpoint, save_checkpoint
from di_archiver.domain.engine import NS_PER_DAY, ArchiveEngine, EngineRunError
from di_archiver.errors import DIBadRequestError, SettingsError
from di_archiver.invocation import parse_invocation
from di_archiver.settings import ArchiverSettings
from di_archiver.timestamps import format_timestamp_ns, parse_timestamp_ns
from tests.unit.engine.fakes import FakeSource, MemoryCheckpoints, MemoryStore, RecordingObserver
from tests.unit.engine.fakes import event as make_event
from tests.unit.engine.helpers import CONFIG, Clock

ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"


def settings(**values: Any) -> ArchiverSettings:
    return ArchiverSettings.build({"org_ids": [ORG], "archive_dir": "/tmp/x", **values})


# -- finding 6: where the credential may be sent -------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("http://api.jumpcloud.example", "plain http"),
        ("https://169.254.169.254/latest", "link-local or metadata"),
        ("http://169.254.169.254", "plain http"),
        ("https://[fd00:ec2::254]/", "link-local or metadata"),
        ("https://[fe80::1]/", "link-local or metadata"),
        ("https://0.0.0.0/", "link-local or metadata"),
        ("https://metadata.google.internal/", "instance-metadata"),
        ("https://user:pw@api.jumpcloud.com", "user name or password"),
        ("ftp://api.jumpcloud.com", "https:// URL"),
        ("api.jumpcloud.com", "https:// URL"),
        # 169.254.169.254 as the system resolver also reads it
        ("https://2852039166/", "link-local or metadata"),
        ("https://0xa9fea9fe/", "link-local or metadata"),
        ("https://169.254.43518/", "link-local or metadata"),
        ("https://0/", "link-local or metadata"),
        # a *.localhost name may be resolved by DNS, to another machine
        ("http://di.localhost:8080", "plain http"),
    ],
)
def test_base_and_token_urls_that_would_expose_the_credential_are_refused(
    url: str, problem: str
) -> None:
    for field in ("base_url", "token_url"):
        with pytest.raises(SettingsError, match=problem) as caught:
            settings(**{field: url})
        assert f"DI_ARCHIVER_{field.upper()}" in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://api.eu.jumpcloud.com",
        "http://127.0.0.1:8080",
        "http://localhost:9000/",
        "http://[::1]:8080",
    ],
)
def test_https_and_plain_http_to_this_machine_are_accepted(url: str) -> None:
    assert settings(base_url=url).di_base_url == url.rstrip("/")


def test_the_cli_refuses_an_empty_base_url_instead_of_using_production(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from di_archiver import cli

    # Given a credential in the environment, so only the empty URL can be wrong
    monkeypatch.setenv("K", "an-api-key-that-is-long-enough-0123456789")
    # When the CLI runs with --base-url ''
    code = cli.main(
        ["run", "--org-id", ORG, "--archive", str(tmp_path), "--base-url", "", "--api-key-env", "K"]
    )
    # Then it is a usage error naming the base URL, and nothing was archived
    assert code == 2
    err = capsys.readouterr().err
    assert "--base-url" in err, err
    assert "URL is empty" in err, err
    assert not any(tmp_path.rglob("*.jsonl.gz"))


# -- finding 7: the token host follows the region -------------------------------------------


@pytest.mark.parametrize(
    ("region", "host"),
    [
        ("standard", "admin-oauth.id.jumpcloud.com"),
        ("eu", "admin-oauth.id.eu.jumpcloud.com"),
        ("in", "admin-oauth.id.in.jumpcloud.com"),
    ],
)
def test_the_region_picks_the_oauth_token_host(region: str, host: str) -> None:
    assert settings(region=region).oauth_token_url == f"https://{host}/oauth2/token"


def test_an_explicit_token_url_overrides_the_region() -> None:
    chosen = settings(region="eu", token_url="https://sso.example.test/token")
    assert chosen.oauth_token_url == "https://sso.example.test/token"


# -- finding 8: smaller ones ------------------------------------------------------------------


@pytest.mark.parametrize("payload", ["maintain", ["maintain"], 3, True])
def test_a_payload_that_is_not_an_object_is_rejected(payload: object) -> None:
    with pytest.raises(SettingsError, match="expected a JSON object"):
        parse_invocation(payload)


def test_no_payload_still_means_archive() -> None:
    assert parse_invocation(None).mode.value == "archive"
    assert parse_invocation({}).mode.value == "archive"


def runtime(
    source: FakeSource, clock: Clock, observer: RecordingObserver | None = None, **config: Any
) -> Runtime:
    store, checkpoints = MemoryStore(), MemoryCheckpoints()
    engine = ArchiveEngine(
        source=source,
        store=store,
        checkpoints=checkpoints,
        config=replace(CONFIG, pipeline=False, **config),
        clock=clock,
        observer=observer,
    )
    return Runtime(engine=engine, source=source, store=store, checkpoints=checkpoints)


def test_a_reserve_not_below_the_function_timeout_is_a_settings_error() -> None:
    # Given a reserve of 900 s and an invocation with 900 s (the Lambda's 15 minutes)
    chosen = settings(time_budget_reserve_seconds=900)
    rt = runtime(FakeSource(), Clock())
    # When a pass starts / Then it refuses, instead of stopping before every bucket forever
    with pytest.raises(SettingsError, match="TIME_BUDGET_RESERVE_SECONDS"):
        app.archive(chosen, rt, remaining_seconds=lambda: 900.0)


def test_a_resnapshot_that_runs_out_of_time_fails_and_says_where_to_continue() -> None:
    # Given a 6-hour window and time for only the first couple of buckets
    clock = Clock(parse_timestamp_ns("2026-05-04T12:00:00Z"))
    source = FakeSource()
    source.add(ORG, make_event("2026-05-04T01:10:00Z", "a" * 24))
    rt = runtime(source, clock)
    left = iter([100.0, 100.0, 100.0, 100.0, 5.0])

    def remaining() -> float:
        return next(left, 5.0)

    start = parse_timestamp_ns("2026-05-04T00:00:00Z")
    end = parse_timestamp_ns("2026-05-04T06:00:00Z")
    # When re-snapshotted / Then it fails (not a success summary) naming where to resume
    with pytest.raises(EngineRunError) as caught:
        app.resnapshot(settings(), rt, start_ns=start, end_ns=end, remaining_seconds=remaining)
    (failure,) = caught.value.failures
    assert isinstance(failure[1], IncompleteResnapshotError)
    message = str(failure[1])
    assert "incomplete" in message
    assert format_timestamp_ns(end) in message


def test_a_checkpoint_older_than_retention_warns_and_starts_at_the_retention_edge() -> None:
    # Given a checkpoint from 1970
    clock = Clock(parse_timestamp_ns("2026-05-04T12:00:00Z"))
    observer = RecordingObserver()
    rt = runtime(FakeSource(), clock, observer, retention_ns=90 * NS_PER_DAY)
    save_checkpoint(rt.checkpoints, ORG, Checkpoint(0, 60, clock.now))
    source = rt.source
    assert isinstance(source, FakeSource)
    # When a pass runs
    rt.engine.run([ORG])
    # Then it warned and never asked DI for anything older than the retention edge
    edge = clock.now - 90 * NS_PER_DAY
    assert min(start for _org, start, _end in source.calls) >= edge - CONFIG.bucket_ns
    assert any("older than DI's retention" in w[0] for w in observer.warnings)


def test_a_checkpoint_older_than_retention_is_replayed_while_di_still_holds_events_there() -> None:
    # Given a checkpoint 120 days old and a DI that still holds an event from 100 days ago
    clock = Clock(parse_timestamp_ns("2026-05-04T12:00:00Z"))
    observer = RecordingObserver()
    source = FakeSource()
    old_event = make_event(format_timestamp_ns(clock.now - 100 * NS_PER_DAY), "a" * 24)
    source.add(ORG, old_event)
    rt = runtime(source, clock, observer, retention_ns=90 * NS_PER_DAY)
    save_checkpoint(rt.checkpoints, ORG, Checkpoint(clock.now - 120 * NS_PER_DAY, 60, clock.now))
    # When a pass runs
    rt.engine.run([ORG])
    # Then nothing was skipped: the old event is archived and no retention warning was given
    assert not any("older than DI's retention" in w[0] for w in observer.warnings)
    store = rt.store
    assert isinstance(store, MemoryStore)
    archived = [line for lines in store.content().values() for line in lines]
    assert [json.loads(line)["id"] for line in archived] == [old_event["id"]]


def test_a_checkpoint_older_than_retention_skips_to_the_edge_when_di_refuses_to_count_there() -> (
    None
):
    # Given a checkpoint 120 days old and a DI that answers 400 to a count before its retention
    class RefusingOldCounts(FakeSource):
        def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
            if start_ns < clock.now - 90 * NS_PER_DAY:
                raise DIBadRequestError(
                    "DI /events/count rejected the query (HTTP 400)", status=400
                )
            return super().count(org_id, start_ns, end_ns)

    clock = Clock(parse_timestamp_ns("2026-05-04T12:00:00Z"))
    observer = RecordingObserver()
    source = RefusingOldCounts()
    rt = runtime(source, clock, observer, retention_ns=90 * NS_PER_DAY)
    save_checkpoint(rt.checkpoints, ORG, Checkpoint(clock.now - 120 * NS_PER_DAY, 60, clock.now))
    # When a pass runs / Then it does not fail every pass: it warns and starts at the edge
    rt.engine.run([ORG])
    assert any("older than DI's retention" in w[0] for w in observer.warnings)
    assert min(start for _org, start, _end in source.calls) >= clock.now - 91 * NS_PER_DAY


# -- finding 9: the demo removes only what it created ----------------------------------------


def test_the_demo_refuses_to_remove_a_directory_it_did_not_create(tmp_path: Path) -> None:
    # Given a directory with unrelated files
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    # When the demo is pointed at it / Then it refuses and the files are still there
    with pytest.raises(SettingsError, match="not created by the demo"):
        run_demo(precious, events=10, days=0.1)
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_archiving_into_an_existing_directory_with_keep_does_not_mark_it_as_the_demos(
    tmp_path: Path,
) -> None:
    # Given an existing directory used with --keep
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    run_demo(precious, events=10, days=0.1, keep=True)
    # Then no marker was planted, so a later run without --keep still refuses
    assert not (precious / DEMO_MARKER).exists()
    with pytest.raises(SettingsError, match="not created by the demo"):
        run_demo(precious, events=10, days=0.1)
    assert (precious / "thesis.txt").exists()


def test_a_marker_that_is_a_symlink_is_neither_trusted_nor_written_through(
    tmp_path: Path,
) -> None:
    # Given a directory whose demo marker is a symlink to a file elsewhere
    precious = tmp_path / "precious"
    precious.mkdir()
    target = tmp_path / "thesis.txt"
    target.write_text("years of work")
    (precious / DEMO_MARKER).symlink_to(target)
    # When the demo archives into it with --keep
    run_demo(precious, events=10, days=0.1, keep=True)
    # Then the symlink's target is untouched, and the directory is still not the demo's
    assert target.read_text() == "years of work"
    with pytest.raises(SettingsError, match="not created by the demo"):
        run_demo(precious, events=10, days=0.1)
