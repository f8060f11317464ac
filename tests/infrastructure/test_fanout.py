"""The fan-out deployment (``fanOut``): FIFO work queue, worker, caps, DLQ, alarms, grants."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from infra.config import ConfigError

from .conftest import Synthesised

Synth = Callable[..., Synthesised]
FAN_OUT = {"fanOut": {"maxConcurrency": 5}, "rateLimitPerSecond": 10}


@pytest.fixture(scope="module")
def fanned(synth: Synth) -> Synthesised:
    return synth(**FAN_OUT)


def logical_id(s: Synthesised, construct: Any) -> str:
    return s.stack.get_logical_id(construct.node.default_child)


def functions(s: Synthesised) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in s.resources("AWS::Lambda::Function").items()}


def test_orgs_queue_on_a_fifo_queue_that_parks_repeated_failures(fanned: Synthesised) -> None:
    fan_out = fanned.stack.fan_out
    assert fan_out is not None
    queues = fanned.raw["Resources"]
    work = queues[logical_id(fanned, fan_out.queue)]["Properties"]
    dlq_id = logical_id(fanned, fan_out.dead_letter_queue)
    dlq = queues[dlq_id]["Properties"]
    # Then both queues are FIFO (one message group per org) and encrypted
    assert work["FifoQueue"] is True
    assert dlq["FifoQueue"] is True
    assert work["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True
    # And senders deduplicate explicitly (dispatch slot, continuation point)
    assert work.get("ContentBasedDeduplication") in (None, False)
    # And a message is parked after 3 failed receives, and stays invisible for 6 x 15 min
    assert work["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dlq_id, "Arn"]},
        "maxReceiveCount": 3,
    }
    assert work["VisibilityTimeout"] == 6 * 900


def test_the_worker_takes_one_org_at_a_time_with_a_concurrency_cap(fanned: Synthesised) -> None:
    fan_out = fanned.stack.fan_out
    assert fan_out is not None
    mapping = fanned.template.find_resources("AWS::Lambda::EventSourceMapping")
    (props,) = [m["Properties"] for m in mapping.values()]
    worker_id = logical_id(fanned, fan_out.worker)
    assert props["FunctionName"] == {"Ref": worker_id}
    assert props["EventSourceArn"] == {"Fn::GetAtt": [logical_id(fanned, fan_out.queue), "Arn"]}
    assert props["BatchSize"] == 1
    assert props["ScalingConfig"] == {"MaximumConcurrency": 5}
    # And each worker's rate is its share of the key's 10 requests/s (5 workers: 2/s each)
    worker = functions(fanned)[worker_id]
    env = worker["Environment"]["Variables"]
    assert env["DI_ARCHIVER_RATE_LIMIT_PER_SECOND"] == "2"
    assert env["DI_ARCHIVER_ORG_QUEUE_URL"] == {"Ref": logical_id(fanned, fan_out.queue)}
    # And it runs with the same Lambda defaults as the archiver, without a reserved pool
    assert worker["Runtime"] == "python3.13"
    assert worker["Architectures"] == ["arm64"]
    assert worker["Timeout"] == 900
    assert "ReservedConcurrentExecutions" not in worker


def test_the_schedule_dispatches_instead_of_archiving(
    fanned: Synthesised, default: Synthesised
) -> None:
    fan_out = fanned.stack.fan_out
    assert fan_out is not None
    modes = {
        json.loads(s["Properties"]["Target"]["Input"])["mode"]
        for s in fanned.resources("AWS::Scheduler::Schedule").values()
    }
    assert modes == {"dispatch", "reconcile", "maintain", "verify"}
    archiver = functions(fanned)[logical_id(fanned, fanned.stack.archiver.function)]
    assert archiver["Environment"]["Variables"]["DI_ARCHIVER_ORG_QUEUE_URL"] == {
        "Ref": logical_id(fanned, fan_out.queue)
    }
    assert archiver["ReservedConcurrentExecutions"] == 1
    # And without fanOut nothing of this exists: one function (beside the seal and verify
    # functions) archives every org
    assert default.stack.fan_out is None
    assert not default.template.find_resources("AWS::Lambda::EventSourceMapping")
    assert len(default.resources("AWS::Lambda::Function")) == 3


def test_queue_grants_are_least_privilege(fanned: Synthesised) -> None:
    fan_out = fanned.stack.fan_out
    assert fan_out is not None
    work = json.dumps({"Fn::GetAtt": [logical_id(fanned, fan_out.queue), "Arn"]})
    failures = json.dumps(
        {"Fn::GetAtt": [logical_id(fanned, fanned.stack.archiver.dead_letter_queue), "Arn"]}
    )
    # Given every (SQS action, resource) pair any role may use
    granted: set[tuple[str, str]] = set()
    for policy in fanned.resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            for action in _actions(st):
                if action.startswith("sqs:"):
                    granted |= {(action, json.dumps(r)) for r in resources}
    # Then work messages can be sent (dispatch, continuation), received and deleted (worker)
    assert {
        ("sqs:SendMessage", work),
        ("sqs:ReceiveMessage", work),
        ("sqs:DeleteMessage", work),
    } <= granted
    # And nothing else: only the work queue and the archiver's own failure queue, no wildcards,
    # no queue administration, and the parked-work DLQ is untouchable by the functions
    assert {resource for _, resource in granted} <= {work, failures}
    assert {action for action, resource in granted if resource == failures} <= {
        "sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl",
    }  # fmt: skip
    assert not {a for a, _ in granted} & {"sqs:*", "sqs:PurgeQueue", "sqs:DeleteQueue"}


def test_alarms_cover_worker_errors_parked_orgs_and_waiting_orgs(fanned: Synthesised) -> None:
    fan_out = fanned.stack.fan_out
    assert fan_out is not None
    alarms = fanned.resources("AWS::CloudWatch::Alarm")
    topic = {"Ref": logical_id(fanned, fanned.stack.monitoring.topic)}
    by_id = {
        name: alarms[logical_id(fanned, alarm)]["Properties"]
        for name, alarm in fan_out.alarms.items()
    }
    assert set(by_id) == {"WorkerErrors", "WorkDeadLetters", "WorkQueueAge"}
    assert by_id["WorkDeadLetters"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert by_id["WorkDeadLetters"]["Dimensions"] == [
        {
            "Name": "QueueName",
            "Value": {"Fn::GetAtt": [logical_id(fanned, fan_out.dead_letter_queue), "QueueName"]},
        }
    ]
    assert by_id["WorkQueueAge"]["MetricName"] == "ApproximateAgeOfOldestMessage"
    assert by_id["WorkQueueAge"]["Threshold"] == fanned.stack.config.freshness_threshold_seconds
    assert by_id["WorkerErrors"]["MetricName"] == "Errors"
    for props in by_id.values():
        assert props["AlarmActions"] == [topic]


def test_fan_out_needs_at_least_two_workers(tmp_path: Any) -> None:
    from .conftest import cdk_json_context, synthesise

    with pytest.raises(ConfigError, match="fanOut"):
        synthesise({**cdk_json_context(), "fanOut": {"maxConcurrency": 1}}, tmp_path)


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)
