"""Fan-out for many orgs: dispatch onto an SQS FIFO queue (moto), workers archive one org each.

The real ``lambda_handler`` runs every step: a ``dispatch`` invocation, then one invocation per
queued message in the SQS event shape Lambda's event source delivers, against the simulator
(three orgs behind one MSP key) and moto's S3, SSM, Secrets Manager and SQS.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from di_archiver import handler
from di_archiver.errors import SettingsError
from di_archiver.simulator import OrgSpec, Simulator, SimulatorConfig

from .lambda_context import FakeContext

BUCKET = "di-archive-fanout"
SECRET_ID = "di-archiver/msp"
PREFIX = "/di-archiver/fanout"
KEY = "msp-key"
ORGS = ("64a0c0ffee0000000000f001", "64a0c0ffee0000000000f002", "64a0c0ffee0000000000f003")


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    sim = Simulator(
        SimulatorConfig.quiet(
            orgs=tuple(OrgSpec(org_id=org, event_count=600) for org in ORGS),
            span_seconds=43_200.0,
            api_keys={KEY: ORGS[0]},
        )
    )
    with sim.serve(port=0) as server:
        yield server.base_url


@pytest.fixture
def queue_url(monkeypatch: pytest.MonkeyPatch, base_url: str) -> Iterator[str]:
    with mock_aws():
        url = boto3.client("sqs").create_queue(
            QueueName="org-work.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("secretsmanager").create_secret(
            Name=SECRET_ID, SecretString=json.dumps({"api_key": KEY})
        )
        env = {
            "DI_ARCHIVER_ORG_IDS": ",".join(ORGS),
            "DI_ARCHIVER_ARCHIVE_BUCKET": BUCKET,
            "DI_ARCHIVER_SECRET_ID": SECRET_ID,
            "DI_ARCHIVER_BASE_URL": base_url,
            "DI_ARCHIVER_LOOKBACK_DAYS": "1",
            "DI_ARCHIVER_CHECKPOINT_PARAMETER_PREFIX": PREFIX,
            "DI_ARCHIVER_RATE_LIMIT_PER_SECOND": "1000",
            "DI_ARCHIVER_ORG_QUEUE_URL": url,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        handler.reset_for_tests()
        yield url
    handler.reset_for_tests()


def receive_all(url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], VisibilityTimeout=60
        ).get("Messages", [])
        if not batch:
            return found
        found.extend(batch)


def sqs_event(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "eventSource": "aws:sqs",
                "body": message["Body"],
                "attributes": message["Attributes"],
            }
        ]
    }


def checkpoint(org: str) -> str | None:
    ssm = boto3.client("ssm")
    try:
        return str(ssm.get_parameter(Name=f"{PREFIX}/{org}")["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None


def archived_orgs() -> set[str]:
    keys = [
        item["Key"]
        for page in boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
        for item in page.get("Contents", [])
    ]
    return {key.split("/")[1].removeprefix("org=") for key in keys}


def test_dispatch_queues_one_message_per_org_and_workers_archive_each(
    queue_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given three orgs behind one key and an empty FIFO work queue
    monkeypatch.setattr(handler, "clock", lambda: 1_800_000_000 * 10**9)
    # When the dispatch schedule fires, twice within the same minute (a retried invocation)
    first = handler.lambda_handler({"mode": "dispatch"}, FakeContext())
    handler.lambda_handler({"mode": "dispatch"}, FakeContext())
    # Then exactly one archive message per org is queued, each in the org's own message group
    messages = receive_all(queue_url)
    assert first == {"mode": "dispatch", "orgs_dispatched": 3}
    assert sorted(m["Attributes"]["MessageGroupId"] for m in messages) == sorted(ORGS)
    assert sorted(json.loads(m["Body"])["org_id"] for m in messages) == sorted(ORGS)
    assert all(json.loads(m["Body"])["mode"] == "archive" for m in messages)
    # When a worker invocation handles each message (as the SQS event source delivers it)
    results = [handler.lambda_handler(sqs_event(m), FakeContext()) for m in messages]
    # Then each archived exactly its own org and checkpointed it, with nothing re-queued
    assert [r["orgs"] for r in results] == [1, 1, 1]
    assert all(r["events"] > 0 and not r["stopped_early"] for r in results)
    assert archived_orgs() == set(ORGS)
    assert all(checkpoint(org) is not None for org in ORGS)
    for message in messages:
        boto3.client("sqs").delete_message(
            QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"]
        )
    assert receive_all(queue_url) == []


def test_an_org_out_of_time_re_enqueues_itself_to_continue(queue_url: str) -> None:
    # Given a worker invocation with less time left than the run's reserve (60 s)
    body = json.dumps({"mode": "archive", "org_id": ORGS[1]})
    event = {"Records": [{"eventSource": "aws:sqs", "body": body}]}
    # When it handles the org's message
    result = handler.lambda_handler(event, FakeContext(remaining_ms=30_000))
    # Then nothing was fetched, the run stopped early, and the org is queued again at once
    assert result["stopped_early"]
    (again,) = receive_all(queue_url)
    assert again["Attributes"]["MessageGroupId"] == ORGS[1]
    assert json.loads(again["Body"]) == {"mode": "archive", "org_id": ORGS[1]}
    # And the continuation is processed like any queued message, archiving the org
    result = handler.lambda_handler(sqs_event(again), FakeContext())
    assert not result["stopped_early"]
    assert ORGS[1] in archived_orgs()


def test_a_queued_org_that_is_not_configured_is_refused(queue_url: str) -> None:
    body = json.dumps({"mode": "archive", "org_id": "64a0c0ffee0000000000dead"})
    with pytest.raises(SettingsError, match="not one of the configured"):
        handler.lambda_handler({"Records": [{"body": body}]}, FakeContext())
    assert receive_all(queue_url) == []


def test_an_sqs_batch_of_more_than_one_is_refused(queue_url: str) -> None:
    record = {"body": json.dumps({"mode": "archive", "org_id": ORGS[0]})}
    with pytest.raises(SettingsError, match="batch size to 1"):
        handler.lambda_handler({"Records": [record, record]}, FakeContext())
