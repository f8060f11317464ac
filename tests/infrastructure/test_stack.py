"""Template assertions on the properties that matter (never on hashed logical ids)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from aws_cdk.assertions import Annotations, Match

from di_archiver.settings import ArchiverSettings
from infra.config import ConfigError

from .conftest import ORG, Synthesised

Synth = Callable[..., Synthesised]


def only(resources: dict[str, Any]) -> dict[str, Any]:
    assert len(resources) == 1, list(resources)
    return next(iter(resources.values()))


def archive_bucket(s: Synthesised) -> dict[str, Any]:
    """The bucket with lifecycle rules for the archive prefix (the access log bucket has none)."""
    buckets = [
        b
        for b in s.resources("AWS::S3::Bucket").values()
        if any(
            r.get("Prefix")
            for r in b["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
        )
    ]
    assert len(buckets) == 1
    return buckets[0]


def _construct(s: Synthesised, duty: str) -> Any:
    return {"archive": s.stack.archiver, "seal": s.stack.sealer, "verify": s.stack.verifier}[duty]


def function_policy(s: Synthesised, duty: str = "archive") -> list[dict[str, Any]]:
    """The statements of one function role's policy (archive, seal or verify)."""
    role_id = s.stack.get_logical_id(_construct(s, duty).role.node.default_child)
    policies = [
        p
        for p in s.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    return only(dict(enumerate(policies)))["Properties"]["PolicyDocument"]["Statement"]  # type: ignore[no-any-return]


def function_props(s: Synthesised, duty: str = "archive") -> dict[str, Any]:
    function_id = s.stack.get_logical_id(_construct(s, duty).function.node.default_child)
    return s.raw["Resources"][function_id]["Properties"]  # type: ignore[no-any-return]


def test_kms_variant_encrypts_with_a_rotating_retained_customer_key(default: Synthesised) -> None:
    # Given the default (encryption=kms) stack
    bucket = archive_bucket(default)
    # Then objects use SSE-KMS with the bucket key, under a rotating key that outlives the stack
    rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    key_ref = rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]["Fn::GetAtt"][0]
    assert rule["BucketKeyEnabled"] is True
    key = default.raw["Resources"][key_ref]
    assert key["Properties"]["EnableKeyRotation"] is True
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"
    assert bucket["DeletionPolicy"] == "Retain"
    # And the function writes with that key and may use it
    env = function_props(default)["Environment"]["Variables"]
    assert env["DI_ARCHIVER_KMS_KEY_ID"] == {"Fn::GetAtt": [key_ref, "Arn"]}
    kms = [st for st in function_policy(default) if st.get("Sid", "").startswith("ArchiveKey")]
    assert kms == [
        {
            "Sid": "ArchiveKeyRead",
            "Effect": "Allow",
            "Action": "kms:Decrypt",
            "Resource": {"Fn::GetAtt": [key_ref, "Arn"]},
        },
        {
            "Sid": "ArchiveKeyWrite",
            "Effect": "Allow",
            "Action": "kms:GenerateDataKey",
            "Resource": {"Fn::GetAtt": [key_ref, "Arn"]},
        },
    ]
    # And the credential secret is encrypted with it
    secret = only(default.resources("AWS::SecretsManager::Secret"))
    assert secret["Properties"]["KmsKeyId"] == {"Fn::GetAtt": [key_ref, "Arn"]}


def test_s3_variant_uses_sse_s3_and_no_archive_key(synth: Synth) -> None:
    # Given encryption=s3
    s = synth(encryption="s3")
    # Then the bucket uses SSE-S3, the function gets no key id and no KMS permission
    rule = archive_bucket(s)["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][
        0
    ]
    assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    assert "DI_ARCHIVER_KMS_KEY_ID" not in function_props(s)["Environment"]["Variables"]
    assert not [
        st
        for st in function_policy(s)
        if "kms" in json.dumps(st["Action"]) and st["Effect"] == "Allow"
    ]
    assert "ArchiveKeyArn" not in s.raw["Outputs"]


def test_every_bucket_blocks_public_access_and_denies_plain_http(default: Synthesised) -> None:
    # Given the archive, access-log and Athena results buckets
    buckets = default.resources("AWS::S3::Bucket")
    assert len(buckets) == 3
    for bucket in buckets.values():
        # Then all four public-access switches are on
        assert bucket["Properties"]["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
    # And each bucket policy denies non-TLS requests
    policies = default.resources("AWS::S3::BucketPolicy")
    assert len(policies) == 3
    for policy in policies.values():
        denies = [
            st
            for st in policy["Properties"]["PolicyDocument"]["Statement"]
            if st["Effect"] == "Deny"
            and st.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport") == "false"
        ]
        assert denies
        assert denies[0]["Action"] == "s3:*"


def test_lifecycle_follows_the_configuration(synth: Synth) -> None:
    # Given custom transitions, retention and noncurrent expiry
    s = synth(
        transitions={"GLACIER_IR": 120, "STANDARD_IA": 60, "DEEP_ARCHIVE": 400},
        retentionDays=3650,
        noncurrentDays=7,
    )
    # Then the archive-prefix rule carries exactly those, plus the multipart clean-up
    rules = archive_bucket(s)["Properties"]["LifecycleConfiguration"]["Rules"]
    archive = next(r for r in rules if r.get("Prefix") == "di/")
    assert archive["Status"] == "Enabled"
    assert archive["Transitions"] == [
        {"StorageClass": "STANDARD_IA", "TransitionInDays": 60},
        {"StorageClass": "GLACIER_IR", "TransitionInDays": 120},
        {"StorageClass": "DEEP_ARCHIVE", "TransitionInDays": 400},
    ]
    assert archive["ExpirationInDays"] == 3650
    assert archive["NoncurrentVersionExpiration"] == {"NoncurrentDays": 7}
    assert archive["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert any(r.get("ExpiredObjectDeleteMarker") for r in rules)
    # And synth warns that DEEP_ARCHIVE objects are invisible to Athena until restored
    warnings = Annotations.from_stack(s.stack).find_warning("*", Match.string_like_regexp("Athena"))
    assert warnings
    assert "DEEP_ARCHIVE" in warnings[0].entry.data


def test_no_retention_means_no_expiration(synth: Synth) -> None:
    # Given retentionDays=never and no transitions
    s = synth(retentionDays="never", transitions={})
    # Then nothing expires current objects
    archive = next(
        r
        for r in archive_bucket(s)["Properties"]["LifecycleConfiguration"]["Rules"]
        if r.get("Prefix")
    )
    assert "ExpirationInDays" not in archive
    assert "Transitions" not in archive


def test_object_lock_when_configured(synth: Synth, default: Synthesised) -> None:
    # Given objectLock COMPLIANCE (opt-in)
    s = synth(objectLock={"mode": "COMPLIANCE", "days": 365})
    bucket = archive_bucket(s)["Properties"]
    # Then the bucket has Object Lock, versioning, and no blanket default retention
    assert bucket["ObjectLockEnabled"] is True
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "ObjectLockConfiguration" not in bucket
    # And the seal function knows the retention and may set it on its own prefix only
    env = function_props(s, "seal")["Environment"]["Variables"]
    assert env["DI_ARCHIVER_OBJECT_LOCK_MODE"] == "COMPLIANCE"
    assert env["DI_ARCHIVER_OBJECT_LOCK_DAYS"] == "365"
    objects = next(st for st in function_policy(s, "seal") if st.get("Sid") == "SealDays")
    assert "s3:PutObjectRetention" in objects["Action"]
    # And the archive function neither locks nor may set retention
    assert "DI_ARCHIVER_OBJECT_LOCK_MODE" not in function_props(s)["Environment"]["Variables"]
    assert "s3:PutObjectRetention" not in json.dumps(
        [st for st in function_policy(s) if st["Effect"] == "Allow"]
    )


def test_object_lock_is_governance_for_the_retention_period_by_default(
    synth: Synth, default: Synthesised
) -> None:
    # Given the default context / Then the bucket has Object Lock and sealed objects get
    # GOVERNANCE retention for the whole retention period
    assert archive_bucket(default)["Properties"]["ObjectLockEnabled"] is True
    env = function_props(default, "seal")["Environment"]["Variables"]
    assert env["DI_ARCHIVER_OBJECT_LOCK_MODE"] == "GOVERNANCE"
    assert env["DI_ARCHIVER_OBJECT_LOCK_DAYS"] == "2557"
    # And noncurrent versions (e.g. a sealed day replaced by a repair) stay as long
    rules = archive_bucket(default)["Properties"]["LifecycleConfiguration"]["Rules"]
    archive = next(r for r in rules if r.get("Prefix"))
    assert archive["NoncurrentVersionExpiration"]["NoncurrentDays"] == 2557
    # And turning it off needs a written reason, and then nothing locks
    off = synth(objectLock="off", objectLockOffReason="a disposable copy for load tests")
    assert "ObjectLockEnabled" not in archive_bucket(off)["Properties"]
    seal_env = function_props(off, "seal")["Environment"]["Variables"]
    assert "DI_ARCHIVER_OBJECT_LOCK_MODE" not in seal_env
    seal_objects = next(st for st in function_policy(off, "seal") if st.get("Sid") == "SealDays")
    assert "s3:PutObjectRetention" not in seal_objects["Action"]


def test_access_logging_can_be_turned_off(synth: Synth) -> None:
    # Given accessLogging=false / Then no log bucket exists (archive + Athena results only)
    s = synth(accessLogging=False)
    assert len(s.resources("AWS::S3::Bucket")) == 2
    assert "LoggingConfiguration" not in archive_bucket(s)["Properties"]


def test_iam_is_scoped_to_exact_resources(default: Synthesised) -> None:
    # Given the function's policy
    statements = function_policy(default)
    by_sid = {st.get("Sid"): st for st in statements}
    bucket_id = default.stack.get_logical_id(default.stack.archive.bucket.node.default_child)  # type: ignore[arg-type]
    # Then the archive function reads the prefix and writes hourly objects only
    assert by_sid["ReadArchive"]["Action"] == "s3:GetObject"
    assert by_sid["ReadArchive"]["Resource"] == {
        "Fn::Join": ["", [{"Fn::GetAtt": [bucket_id, "Arn"]}, "/di/*"]]
    }
    assert by_sid["WriteHourlyObjects"]["Action"] == [
        "s3:AbortMultipartUpload", "s3:DeleteObject", "s3:PutObject",
    ]  # fmt: skip
    written = sorted(
        resource["Fn::Join"][1][1] for resource in by_sid["WriteHourlyObjects"]["Resource"]
    )
    assert written == [
        "/di/_late/org=*/dt=*/svc=*/????-????.jsonl.gz",
        "/di/org=*/svc=*/dt=*/????-????.jsonl.gz",
    ]
    assert by_sid["ArchiveListing"]["Resource"] == {"Fn::GetAtt": [bucket_id, "Arn"]}
    # And the secret is readable, not writable, and only that one
    secret_id = default.stack.get_logical_id(default.stack.secret.node.default_child)  # type: ignore[arg-type]
    assert by_sid["Credential"]["Action"] == "secretsmanager:GetSecretValue"
    assert by_sid["Credential"]["Resource"] == {"Ref": secret_id}
    # And checkpoints are read/written under this stack's own path only
    assert by_sid["Checkpoints"]["Action"] == ["ssm:GetParameter", "ssm:PutParameter"]
    assert json.dumps(by_sid["Checkpoints"]["Resource"]).endswith(
        ':parameter/di-archiver/DiArchiver/checkpoints/*"]]}'
    )
    env = function_props(default)["Environment"]["Variables"]
    assert env["DI_ARCHIVER_CHECKPOINT_PARAMETER_PREFIX"] == "/di-archiver/DiArchiver/checkpoints"
    # And the only '*' resource is X-Ray's, which supports no resource scoping
    for policy in default.resources("AWS::IAM::Policy").values():
        for st in policy["Properties"]["PolicyDocument"]["Statement"]:
            if st["Resource"] == "*":
                assert all(a.startswith("xray:") for a in st["Action"]), st
    # And no role carries a managed policy
    for role in default.resources("AWS::IAM::Role").values():
        assert "ManagedPolicyArns" not in role["Properties"]


def test_function_runs_with_the_one_set_of_lambda_defaults(default: Synthesised) -> None:
    props = function_props(default)
    assert props["Architectures"] == ["arm64"]
    assert props["Runtime"] == "python3.13"
    assert props["Handler"] == "di_archiver.handler.lambda_handler"
    assert props["MemorySize"] == 512
    assert props["Timeout"] == 900
    assert props["TracingConfig"] == {"Mode": "Active"}
    assert props["LoggingConfig"]["LogFormat"] == "JSON"
    assert props["ReservedConcurrentExecutions"] == 1
    log_groups = default.resources("AWS::Logs::LogGroup").values()
    assert [g["Properties"]["RetentionInDays"] for g in log_groups] == [90, 90, 90]
    assert props["LoggingConfig"]["LogGroup"] == {
        "Ref": default.stack.get_logical_id(default.stack.archiver.log_group.node.default_child)
    }  # type: ignore[arg-type]


@pytest.mark.parametrize("duty", ["archive", "seal", "verify"])
def test_function_environment_is_what_the_runtime_settings_accept(
    default: Synthesised, duty: str
) -> None:
    # Given each function's environment, with deploy-time references filled in
    env = function_props(default, duty)["Environment"]["Variables"]
    # Then it names its duty, and only the DI-facing function knows where the credential is
    assert env["DI_ARCHIVER_DUTY"] == duty
    assert ("DI_ARCHIVER_SECRET_ID" in env) is (duty == "archive")
    assert ("DI_ARCHIVER_SIGNING_KEY_ID" in env) is (duty != "archive")
    concrete = {k: v if isinstance(v, str) else f"resolved-{k.lower()}" for k, v in env.items()}
    # When the runtime reads it exactly as the handler does
    settings = ArchiverSettings.from_env(concrete)
    # Then it is accepted, and carries the context's values
    assert settings.org_ids == (ORG,)
    assert settings.archive_prefix == "di"
    assert settings.bucket_minutes == 60
    assert env["POWERTOOLS_SERVICE_NAME"] == "di-archiver"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "DIArchiver"
    # And the allocator settings the memory benchmark was measured with
    assert env["MALLOC_ARENA_MAX"] == "2"
    assert env["MALLOC_MMAP_THRESHOLD_"] == "131072"
    # And no credential-looking variable exists
    assert not [k for k in env if any(w in k for w in ("API_KEY", "CLIENT_SECRET", "TOKEN"))]


def test_schedules_invoke_archive_maintain_and_verify_with_a_dead_letter_queue(
    default: Synthesised,
) -> None:
    schedules = default.resources("AWS::Scheduler::Schedule").values()
    by_input = {json.loads(s["Properties"]["Target"]["Input"])["mode"]: s for s in schedules}
    assert set(by_input) == {"archive", "reconcile", "maintain", "verify"}
    assert by_input["archive"]["Properties"]["ScheduleExpression"] == "rate(15 minutes)"
    # Reconcile (archive function) re-reads before the seal function merges and signs
    assert by_input["reconcile"]["Properties"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
    assert by_input["maintain"]["Properties"]["ScheduleExpression"] == "cron(30 2 * * ? *)"
    # The weekly verify reads a recent window, so it fits one invocation on any archive size
    verify = by_input["verify"]["Properties"]
    assert verify["ScheduleExpression"] == "cron(0 4 ? * SUN *)"
    assert json.loads(verify["Target"]["Input"]) == {"mode": "verify", "days": 35}
    dlq_id = default.stack.get_logical_id(
        default.stack.archiver.dead_letter_queue.node.default_child
    )  # type: ignore[arg-type]
    for schedule in by_input.values():
        target = schedule["Properties"]["Target"]
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id, "Arn"]}}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 2
    # And failed asynchronous invocations land in the same queue
    for invoke in default.resources("AWS::Lambda::EventInvokeConfig").values():
        assert invoke["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
            "Fn::GetAtt": [dlq_id, "Arn"]
        }
    # And the queue is encrypted and TLS-only
    queue = default.raw["Resources"][dlq_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True
    default.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_alarms_cover_failures_staleness_and_missed_runs(default: Synthesised) -> None:
    alarms = list(default.resources("AWS::CloudWatch::Alarm").values())
    by_metric = {a["Properties"].get("MetricName"): a["Properties"] for a in alarms}
    for name in ("Errors", "RunFailed", "ApiErrors", "MaintenanceFailed", "VerifyFindings",
                 "ReconcileFindings", "ApproximateNumberOfMessagesVisible"):  # fmt: skip
        assert by_metric[name]["ComparisonOperator"] == "GreaterThanThreshold"
        assert by_metric[name]["Threshold"] == 0
    freshness = by_metric["FreshnessLagSeconds"]
    assert freshness["Namespace"] == "DIArchiver"
    assert freshness["Dimensions"] == [{"Name": "service", "Value": "di-archiver"}]
    assert freshness["Threshold"] == 7200 + 300 + 3600 + 900 + 2 * 900
    missed = by_metric["RunSucceeded"]
    assert missed["ComparisonOperator"] == "LessThanThreshold"
    assert missed["Threshold"] == 1
    assert missed["Period"] == 900
    assert missed["EvaluationPeriods"] == 4
    assert missed["TreatMissingData"] == "breaching"
    # And every alarm notifies the encrypted topic
    topic_id = default.stack.get_logical_id(default.stack.monitoring.topic.node.default_child)  # type: ignore[arg-type]
    for alarm in alarms:
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": topic_id}]
    topic = default.raw["Resources"][topic_id]["Properties"]
    assert "KmsMasterKeyId" in topic
    assert not default.resources("AWS::SNS::Subscription")
    assert only(default.resources("AWS::CloudWatch::Dashboard"))


def test_alarm_email_subscribes_to_the_topic(synth: Synth) -> None:
    s = synth(alarmEmail="security@example.com")
    subscription = only(s.resources("AWS::SNS::Subscription"))["Properties"]
    assert subscription["Protocol"] == "email"
    assert subscription["Endpoint"] == "security@example.com"


def test_secret_holds_no_value_in_the_template(default: Synthesised) -> None:
    secret = only(default.resources("AWS::SecretsManager::Secret"))["Properties"]
    assert "SecretString" not in secret
    assert "GenerateSecretString" in secret
    assert not default.raw.get("Parameters", {}).keys() - {"BootstrapVersion"}


def test_outputs_name_what_the_operator_needs(default: Synthesised) -> None:
    assert {
        "ArchiveBucketName", "SecretArn", "SecretName", "FunctionName", "DeadLetterQueueUrl",
        "AlarmTopicArn", "DashboardName", "ArchiveKeyArn", "AccessLogBucketName",
        "AthenaWorkgroup", "GlueDatabase", "EventsView", "AthenaResultsBucket",
    } <= set(default.raw["Outputs"])  # fmt: skip


def test_athena_table_covers_the_archive_and_extra_services(synth: Synth) -> None:
    # Given a deployment told about a service JumpCloud added after this release
    s = synth(extraServices="passkeys")
    # Then the typed table projects over the archive bucket and lists the new service
    tables = s.resources("AWS::Glue::Table")
    params = [t["Properties"]["TableInput"]["Parameters"] for t in tables.values()]
    enums = [p["projection.svc.values"] for p in params if "projection.svc.values" in p]
    assert enums
    assert all("passkeys" in values.split(",") for values in enums)
    assert all("sso" in values.split(",") for values in enums)


@pytest.mark.parametrize(
    "variant",
    [
        {},
        {"encryption": "s3", "accessLogging": False},
        {"objectLock": {"mode": "GOVERNANCE", "days": 30}, "alarmEmail": "a@example.com"},
        {"fanOut": {"maxConcurrency": 5}},
    ],
    ids=["default", "sse-s3-no-logging", "object-lock", "fan-out"],
)
def test_cdk_nag_aws_solutions_has_no_unacknowledged_findings(
    synth: Synth, variant: dict[str, Any]
) -> None:
    # Given a synthesised variant (synth itself fails on any error-level finding)
    s = synth(**variant)
    # Then the validation report has no open violation of any severity
    report = json.loads((s.outdir / "validation-report.json").read_text())
    [nag] = [r for r in report["pluginReports"] if r["pluginName"] == "AwsSolutions"]
    assert nag["violations"] == []
    # And every acknowledgement carries a reason
    assert nag["suppressedViolations"]
    for acknowledged in nag["suppressedViolations"]:
        assert len(acknowledged["reason"]) > 20


def test_bad_context_fails_synth(tmp_path: Any) -> None:
    from .conftest import cdk_json_context, synthesise

    with pytest.raises(ConfigError, match="retentionDays"):
        synthesise({**cdk_json_context(), "retentionDays": -3}, tmp_path)
