"""The archive store on S3: deterministic keys, SSE on every object, errors named by key.

Objects are sent with ``Content-Type: application/gzip`` and deliberately *no*
``Content-Encoding: gzip``: with that header, browsers, SDK downloads and some readers would
decompress transparently, so the stored bytes (whose hash is the contract) would not be what a
reader gets.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from di_archiver.domain.ports import StoredObject
from di_archiver.errors import StoreError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONTENT_TYPE = "application/gzip"
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def botocore_config() -> Config:
    """Retries and timeouts for every AWS client di-archiver creates (S3, SSM, Secrets)."""
    return Config(
        retries={"mode": "standard", "max_attempts": 10},
        connect_timeout=5,
        read_timeout=60,
        tcp_keepalive=True,
    )


def error_code(exc: Exception) -> str:
    """The AWS error code of a ClientError (``"ConnectionError"`` etc. for transport errors)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


class S3ArchiveStore:
    """An :class:`~di_archiver.domain.ports.ArchiveStore` in one S3 bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        s3_client: S3Client | None = None,
        kms_key_id: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.kms_key_id = kms_key_id
        self._client = s3_client
        self._endpoint_url = endpoint_url

    def __repr__(self) -> str:
        return f"S3ArchiveStore(bucket={self.bucket!r}, kms={'yes' if self.kms_key_id else 'no'})"

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3  # noqa: PLC0415 (created on first use: nothing at import time)

            self._client = boto3.client(
                "s3", config=botocore_config(), endpoint_url=self._endpoint_url
            )
        return self._client

    def _fail(self, action: str, key: str, exc: Exception) -> StoreError:
        return StoreError(f"S3 {action} s3://{self.bucket}/{key} failed: {error_code(exc)}")

    def _encryption(self) -> dict[str, Any]:
        if self.kms_key_id:
            return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
        return {"ServerSideEncryption": "AES256"}

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        """Write ``body`` under ``key`` (S3 is read-after-write consistent once this returns)."""
        self._put(key, body, metadata)

    def put_locked(
        self,
        key: str,
        body: bytes,
        metadata: Mapping[str, str],
        *,
        retain_until_ns: int,
        mode: str,
    ) -> None:
        """Write like ``put`` and place this version under Object Lock until ``retain_until_ns``.

        The bucket must have Object Lock enabled (the stack does so when configured); a re-seal
        writes a new version and the locked earlier version stays retained.
        """
        retain_until = datetime.fromtimestamp(retain_until_ns // 1_000_000_000, tz=UTC)
        self._put(
            key,
            body,
            metadata,
            ObjectLockMode=mode,
            ObjectLockRetainUntilDate=retain_until,
            ChecksumAlgorithm="SHA256",
        )

    def _put(self, key: str, body: bytes, metadata: Mapping[str, str], **extra: Any) -> None:
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=CONTENT_TYPE,
                Metadata=dict(metadata),
                **self._encryption(),
                **extra,
            )
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("put", key, exc) from exc

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when absent."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
            return response["Body"].read()
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise self._fail("get", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("get", key, exc) from exc

    def head(self, key: str) -> StoredObject | None:
        """Size and user metadata, or ``None`` when absent."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise self._fail("head", key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail("head", key, exc) from exc
        return StoredObject(
            key=key,
            size=int(response.get("ContentLength", 0)),
            metadata=dict(response.get("Metadata", {})),
        )

    def list(self, prefix: str) -> Iterator[StoredObject]:
        """Objects under ``prefix`` in key order; metadata is empty (use :meth:`head`)."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield StoredObject(key=item["Key"], size=int(item.get("Size", 0)))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", prefix, exc) from exc

    def delete(self, key: str) -> None:
        """Remove ``key``; S3 treats absent keys as success."""
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("delete", key, exc) from exc
