"""The di-archiver stack: composes the constructs and owns every grant, cdk-nag note and output."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk import (
    Acknowledgment,
    Annotations,
    App,
    CfnOutput,
    Duration,
    RemovalPolicy,
    Stack,
    Token,
    Validations,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from cdk_nag import AwsSolutionsChecks
from constructs import Construct

from di_archiver.observability import Mode
from di_archiver.settings import Duty, settings_env_names
from infra.config import LOG_RETENTION_DAYS, NOT_QUERYABLE, DeploymentConfig
from infra.constructs.archive_bucket import ArchiveBucket
from infra.constructs.archiver_function import ArchiverFunction, ScheduleSpec
from infra.constructs.fanout import FanOut
from infra.constructs.monitoring import Monitoring
from infra.constructs.query import QueryConstruct

# The key layout in IAM resource patterns ('*' also spans '/', '?' is one character).
HOURLY_OBJECT_PATTERN = "org=*/svc=*/dt=*/????-????.jsonl.gz"
# A bucket re-read after its day was sealed is staged here for the seal role to merge and sign.
LATE_OBJECT_PATTERN = "_late/org=*/dt=*/svc=*/????-????.jsonl.gz"
SEALED_PATTERNS = ("org=*/svc=*/dt=*/day.jsonl.gz", "_manifests/*")
SEALED_WRITE_ACTIONS = [
    "s3:PutObject",
    "s3:DeleteObject",
    "s3:DeleteObjectVersion",
    "s3:PutObjectRetention",
    "s3:BypassGovernanceRetention",
]

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
            noncurrent_days=config.noncurrent_version_days,
            object_lock=config.lock,
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

        # Signs day manifests; only the seal role may use it (see _grant_roles and README).
        self.signing_key = kms.Key(
            self,
            "SigningKey",
            description="di-archiver: signs day manifests (seal function only)",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.head_bus_arn = self.format_arn(
            service="events", resource="event-bus", resource_name="default"
        )

        settings = config.runtime_settings(
            archive_bucket=self.archive.bucket.bucket_name,
            kms_key_id=key.key_arn if key else None,
            secret_id=self.secret.secret_arn,
        )
        env_names = settings_env_names()
        environment = {
            env_names[name]: _env_value(value)
            for name, value in settings.values(explicit_only=True).items()
            if value is not None
        }
        log_retention = _LOG_RETENTION[config.log_retention_days]
        # Three functions from one asset, one duty each: the role that parses DI's answers
        # cannot write sealed days or sign; sealing never talks to DI; verify only reads.
        archive_env = {
            name: value
            for name, value in environment.items()
            if name not in (env_names["object_lock_mode"], env_names["object_lock_days"])
        }
        archiver_env = {**archive_env, env_names["duty"]: Duty.ARCHIVE.value}
        self.archiver = ArchiverFunction(
            self,
            "Archiver",
            environment=archiver_env,
            memory_size=config.memory_size,
            log_retention=log_retention,
            schedules=[
                # With fan-out the schedule dispatches (one queued message per org) instead.
                ScheduleSpec(
                    construct_id="ArchiveSchedule",
                    expression=config.schedule,
                    mode=Mode.DISPATCH if config.fan_out is not None else Mode.ARCHIVE,
                ),
                ScheduleSpec(
                    construct_id="ReconcileSchedule",
                    expression=config.reconcile_schedule,
                    mode=Mode.RECONCILE,
                ),
            ],
            description="copies JumpCloud Directory Insights events to S3 (hourly objects)",
            code=code,
        )
        secret_name = env_names["secret_id"]
        sealed_env = {name: value for name, value in environment.items() if name != secret_name}
        self.sealer = ArchiverFunction(
            self,
            "Sealer",
            environment={
                **sealed_env,
                env_names["duty"]: Duty.SEAL.value,
                env_names["signing_key_id"]: self.signing_key.key_arn,
                env_names["head_event_bus"]: self.head_bus_arn,
            },
            memory_size=config.memory_size,
            log_retention=log_retention,
            schedules=[
                ScheduleSpec(
                    construct_id="MaintainSchedule",
                    expression=config.maintain_schedule,
                    mode=Mode.MAINTAIN,
                )
            ],
            description="seals closed days, signs their manifests, publishes heads",
            dead_letter_queue=self.archiver.dead_letter_queue,
            code=code,
        )
        self.verifier = ArchiverFunction(
            self,
            "Verifier",
            environment={
                **{name: value for name, value in archive_env.items() if name != secret_name},
                env_names["duty"]: Duty.VERIFY.value,
                env_names["signing_key_id"]: self.signing_key.key_arn,
            },
            memory_size=config.memory_size,
            log_retention=log_retention,
            schedules=[
                ScheduleSpec(
                    construct_id="VerifySchedule",
                    expression=config.verify_schedule,
                    mode=Mode.VERIFY,
                    options={"days": config.verify_days},
                )
            ],
            description="verifies hashes, chains and signatures (read-only)",
            dead_letter_queue=self.archiver.dead_letter_queue,
            code=code,
        )
        self._grant_roles()

        self.monitoring = Monitoring(
            self,
            "Monitoring",
            function=self.archiver.function,
            dead_letter_queue=self.archiver.dead_letter_queue,
            schedule_period=Duration.seconds(config.schedule_seconds),
            missed_runs_periods=config.missed_runs_alarm_periods,
            freshness_threshold_seconds=config.freshness_threshold_seconds,
            alarm_email=config.alarm_email,
            extra_functions={
                "Sealer": self.sealer.function,
                "Verifier": self.verifier.function,
            },
        )

        self.fan_out: FanOut | None = None
        if config.fan_out is not None:
            self.fan_out = FanOut(
                self,
                "FanOut",
                code=self.archiver.code,
                role=self.archiver.role,
                environment=archiver_env,
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

    def _grant_roles(self) -> None:
        """Least privilege per duty, on the key layout; the bucket policy backs it up.

        archive: read everything, write/delete hourly objects only (never day.jsonl.gz,
        manifests or certificates), no kms:Sign. seal: write and delete under the prefix,
        Object Lock retention, kms:Sign, publish heads; no DI credential. verify: read only.
        """
        bucket = self.archive.bucket
        prefix = self.config.archive_prefix
        everything = bucket.arn_for_objects(f"{prefix}/*")
        hourly = bucket.arn_for_objects(f"{prefix}/{HOURLY_OBJECT_PATTERN}")
        late = bucket.arn_for_objects(f"{prefix}/{LATE_OBJECT_PATTERN}")
        sealed = [bucket.arn_for_objects(f"{prefix}/{pattern}") for pattern in SEALED_PATTERNS]
        roles = {
            "archive": self.archiver.role,
            "seal": self.sealer.role,
            "verify": self.verifier.role,
        }
        for role in roles.values():
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ReadArchive", actions=["s3:GetObject"], resources=[everything]
                )
            )
            # Unconditioned on purpose: without s3:ListBucket, S3 answers a missing key with 403
            # instead of 404, and the store could no longer tell "absent" from "denied".
            role.add_to_policy(
                iam.PolicyStatement(
                    sid="ArchiveListing", actions=["s3:ListBucket"], resources=[bucket.bucket_arn]
                )
            )
            if self.archive.key is not None:
                role.add_to_policy(
                    iam.PolicyStatement(
                        sid="ArchiveKeyRead",
                        actions=["kms:Decrypt"],
                        resources=[self.archive.key.key_arn],
                    )
                )
        for role in (roles["archive"], roles["seal"]):
            if self.archive.key is not None:
                role.add_to_policy(
                    iam.PolicyStatement(
                        sid="ArchiveKeyWrite",
                        actions=["kms:GenerateDataKey"],
                        resources=[self.archive.key.key_arn],
                    )
                )
        # AbortMultipartUpload: large objects are uploaded in parts.
        roles["archive"].add_to_policy(
            iam.PolicyStatement(
                sid="WriteHourlyObjects",
                actions=["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                resources=[hourly, late],
            )
        )
        roles["archive"].add_to_policy(
            iam.PolicyStatement(
                sid="NeverSealedDays",
                effect=iam.Effect.DENY,
                actions=SEALED_WRITE_ACTIONS,
                resources=sealed,
            )
        )
        roles["archive"].add_to_policy(
            iam.PolicyStatement(
                sid="NeverSign",
                effect=iam.Effect.DENY,
                actions=["kms:Sign"],
                resources=[self.signing_key.key_arn],
            )
        )
        seal_actions = ["s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        if self.config.lock is not None:
            seal_actions.append("s3:PutObjectRetention")
        roles["seal"].add_to_policy(
            iam.PolicyStatement(sid="SealDays", actions=seal_actions, resources=[everything])
        )
        roles["seal"].add_to_policy(
            iam.PolicyStatement(
                sid="SignManifests",
                actions=["kms:Sign", "kms:GetPublicKey"],
                resources=[self.signing_key.key_arn],
            )
        )
        roles["seal"].add_to_policy(
            iam.PolicyStatement(
                sid="PublishHeads", actions=["events:PutEvents"], resources=[self.head_bus_arn]
            )
        )
        roles["verify"].add_to_policy(
            iam.PolicyStatement(
                sid="VerifySignatures",
                actions=["kms:GetPublicKey"],
                resources=[self.signing_key.key_arn],
            )
        )
        roles["archive"].add_to_policy(
            iam.PolicyStatement(
                sid="Credential",
                actions=["secretsmanager:GetSecretValue"],
                resources=[self.secret.secret_arn],
            )
        )
        parameter_path = self.config.checkpoint_path
        parameters = self.format_arn(
            service="ssm", resource="parameter", resource_name=f"{parameter_path[1:]}/*"
        )
        roles["archive"].add_to_policy(
            iam.PolicyStatement(
                sid="Checkpoints",
                actions=["ssm:GetParameter", "ssm:PutParameter"],
                resources=[parameters],
            )
        )
        # Sealing only reads how far each org's buckets are closed.
        roles["seal"].add_to_policy(
            iam.PolicyStatement(
                sid="Checkpoints", actions=["ssm:GetParameter"], resources=[parameters]
            )
        )
        self._bucket_policy(sealed)
        # The key policy backs the roles up: no principal but the seal role may sign, whatever
        # IAM policies the account grants later.
        self.signing_key.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheSealRoleSigns",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["kms:Sign"],
                resources=["*"],
                conditions={"ArnNotEquals": {"aws:PrincipalArn": roles["seal"].role_arn}},
            )
        )
        self._acknowledge_wildcards(roles, parameter_path)

    def _bucket_policy(self, sealed: list[str]) -> None:
        """Deny every principal but the seal role writes to sealed keys (IAM alone cannot)."""
        bucket = self.archive.bucket
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="OnlyTheSealRoleWritesSealedDays",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=SEALED_WRITE_ACTIONS,
                resources=sealed,
                conditions={"ArnNotEquals": {"aws:PrincipalArn": self.sealer.role.role_arn}},
            )
        )
        bucket.add_to_resource_policy(
            iam.PolicyStatement(
                sid="NobodyShortensSealedRetention",
                effect=iam.Effect.DENY,
                principals=[iam.AnyPrincipal()],
                actions=["s3:BypassGovernanceRetention", "s3:DeleteObjectVersion"],
                resources=sealed,
            )
        )

    def _acknowledge_wildcards(self, roles: dict[str, iam.Role], parameter_path: str) -> None:
        bucket_id = self.get_logical_id(_cfn(self.archive.bucket))
        prefix = self.config.archive_prefix
        # cdk-nag renders unresolved tokens as <AWS::...> and concrete env values literally.
        region = "<AWS::Region>" if Token.is_unresolved(self.region) else self.region
        account = "<AWS::AccountId>" if Token.is_unresolved(self.account) else self.account
        parameter_wildcard = (
            f"Resource::arn:<AWS::Partition>:ssm:{region}:{account}:parameter{parameter_path}/*"
        )
        objects = f"Resource::<{bucket_id}.Arn>/{prefix}/*"
        hourly = f"Resource::<{bucket_id}.Arn>/{prefix}/{HOURLY_OBJECT_PATTERN}"
        late = f"Resource::<{bucket_id}.Arn>/{prefix}/{LATE_OBJECT_PATTERN}"
        reason = (
            "Object keys are per day and time bucket, unknowable at deploy time; the statement "
            "is limited to the archive prefix (hourly objects only for the archive role)."
        )
        for name, role in roles.items():
            acks = [Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[{objects}]", reason=reason)]
            if name == "archive":
                acks += [
                    Acknowledgment(id=f"AwsSolutions::AwsSolutions-IAM5[{pattern}]", reason=reason)
                    for pattern in (hourly, late)
                ]
            if name in ("archive", "seal"):
                acks.append(
                    Acknowledgment(
                        id=f"AwsSolutions::AwsSolutions-IAM5[{parameter_wildcard}]",
                        reason="One checkpoint parameter per org under one dedicated path; "
                        "listing hundreds of org ARNs would exceed the IAM policy size limit.",
                    )
                )
            Validations.of(role).acknowledge(*acks)

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
        outputs["SigningKeyArn"] = (
            self.signing_key.key_arn,
            "Signs day manifests; give auditors its public key (kms get-public-key)",
        )
        outputs["SealFunctionName"] = (self.sealer.function.function_name, "Seal function")
        outputs["VerifyFunctionName"] = (self.verifier.function.function_name, "Verify function")
        outputs["HeadEventBusArn"] = (
            self.head_bus_arn,
            "Receives a 'DI archive day signed' event per signed manifest: route it elsewhere",
        )
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
