"""The real ``lambda_handler`` end to end: simulator over HTTP, S3/SSM/Secrets Manager in moto."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto import mock_aws

from di_archiver import handler
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.archive_format import decode_lines
from di_archiver.errors import ArchiverError, SettingsError
from di_archiver.raw_events import serialise_event
from di_archiver.simulator import Simulator, SimulatorConfig
from di_archiver.simulator.config import DEMO_API_KEY, DEMO_ORG_ID, OrgSpec
from di_archiver.timestamps import NS_PER_SECOND
from di_archiver.wiring import build_runtime

from .lambda_context import FakeContext

BUCKET = "di-archive-e2e"
SECRET_ID = "di-archiver/jumpcloud"
PREFIX = "/di-archiver/checkpoints"
LAG_S = 300


@pytest.fixture(scope="module")
def simulator() -> Iterator[tuple[Simulator, str]]:
    # Real-time clock: the handler's engine uses time.time_ns, as in Lambda.
    sim = Simulator(SimulatorConfig.quiet(orgs=(OrgSpec(event_count=2000),), span_seconds=43_200.0))
    with sim.serve(port=0) as server:
        yield sim, server.base_url


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch, simulator: tuple[Simulator, str]) -> Iterator[None]:
    _, base_url = simulator
    env = {
        "DI_ARCHIVER_ORG_IDS": DEMO_ORG_ID,
        "DI_ARCHIVER_ARCHIVE_BUCKET": BUCKET,
        "DI_ARCHIVER_SECRET_ID": SECRET_ID,
        "DI_ARCHIVER_BASE_URL": base_url,
        # The simulator enforces no rate limit here; pacing at JumpCloud's would only slow tests.
        "DI_ARCHIVER_RATE_LIMIT_PER_SECOND": "1000",
        "DI_ARCHIVER_LOOKBACK_DAYS": "1",
        "DI_ARCHIVER_LAG_SECONDS": str(LAG_S),
        "DI_ARCHIVER_CHECKPOINT_PARAMETER_PREFIX": PREFIX,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler.reset_for_tests()
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("secretsmanager").create_secret(
            Name=SECRET_ID, SecretString=json.dumps({"api_key": DEMO_API_KEY})
        )
        yield
    handler.reset_for_tests()


def _archived_lines() -> Counter[bytes]:
    s3 = boto3.client("s3")
    lines: Counter[bytes] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            if not item["Key"].endswith(".jsonl.gz"):
                continue
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            lines.update(decode_lines(body))
    return lines


def _checkpoint() -> str | None:
    try:
        parameter = boto3.client("ssm").get_parameter(Name=f"{PREFIX}/{DEMO_ORG_ID}")
    except boto3.client("ssm").exceptions.ParameterNotFound:
        return None
    return str(parameter["Parameter"]["Value"])


def test_scheduled_invocation_archives_every_visible_event(
    aws: None, simulator: tuple[Simulator, str], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a simulated org with a day of events and the handler's environment
    sim, _ = simulator
    started_ns = time.time_ns()
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
    # When EventBridge invokes the real handler
    result = handler.lambda_handler(scheduled, FakeContext())
    # Then every event visible before now - lag is archived exactly once, nothing else is
    archived = _archived_lines()
    settled = sim.visible_events(DEMO_ORG_ID, 0, started_ns - LAG_S * NS_PER_SECOND)
    visible = {serialise_event(e) for e in sim.visible_events(DEMO_ORG_ID, 0, time.time_ns())}
    assert settled, "the simulator should have produced events"
    assert all(archived[serialise_event(e)] == 1 for e in settled)
    assert set(archived) <= visible
    assert max(archived.values()) == 1
    assert result["mode"] == "archive"
    assert result["events"] == sum(archived.values())
    # And the checkpoint, the metrics and the logs say so, without the API key
    assert _checkpoint() is not None
    out = capsys.readouterr().out
    metrics = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert metrics, "Powertools should have flushed one EMF document"
    assert metrics[-1]["RunSucceeded"] in (1, 1.0, [1.0])
    assert DEMO_API_KEY not in out
    assert DEMO_ORG_ID not in out


def test_resnapshot_invocation_rewrites_the_window(aws: None) -> None:
    # Given a first archive pass
    handler.lambda_handler({}, FakeContext())
    before = _archived_lines()
    # When an operator re-snapshots the last two hours
    now = time.time()
    event = {
        "mode": "resnapshot",
        "start": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now - 7200)),
        "end": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now)),
    }
    result = handler.lambda_handler(event, FakeContext())
    # Then the archive still holds each event once (rewrites are idempotent)
    after = _archived_lines()
    assert result["mode"] == "resnapshot"
    assert max(after.values()) == 1
    assert set(before) <= set(after)


def test_maintain_then_verify_invocations_seal_and_prove_the_archive(aws: None) -> None:
    # Given an archive pass over a day of events
    handler.lambda_handler({}, FakeContext())
    before = _archived_lines()
    # When the daily maintenance and a verification run through the real handler
    maintained = handler.lambda_handler({"mode": "maintain"}, FakeContext())
    verified = handler.lambda_handler({"mode": "verify"}, FakeContext())
    # Then sealing moved events between objects without losing or duplicating one
    assert maintained["mode"] == "maintain"
    assert maintained["days_sealed"] >= 1
    assert verified["mode"] == "verify"
    assert _archived_lines() == before
    # And a closed day was sealed: its manifest exists even though the 12 h corpus left the
    # day itself empty, and the chain verifies
    keys = [
        item["Key"]
        for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    assert any("/_manifests/" in key for key in keys)


@pytest.mark.parametrize(
    ("event", "fragment"),
    [
        ({"mode": "resnapshot"}, "needs 'start' and 'end'"),
        ({"mode": "resnapshot", "start": "yesterday", "end": "2026-01-01T00:00:00Z"}, "RFC 3339"),
        ({"mode": "bogus"}, "mode"),
    ],
)
def test_bad_invocation_events_fail_clearly_and_write_nothing(
    aws: None, event: dict[str, Any], fragment: str
) -> None:
    # Given a malformed invocation event
    # When the handler runs
    with pytest.raises(SettingsError, match=fragment):
        handler.lambda_handler(event, FakeContext())
    # Then nothing was archived and no checkpoint exists
    assert not _archived_lines()
    assert _checkpoint() is None


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DI_ARCHIVER_BUCKET_MINUTES", "7", "DI_ARCHIVER_BUCKET_MINUTES"),
        ("DI_ARCHIVER_SERVICES", "sso,saml", "unknown service"),
        ("DI_ARCHIVER_BUCKETMINUTES", "60", "unknown setting"),
    ],
)
def test_malformed_settings_fail_with_run_failed_metric(
    aws: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    name: str,
    value: str,
    fragment: str,
) -> None:
    # Given an invalid environment
    monkeypatch.setenv(name, value)
    handler.reset_for_tests()
    # When the handler runs
    with pytest.raises(SettingsError, match=fragment):
        handler.lambda_handler({}, FakeContext())
    # Then RunFailed is emitted and nothing was written
    out = capsys.readouterr().out
    metrics = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert metrics[-1]["RunFailed"] in (1, 1.0, [1.0])
    assert not _archived_lines()


def test_invalid_stored_checkpoint_fails_and_is_left_alone(aws: None) -> None:
    # Given an SSM checkpoint that is not JSON
    boto3.client("ssm").put_parameter(
        Name=f"{PREFIX}/{DEMO_ORG_ID}", Value="not-json", Type="String"
    )
    # When the handler runs
    with pytest.raises(ArchiverError, match=r"CheckpointError.*not valid JSON"):
        handler.lambda_handler({}, FakeContext())
    # Then the failure names the checkpoint problem, the value is unchanged, nothing archived
    assert _checkpoint() == "not-json"
    assert not _archived_lines()


def test_non_json_api_body_fails_after_retries_and_keeps_checkpoint(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a DI endpoint that answers 200 with HTML (a captive proxy, say)
    calls: list[int] = []

    def respond(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, text="<html>maintenance</html>")

    def factory(settings: Any, observer: Any) -> Any:
        return build_runtime(
            settings,
            observer=observer,
            http=httpx.Client(transport=httpx.MockTransport(respond)),
            client_options={"retry": RetryPolicy(max_attempts=3, base_delay=0.0)},
        )

    monkeypatch.setattr(handler, "runtime_factory", factory)
    # When the handler runs
    with pytest.raises(ArchiverError, match="DIResponseError"):
        handler.lambda_handler({}, FakeContext())
    # Then each bucket in flight gave up with DIResponseError after its 3 attempts, no new
    # bucket started after the first failure, and nothing moved
    concurrency = handler.get_settings().concurrency
    assert len(calls) % 3 == 0
    assert 3 <= len(calls) <= 3 * concurrency
    assert not _archived_lines()
    checkpoint = _checkpoint()
    assert checkpoint is None or json.loads(checkpoint)


def test_maintain_places_sealed_objects_under_object_lock_when_configured(
    monkeypatch: pytest.MonkeyPatch, simulator: tuple[Simulator, str]
) -> None:
    # Given a deployment with Object Lock (compliance, 30 days) on a lock-enabled bucket
    _, base_url = simulator
    locked_bucket = "di-archive-locked"
    env = {
        "DI_ARCHIVER_ORG_IDS": DEMO_ORG_ID,
        "DI_ARCHIVER_ARCHIVE_BUCKET": locked_bucket,
        "DI_ARCHIVER_SECRET_ID": SECRET_ID,
        "DI_ARCHIVER_BASE_URL": base_url,
        # The simulator enforces no rate limit here; pacing at JumpCloud's would only slow tests.
        "DI_ARCHIVER_RATE_LIMIT_PER_SECOND": "1000",
        "DI_ARCHIVER_LOOKBACK_DAYS": "1",
        "DI_ARCHIVER_CHECKPOINT_PARAMETER_PREFIX": PREFIX,
        "DI_ARCHIVER_OBJECT_LOCK_MODE": "COMPLIANCE",
        "DI_ARCHIVER_OBJECT_LOCK_DAYS": "30",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    handler.reset_for_tests()
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=locked_bucket, ObjectLockEnabledForBucket=True)
        boto3.client("secretsmanager").create_secret(
            Name=SECRET_ID, SecretString=json.dumps({"api_key": DEMO_API_KEY})
        )
        # When the archive and maintenance passes run
        handler.lambda_handler({}, FakeContext())
        handler.lambda_handler({"mode": "maintain"}, FakeContext())
        # Then manifests carry compliance retention about 30 days out, hourly objects none
        keys = [
            item["Key"]
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=locked_bucket)
            for item in page.get("Contents", [])
        ]
        manifests = [key for key in keys if "/_manifests/" in key]
        hourly = [key for key in keys if key.endswith(".jsonl.gz") and "/day." not in key]
        assert manifests
        # (HeadObject, because moto answers GetObjectRetention with a 500)
        for key in manifests:
            head = s3.head_object(Bucket=locked_bucket, Key=key)
            assert head["ObjectLockMode"] == "COMPLIANCE"
            days_out = (head["ObjectLockRetainUntilDate"].timestamp() - time.time()) / 86_400
            assert 29 < days_out <= 30
        assert hourly
        assert "ObjectLockMode" not in s3.head_object(Bucket=locked_bucket, Key=hourly[0])
    handler.reset_for_tests()


def test_scheduled_verify_reads_only_its_window(aws: None) -> None:
    # Given an archived, sealed org and a tampered object dated well before the window
    handler.lambda_handler({}, FakeContext())
    handler.lambda_handler({"mode": "maintain"}, FakeContext())
    s3 = boto3.client("s3")
    old_key = f"di/org={DEMO_ORG_ID}/svc=sso/dt=2020-01-01/0000-0100.jsonl.gz"
    s3.put_object(Bucket=BUCKET, Key=old_key, Body=b"not gzip")
    # When the weekly verify runs over the last 35 days
    result = handler.lambda_handler({"mode": "verify", "days": 35}, FakeContext())
    # Then it passes, and a whole-archive verify finds the old object
    assert result["mode"] == "verify"
    with pytest.raises(ArchiverError, match="problem"):
        handler.lambda_handler({"mode": "verify"}, FakeContext())


def _last_emf(out: str) -> dict[str, Any]:
    documents = [json.loads(line) for line in out.splitlines() if '"_aws"' in line]
    assert documents, "Powertools should have flushed one EMF document"
    return documents[-1]


def test_rejected_key_counts_one_api_error_and_fails_the_run(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a secret holding a key JumpCloud does not accept
    boto3.client("secretsmanager").put_secret_value(
        SecretId=SECRET_ID, SecretString=json.dumps({"api_key": "not-the-right-key"})
    )
    # When the scheduled run starts
    with pytest.raises(ArchiverError):
        handler.lambda_handler({}, FakeContext())
    # Then the permanent error is an ApiError (it alarms), and the key appears nowhere
    out = capsys.readouterr().out
    metrics = _last_emf(out)
    assert metrics["ApiErrors"] in (1, 1.0, [1.0])
    assert metrics["RunFailed"] in (1, 1.0, [1.0])
    assert "not-the-right-key" not in out


def test_resnapshot_does_not_report_its_window_as_freshness_lag(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an archived org
    handler.lambda_handler({}, FakeContext())
    capsys.readouterr()
    # When an operator re-snapshots a window from hours ago
    now = time.time()
    event = {
        "mode": "resnapshot",
        "start": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now - 6 * 3600)),
        "end": time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now - 4 * 3600)),
    }
    handler.lambda_handler(event, FakeContext())
    # Then no freshness figure is emitted (the scheduled pass owns it), and nothing failed
    metrics = _last_emf(capsys.readouterr().out)
    assert "FreshnessLagSeconds" not in metrics
    assert metrics["ApiErrors"] in (0, 0.0, [0.0])
