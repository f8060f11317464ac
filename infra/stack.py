"""The di-archiver stack: composes the constructs and owns every grant, cdk-nag note and output."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import Acknowledgment, Annotations, App, CfnOutput, Duration, Stack, Token, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from di_archiver.observability import Mode
from di_archiver.settings import settings_env_names
from infra.config import LOG_RETENTION_DAYS, NOT_QUERYABLE, DeploymentConfig
from infra.constructs.archive_bucket import ArchiveBucket
from infra.constructs.archiver_function import ArchiverFunction
from infra.constructs.fanout import FanOut
from infra.constructs.monitoring import Monitoring
from infra.constructs.query import QueryConstruct

PLACEHOLDER_NOTE = (
    "Placeholder, not a credential: put the JumpCloud credential here (see README, Deploy)."
)

# CDK names retention periods (ONE_DAY ... TEN_YEARS) in the order CloudWatch lists the days.
_LOG_RETENTION = dict(
    zip(
        LOG_RETENTION_DAYS,
        [member for member in logs.RetentionDays if member is not logs.RetentionDays.INFINITE],
        strict=True,
    )
)


class ArchiverStack(Stack):
    """Archive bucket + credential secret + archiver function + monitoring (+ query, later)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        code: lambda_.Code | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config

        self.archive = ArchiveBucket(
            self,
            "Archive",
            archive_prefix=config.archive_prefix,
            kms_encryption=config.encryption == "kms",
            versioned=config.versioning,
            retention_days=config.retention_days,
            transitions=config.transitions,
            noncurrent_days=config.noncurrent_days,
            object_lock=config.object_lock,
            access_logging=config.access_logging,
            access_log_retention_days=config.access_log_retention_days,
        )
        key = self.archive.key
        self.secret = secretsmanager.Secret(
            self,
            "Credential",
            description="di-archiver: JumpCloud credential (JSON); see the README to set it",
            encryption_key=key,
            # A generated placeholder so no value ever sits in the template or a parameter.
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template=json.dumps({"note": PLACEHOLDER_NOTE}),
                generate_string_key="placeholder",
                exclude_punctuation=True,
            ),
        )
        Validations.of(self.secret).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-SMG4",
                reason="A JumpCloud API key cannot be rotated by a Lambda; rotate it in JumpCloud.",
            )
        )

        settings = config.runtime_settings(
            archive_bucket=self.archive.bucket.bucket_name,
            kms_key_id=key.key_arn if key else None,
            secret_id=self.secret.secret_arn,
        )
        env_names = settings_env_names()
        environment = {
            env_names[name]: _env_value(value)
            for name, value in settings.model_dump(exclude_unset=True).items()
            if value is not None
        }
        self.archiver = ArchiverFunction(
            self,
            "Archiver",
            environment=environment,
            memory_size=config.memory_size,
            log_retention=_LOG_RETENTION[config.log_retention_days],
            schedule=config.schedule,
            maintain_schedule=config.maintain_schedule,
            verify_schedule=config.verify_schedule,
            verify_days=config.verify_days,
            code=code,
            archive_mode=Mode.DISPATCH if config.fan_out is not None else Mode.ARCHIVE,
        )
        self._grant_archiver()

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function=self.archiver.function,
            dead_letter_queue=self.archiver.dead_letter_queue,
            schedule_period=Duration.seconds(config.schedule_seconds),
            missed_runs_periods=config.missed_runs_alarm_periods,
            freshness_threshold_seconds=config.freshness_threshold_seconds,
            alarm_email=config.alarm_email,
        )

        self.fan_out: FanOut | None = None
        if config.fan_out is not None:
            self.fan_out = FanOut(
                self,
                "FanOut",
                code=self.archiver.code,
                role=self.archiver.role,
                environment=environment,
                memory_size=config.memory_size,
                log_retention=_LOG_RETENTION[config.log_retention_days],
                max_concurrency=config.fan_out.max_concurrency,
                worker_rate_per_second=config.worker_rate_per_second,
                alarm_topic=self.monitoring.topic,
                max_message_age=Duration.seconds(config.freshness_threshold_seconds),
            )
            # The dispatcher (the scheduled archiver) needs the queue it fills.
            self.archiver.function.add_environment(
                env_names["org_queue_url"], self.fan_out.queue.queue_url
            )

        self.query = QueryConstruct(
            self,
            "Query",
            archive_bucket=self.archive.bucket,
            archive_prefix=config.archive_prefix,
            org_ids=config.org_ids,
            services=config.extra_services,
            kms_key=key,
            bytes_scanned_cutoff=config.athena_bytes_scanned_cutoff,
            results_access_logs_bucket=self.archive.access_log_bucket,
        )

        hidden = sorted(NOT_QUERYABLE & set(config.transitions))
        if hidden:
            Annotations.of(self).add_warning_v2(
                "di-archiver:not-queryable",
                f"transitions to {', '.join(hidden)}: Athena cannot read objects in these "
                "classes until they are restored",
            )
        self._outputs()

    def _grant_archiver(self) -> None:
        """Least privilege: the archive prefix, this key, this secret, the checkpoint path."""
        role = self.archiver.role
        bucket = self.archive.bucket
        prefix = self.config.archive_prefix
        # AbortMultipartUpload: sealed days of large orgs are uploaded in parts.
        object_actions = [
            "s3:GetObject",
            "s3:PutObject",
            "s3:DeleteObject",
            "s3:AbortMultipartUpload",
        ]
        if self.config.object_lock:
            object_actions.append("s3:PutObjectRetention")
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ArchiveObjects",
                actions=object_actions,
                resources=[bucket.arn_for_objects(f"{prefix}/*")],
            )
        )
        # Unconditioned on purpose: without s3:ListBucket that applies to HEAD/GET requests
        # (which carry no s3:prefix), S3 answers a missing key with 403 instead of 404, and the
        # store could no longer tell "not written yet" from "access denied". The bucket holds
        # nothing but the archive (access logs live in their own bucket).
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ArchiveListing", actions=["s3:ListBucket"], resources=[bucket.bucket_arn]
            )
        )
        if self.archive.key is not None:
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ArchiveKey",
                    actions=["kms:Decrypt", "kms:GenerateDataKey"],
                    resources=[self.archive.key.key_arn],
                )
            )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="Credential",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.secret.secret_arn],
            )
        )
        parameter_path = self.config.checkpoint_path
        role.add_to_policy(
            iam.PolicyStatement(
                sid="Checkpoints",
                actions=["ssm:GetParameter", "ssm:PutParameter"],
                resources=[
                    self.format_arn(
                        service="ssm", resource="parameter", resource_name=f"{parameter_path[1:]}/*"
                    )
                ],
            )
        )
        object_wildcard = f"Resource::<{self.get_logical_id(_cfn(bucket))}.Arn>/{prefix}/*"
        # cdk-nag renders unresolved tokens as <AWS::...> and concrete env values literally.
        region = "<AWS::Region>" if Token.is_unresolved(self.region) else self.region
        account = "<AWS::AccountId>" if Token.is_unresolved(self.account) else self.account
        parameter_wildcard = (
            f"Resource::arn:<AWS::Partition>:ssm:{region}:{account}:parameter{parameter_path}/*"
        )
        Validations.of(role).acknowledge(
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[{object_wildcard}]",
                reason="Object keys are per time bucket and unknowable at deploy time; the "
                "statement is limited to the archive prefix.",
            ),
            Acknowledgment(
                id=f"AwsSolutions::AwsSolutions-IAM5[{parameter_wildcard}]",
                reason="One checkpoint parameter per org under one dedicated path; listing "
                "hundreds of org ARNs would exceed the IAM policy size limit.",
            ),
        )

    def _outputs(self) -> None:
        outputs: dict[str, tuple[str, str]] = {
            "ArchiveBucketName": (self.archive.bucket.bucket_name, "Archive bucket"),
            "SecretArn": (self.secret.secret_arn, "Put the JumpCloud credential here"),
            "SecretName": (self.secret.secret_name, "Credential secret name"),
            "FunctionName": (self.archiver.function.function_name, "Archiver function"),
            "DeadLetterQueueUrl": (self.archiver.dead_letter_queue.queue_url, "Failed runs"),
            "AlarmTopicArn": (self.monitoring.topic.topic_arn, "Subscribe here for alarms"),
            "DashboardName": (self.monitoring.dashboard.dashboard_name, "CloudWatch dashboard"),
            "AthenaWorkgroup": (self.query.workgroup_name, "Athena workgroup for the archive"),
            "GlueDatabase": (self.query.database_name, "Glue database of the archive tables"),
            "EventsView": (
                f"{self.query.database_name}.{self.query.view_name}",
                "Query this view (timestamp typed, partitions org/svc/dt)",
            ),
            "AthenaResultsBucket": (self.query.results_bucket.bucket_name, "Query results"),
        }
        if self.archive.access_log_bucket is not None:
            outputs["AccessLogBucketName"] = (
                self.archive.access_log_bucket.bucket_name,
                "S3 server access logs of the archive bucket",
            )
        if self.fan_out is not None:
            outputs["WorkQueueUrl"] = (self.fan_out.queue.queue_url, "Per-org work (fan-out)")
            outputs["WorkDeadLetterQueueUrl"] = (
                self.fan_out.dead_letter_queue.queue_url,
                "Org work that failed repeatedly",
            )
            outputs["WorkerFunctionName"] = (self.fan_out.worker.function_name, "Fan-out worker")
        if self.archive.key is not None:
            outputs["ArchiveKeyArn"] = (self.archive.key.key_arn, "Archive KMS key")
        for name, (value, description) in outputs.items():
            CfnOutput(self, name, value=value, description=description)


def _cfn(bucket: Any) -> Any:
    return bucket.node.default_child


def _env_value(value: object) -> str:
    if isinstance(value, tuple | list):
        return ",".join(str(item) for item in value)
    return str(value)


def apply_nag(app: App) -> None:
    """Check the whole app against cdk-nag's AWS Solutions rules (synth fails on findings)."""
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
