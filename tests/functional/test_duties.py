"""Each deployed function does its own duty only: the seal and verify roles never reach DI."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from di_archiver.adapters.heads import EVENT_DETAIL_TYPE, EventBridgeHeadPublisher
from di_archiver.adapters.signing import LocalKeySigner
from di_archiver.errors import SettingsError
from di_archiver.handler import check_duty
from di_archiver.invocation import parse_invocation
from di_archiver.settings import ArchiverSettings
from di_archiver.wiring import build_runtime

ORG = "64a0c0ffee0000000000a001"


def settings(tmp_path: Path, **values: object) -> ArchiverSettings:
    return ArchiverSettings.build(
        {
            "org_ids": [ORG],
            "archive_dir": str(tmp_path / "archive"),
            "checkpoint_file": str(tmp_path / "checkpoints.json"),
            **values,
        }
    )


@pytest.mark.parametrize(
    ("duty", "allowed", "refused"),
    [
        ("archive", ["archive", "reconcile"], ["maintain", "verify"]),
        ("seal", ["maintain"], ["archive", "reconcile", "verify"]),
        ("verify", ["verify"], ["archive", "maintain", "reconcile"]),
    ],
)
def test_a_function_refuses_modes_outside_its_duty(
    tmp_path: Path, duty: str, allowed: list[str], refused: list[str]
) -> None:
    key = tmp_path / "seal.pem"
    LocalKeySigner.generate(key)
    configured = settings(tmp_path, duty=duty, signing_key_file=str(key))
    for mode in allowed:
        check_duty(parse_invocation({"mode": mode}), configured)
    for mode in refused:
        with pytest.raises(SettingsError, match="invoke the function whose role does it"):
            check_duty(parse_invocation({"mode": mode}), configured)


def test_seal_duty_needs_a_signing_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="signing_key_id"):
        settings(tmp_path, duty="seal")


def test_seal_runtime_signs_and_never_reaches_di(tmp_path: Path) -> None:
    # Given the seal duty with no DI credential anywhere
    key = tmp_path / "seal.pem"
    signer = LocalKeySigner.generate(key)
    runtime = build_runtime(settings(tmp_path, duty="seal", signing_key_file=str(key)))
    # Then it was built without a credential, signs with the key, and maintains without DI
    ports = runtime.maintenance_ports
    assert ports.source is None
    assert ports.snapshotter is None
    assert ports.signer is not None
    assert ports.signer.fingerprint == signer.fingerprint
    # And the archive duty never gets a signer
    archive = build_runtime(
        settings(tmp_path, duty="archive", signing_key_file=str(key)),
        source=ports.store,  # type: ignore[arg-type]
    )
    assert archive.signer is None


def test_heads_are_published_as_eventbridge_events() -> None:
    with mock_aws():
        events = boto3.client("events", region_name="us-east-1")
        logs = boto3.client("logs", region_name="us-east-1")
        logs.create_log_group(logGroupName="/heads")
        group_arn = "arn:aws:logs:us-east-1:123456789012:log-group:/heads"
        events.put_rule(Name="heads", EventPattern=json.dumps({"source": ["di-archiver"]}))
        events.put_targets(Rule="heads", Targets=[{"Id": "log", "Arn": group_arn}])
        head = {"org": ORG, "day": "2026-05-01", "manifest_sha256": "ab" * 32}

        EventBridgeHeadPublisher("default", events_client=events).publish(head)

        [stream] = logs.describe_log_streams(logGroupName="/heads")["logStreams"]
        [event] = logs.get_log_events(logGroupName="/heads", logStreamName=stream["logStreamName"])[
            "events"
        ]
        published = json.loads(event["message"])
        assert published["detail-type"] == EVENT_DETAIL_TYPE
        assert published["detail"] == head
