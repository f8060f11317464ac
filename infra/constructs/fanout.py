"""Fan-out for many orgs (an MSP): an SQS FIFO work queue, a worker function, its DLQ and alarms.

The archiver function's schedule dispatches (``{"mode": "dispatch"}``): it enqueues one
``{"mode": "archive", "org_id": ...}`` message per org. The worker consumes them one per
invocation. Why this shape:

* ``MessageGroupId = org`` on a FIFO queue: SQS hands out an org's next message only after the
  previous one was deleted (its run finished), so one org never runs twice at once, while
  different orgs run in parallel, up to the event source's ``MaximumConcurrency``;
* the per-key rate limit holds across concurrent invocations because each worker gets
  ``rateLimitPerSecond / maxConcurrency`` requests/s (a cap derived from the limit; no shared
  state to keep consistent), and at most ``maxConcurrency`` workers run;
* a message whose org keeps failing moves to a FIFO dead-letter queue after
  ``MAX_RECEIVES`` attempts and raises an alarm; so does an old message (orgs waiting long).

Grants on the archive, key, secret and checkpoints are wired by the stack (the worker shares
the archiver's role: it does the same job, for one org).
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs.archiver_function import LAMBDA_DEFAULTS, build_function

# An org whose run fails this often in a row is parked in the dead-letter queue (and alarms).
MAX_RECEIVES = 3
# AWS guidance for Lambda's SQS event source: visibility >= 6 x the function timeout, so a
# message is not handed out again while a (retried) invocation may still be working on it.
VISIBILITY_TIMEOUT = Duration.seconds(6 * int(LAMBDA_DEFAULTS.timeout.to_seconds()))
QUEUE_RETENTION = Duration.days(4)
DLQ_RETENTION = Duration.days(14)
ALARM_PERIOD = Duration.minutes(15)


class FanOut(Construct):
    """Work queue (FIFO, one group per org) + worker function + dead-letter queue + alarms."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        role: iam.IRole,
        environment: Mapping[str, str],
        memory_size: int,
        log_retention: logs.RetentionDays,
        max_concurrency: int,
        worker_rate_per_second: float,
        alarm_topic: sns.ITopic,
        max_message_age: Duration,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            fifo=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=DLQ_RETENTION,
        )
        Validations.of(self.dead_letter_queue).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SQS3",
                reason="This queue is the work queue's dead-letter queue.",
            )
        )
        self.queue = sqs.Queue(
            self,
            "WorkQueue",
            fifo=True,
            # The sender sets MessageDeduplicationId (dispatch slot, continuation point).
            content_based_deduplication=False,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=VISIBILITY_TIMEOUT,
            retention_period=QUEUE_RETENTION,
            dead_letter_queue=sqs.DeadLetterQueue(
                max_receive_count=MAX_RECEIVES, queue=self.dead_letter_queue
            ),
        )
        self.log_group = logs.LogGroup(
            self, "LogGroup", retention=log_retention, removal_policy=RemovalPolicy.DESTROY
        )
        self.log_group.grant_write(role)
        self.worker = build_function(
            self,
            "Worker",
            code=code,
            role=role,
            log_group=self.log_group,
            memory_size=memory_size,
            environment={
                **environment,
                "DI_ARCHIVER_ORG_QUEUE_URL": self.queue.queue_url,
                "DI_ARCHIVER_RATE_LIMIT_PER_SECOND": _rate_text(worker_rate_per_second),
            },
            description="di-archiver: archives one org per queued message (fan-out worker)",
        )
        self.worker.add_event_source(
            sources.SqsEventSource(self.queue, batch_size=1, max_concurrency=max_concurrency)
        )
        # Continuations: a worker that ran out of time queues its org again.
        self.queue.grant_send_messages(role)

        self.alarms: dict[str, cloudwatch.Alarm] = {}
        self._alarm(
            "WorkerErrors",
            self.worker.metric_errors(period=ALARM_PERIOD, statistic="Sum"),
            0,
            "A fan-out worker raised an error (the org's message is retried, then parked).",
        )
        self._alarm(
            "WorkDeadLetters",
            self.dead_letter_queue.metric_approximate_number_of_messages_visible(
                period=ALARM_PERIOD, statistic="Maximum"
            ),
            0,
            f"An org's work message failed {MAX_RECEIVES} times and was parked in the DLQ.",
        )
        self._alarm(
            "WorkQueueAge",
            self.queue.metric_approximate_age_of_oldest_message(
                period=ALARM_PERIOD, statistic="Maximum"
            ),
            max_message_age.to_seconds(),
            "Orgs wait longer than expected for a worker: raise maxConcurrency (and check the "
            "key's rate limit) or lengthen the schedule.",
        )
        for alarm in self.alarms.values():
            alarm.add_alarm_action(actions.SnsAction(alarm_topic))
            alarm.add_ok_action(actions.SnsAction(alarm_topic))

    def _alarm(
        self, construct_id: str, metric: cloudwatch.IMetric, threshold: float, description: str
    ) -> None:
        self.alarms[construct_id] = cloudwatch.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            alarm_description=f"di-archiver: {description}",
        )


def _rate_text(rate: float) -> str:
    return f"{rate:.6g}"
