"""The archive bucket: encrypted, TLS-only, private, versioned, lifecycle-managed, retained."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Acknowledgment, Duration, RemovalPolicy, Validations
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.config import ObjectLock, StorageClass

_STORAGE_CLASSES: Mapping[StorageClass, s3.StorageClass] = {
    StorageClass.STANDARD_IA: s3.StorageClass.INFREQUENT_ACCESS,
    StorageClass.INTELLIGENT_TIERING: s3.StorageClass.INTELLIGENT_TIERING,
    StorageClass.ONEZONE_IA: s3.StorageClass.ONE_ZONE_INFREQUENT_ACCESS,
    StorageClass.GLACIER_IR: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
    StorageClass.GLACIER: s3.StorageClass.GLACIER,
    StorageClass.DEEP_ARCHIVE: s3.StorageClass.DEEP_ARCHIVE,
}
ABORT_MULTIPART_DAYS = 7


class ArchiveBucket(Construct):
    """S3 bucket (and, for SSE-KMS, its customer-managed key) holding the archive."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        archive_prefix: str,
        kms_encryption: bool,
        versioned: bool,
        retention_days: int | None,
        transitions: Mapping[StorageClass, int],
        noncurrent_days: int,
        object_lock: ObjectLock | None,
        access_logging: bool,
        access_log_retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.key: kms.Key | None = None
        if kms_encryption:
            self.key = kms.Key(
                self,
                "Key",
                description="di-archiver: archive objects, credential secret",
                enable_key_rotation=True,
                removal_policy=RemovalPolicy.RETAIN,
            )

        self.access_log_bucket: s3.Bucket | None = None
        if access_logging:
            self.access_log_bucket = self._access_log_bucket(access_log_retention_days)

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS if self.key else s3.BucketEncryption.S3_MANAGED,
            encryption_key=self.key,
            bucket_key_enabled=True if self.key else None,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=versioned,
            # No default retention: hourly objects are rewritten and deleted at sealing, so the
            # archiver locks only sealed day objects and manifests (per-object retention).
            object_lock_enabled=True if object_lock else None,
            server_access_logs_bucket=self.access_log_bucket,
            server_access_logs_prefix="archive/" if self.access_log_bucket else None,
            lifecycle_rules=self._lifecycle(
                archive_prefix, retention_days, transitions, noncurrent_days, versioned
            ),
            removal_policy=RemovalPolicy.RETAIN,
        )
        if self.access_log_bucket is None:
            Validations.of(self.bucket).acknowledge(
                Acknowledgment(
                    id="AwsSolutions::AwsSolutions-S1",
                    reason="accessLogging=false in the CDK context: the operator opted out.",
                )
            )

    def _access_log_bucket(self, retention_days: int) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            # S3 server access logging cannot deliver to SSE-KMS buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    expiration=Duration.days(retention_days),
                    abort_incomplete_multipart_upload_after=Duration.days(ABORT_MULTIPART_DAYS),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        Validations.of(bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions::AwsSolutions-S1",
                reason="This is the access log bucket; logging it into itself would loop.",
            )
        )
        return bucket

    @staticmethod
    def _lifecycle(
        prefix: str,
        retention_days: int | None,
        transitions: Mapping[StorageClass, int],
        noncurrent_days: int,
        versioned: bool,
    ) -> list[s3.LifecycleRule]:
        archive = s3.LifecycleRule(
            id="archive",
            prefix=f"{prefix}/",
            transitions=[
                s3.Transition(
                    storage_class=_STORAGE_CLASSES[storage_class],
                    transition_after=Duration.days(days),
                )
                for storage_class, days in sorted(transitions.items(), key=lambda kv: kv[1])
            ],
            expiration=Duration.days(retention_days) if retention_days else None,
            noncurrent_version_expiration=Duration.days(noncurrent_days) if versioned else None,
            abort_incomplete_multipart_upload_after=Duration.days(ABORT_MULTIPART_DAYS),
        )
        rules = [archive]
        if versioned:
            # Sealing deletes hourly objects; their delete markers are noise once versions expire.
            rules.append(s3.LifecycleRule(id="delete-markers", expired_object_delete_marker=True))
        return rules
