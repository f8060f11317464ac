"""One di-archiver Lambda (one duty, its own role and log group), its schedules and DLQ.

The stack builds three from the same code: the archive function (talks to DI), the seal
function (seals, signs, publishes heads) and the verify function (reads only). Lambda defaults
live in ``LAMBDA_DEFAULTS`` and nowhere else. Permissions on the bucket, keys, secret and
parameters are NOT granted here: the stack wires them, so all of them read in one place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as targets
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from di_archiver.observability import METRICS_NAMESPACE, SERVICE_NAME, Mode
from di_archiver.process_env import ALLOCATOR_ENV
from infra.bundling import PROJECT_ROOT, bundling_options


@dataclass(frozen=True, kw_only=True)
class LambdaDefaults:
    """The one definition of how di-archiver functions run."""

    runtime: lambda_.Runtime
    architecture: lambda_.Architecture
    timeout: Duration
    tracing: lambda_.Tracing
    logging_format: lambda_.LoggingFormat
    application_log_level: lambda_.ApplicationLogLevel
    handler: str


LAMBDA_DEFAULTS = LambdaDefaults(
    # Pinned (not "latest") so the wheels bundled for it match: see infra/bundling.py.
    runtime=lambda_.Runtime.PYTHON_3_13,
    architecture=lambda_.Architecture.ARM_64,
    timeout=Duration.minutes(15),
    tracing=lambda_.Tracing.ACTIVE,
    logging_format=lambda_.LoggingFormat.JSON,
    application_log_level=lambda_.ApplicationLogLevel.INFO,
    handler="di_archiver.handler.lambda_handler",
)


def build_function(
    scope: Construct,
    construct_id: str,
    *,
    code: lambda_.Code,
    role: iam.IRole,
    log_group: logs.ILogGroup,
    memory_size: int,
    environment: Mapping[str, str],
    description: str,
    **options: Any,
) -> lambda_.Function:
    """A di-archiver function with ``LAMBDA_DEFAULTS`` (every function is built here)."""
    defaults = LAMBDA_DEFAULTS
    function = lambda_.Function(
        scope,
        construct_id,
        runtime=defaults.runtime,
        architecture=defaults.architecture,
        handler=defaults.handler,
        code=code,
        memory_size=memory_size,
        timeout=defaults.timeout,
        tracing=defaults.tracing,
        logging_format=defaults.logging_format,
        application_log_level_v2=defaults.application_log_level,
        system_log_level_v2=lambda_.SystemLogLevel.WARN,
        log_group=log_group,
        role=role,
        environment={
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
            **ALLOCATOR_ENV,
            **environment,
        },
        description=description,
        **options,
    )
    Validations.of(function).acknowledge(
        Acknowledgment(
            id="AwsSolutions::AwsSolutions-L1",
            reason="Runtime pinned on purpose: bundled wheels are built for this version.",
        )
    )
    return function


ASYNC_RETRY_ATTEMPTS = 2
# Throttled invocations (a run is still going: reserved concurrency 1) wait this long in
# Lambda's async queue before they count as failed; a later run catches up regardless.
MAX_EVENT_AGE = Duration.hours(1)
DLQ_RETENTION = Duration.days(14)


@dataclass(frozen=True, kw_only=True)
class ScheduleSpec:
    """One EventBridge Scheduler schedule invoking the function with ``{"mode": mode, ...}``."""

    construct_id: str
    expression: str
    mode: Mode
    options: Mapping[str, object] = field(default_factory=dict)


class ArchiverFunction(Construct):
    """One di-archiver function (reserved concurrency 1: one run at a time) and its triggers."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        environment: Mapping[str, str],
        memory_size: int,
        log_retention: logs.RetentionDays,
        schedules: Sequence[ScheduleSpec],
        description: str,
        dead_letter_queue: sqs.Queue | None = None,
        code: lambda_.Code | None = None,
    ) -> None:
        super().__init__(scope, construct_id)

        if dead_letter_queue is None:
            dead_letter_queue = sqs.Queue(
                self,
                "DeadLetterQueue",
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                retention_period=DLQ_RETENTION,
            )
            Validations.of(dead_letter_queue).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-SQS3",
                    reason="This queue is the dead-letter queue (Lambda on-failure, Scheduler).",
                )
            )
        self.dead_letter_queue = dead_letter_queue

        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        # An explicit role instead of AWSLambdaBasicExecutionRole: logs go to one log group only.
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"di-archiver: {description}",
        )
        self.log_group.grant_write(self.role)

        self.code = code or self.bundled_code()
        self.function = build_function(
            self,
            "Function",
            code=self.code,
            role=self.role,
            log_group=self.log_group,
            memory_size=memory_size,
            environment=environment,
            reserved_concurrent_executions=1,
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.dead_letter_queue),
            description=f"di-archiver: {description}",
        )
        Validations.of(self.role).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-IAM5[Resource::*]",
                reason="X-Ray PutTraceSegments/PutTelemetryRecords support no resource scoping.",
            )
        )

        stack = Stack.of(self)
        self.scheduler_role = iam.Role(
            self,
            "SchedulerRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            ),
            description=f"di-archiver: EventBridge Scheduler invokes the {construct_id} function",
        )
        function_id = stack.get_logical_id(self.function.node.default_child)  # type: ignore[arg-type]
        Validations.of(self.scheduler_role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[Resource::<{function_id}.Arn>:*]",
                reason="Scheduler's Lambda target grants invoke on the function and its versions.",
            )
        )
        self.schedules = {
            spec.construct_id: self._schedule(
                spec.construct_id, spec.expression, spec.mode, **spec.options
            )
            for spec in schedules
        }

    @staticmethod
    def bundled_code() -> lambda_.Code:
        """The runtime package and its locked arm64 dependencies, bundled without Docker."""
        return lambda_.Code.from_asset(
            str(Path(PROJECT_ROOT) / "lambda"),
            exclude=["**/__pycache__", "**/*.pyc"],
            bundling=bundling_options(image=LAMBDA_DEFAULTS.runtime.bundling_image),
        )

    def _schedule(
        self, construct_id: str, expression: str, mode: Mode, **options: object
    ) -> scheduler.Schedule:
        target = targets.LambdaInvoke(
            self.function,
            input=scheduler.ScheduleTargetInput.from_text(
                json.dumps({"mode": str(mode), **options})
            ),
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
            role=self.scheduler_role,
        )
        return scheduler.Schedule(
            self,
            construct_id,
            schedule=scheduler.ScheduleExpression.expression(expression),
            target=target,
            description=f"di-archiver: {mode} run",
        )
