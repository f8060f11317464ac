"""The archive store on S3: deterministic keys, SSE on every object, errors named by key.

Objects are sent with ``Content-Type: application/gzip`` and deliberately *no*
``Content-Encoding: gzip``: with that header, browsers, SDK downloads and some readers would
decompress transparently, so the stored bytes (whose hash is the contract) would not be what a
reader gets.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import IO, TYPE_CHECKING, Any, TypeVar

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from di_archiver.domain.ports import StoredObject
from di_archiver.errors import StoreError

_T = TypeVar("_T")

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from botocore.session import Session
    from mypy_boto3_s3 import S3Client
    from s3transfer.manager import TransferConfig

CONTENT_TYPE = "application/gzip"
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
# Sealed uploads go multipart above this size; few, modest parts keep a 256 MB Lambda safe.
_PART_SIZE = 16 * 1024 * 1024
_UPLOAD_CONCURRENCY = 2
_READ_BUFFER = 256 * 1024


def _transfer_config() -> TransferConfig:
    from s3transfer.manager import TransferConfig  # noqa: PLC0415 (nothing at import time)

    # boto3's TransferConfig is this one with other names (max_concurrency) and CRT options.
    return TransferConfig(
        multipart_threshold=_PART_SIZE,
        multipart_chunksize=_PART_SIZE,
        max_request_concurrency=_UPLOAD_CONCURRENCY,
    )


class _S3BodyReader(io.RawIOBase):
    """A GET body as a raw stream whose transport errors become :class:`StoreError`."""

    def __init__(self, body: StreamingBody, describe: str) -> None:
        super().__init__()
        self._body = body
        self._describe = describe

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        try:
            data = self._body.read(len(view))
        except (ClientError, BotoCoreError) as exc:
            raise StoreError(f"{self._describe} failed: {error_code(exc)}") from exc
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


def botocore_config() -> Config:
    """Retries and timeouts for every AWS client di-archiver creates (S3, SSM, Secrets)."""
    return Config(
        retries={"mode": "standard", "max_attempts": 10},
        connect_timeout=5,
        read_timeout=60,
        tcp_keepalive=True,
    )


@cache
def _aws_session() -> Session:
    import botocore.session  # noqa: PLC0415 (nothing at import time)

    return botocore.session.get_session()


def aws_client(service: str, *, endpoint_url: str | None = None) -> Any:
    """A client for ``service`` with :func:`botocore_config`, from one session per process.

    A botocore client, which is what ``boto3.client`` returns too: importing boto3 also loads
    its resource layer and their docs, about 2 % of a first invocation's CPU that no run uses.
    Uploads call boto3's transfer manager, s3transfer, themselves (:meth:`S3ArchiveStore._upload`).
    """
    return _aws_session().create_client(
        service, config=botocore_config(), endpoint_url=endpoint_url
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
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ArchiveStore(bucket={self.bucket!r}, kms={'yes' if self.kms_key_id else 'no'})"

    @property
    def client(self) -> S3Client:
        if self._client is None:
            # The engine's workers reach for the store at once: without the lock each of the
            # first ones built its own client (~25 ms of CPU each on a cold start).
            with self._client_lock:
                if self._client is None:
                    self._client = aws_client("s3", endpoint_url=self._endpoint_url)
        return self._client

    def object_lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (decides if sealed objects must lock)."""
        try:
            answer = self.client.get_object_lock_configuration(Bucket=self.bucket)
        except ClientError as exc:
            if error_code(exc) == "ObjectLockConfigurationNotFoundError":
                return False
            raise StoreError(
                f"cannot read the Object Lock configuration of bucket {self.bucket} "
                f"({error_code(exc)}); it decides whether sealed objects must be locked"
            ) from exc
        except BotoCoreError as exc:
            raise StoreError(
                f"cannot read the Object Lock configuration of bucket {self.bucket} "
                f"({error_code(exc)})"
            ) from exc
        return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

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

    def _put(
        self, key: str, body: bytes | IO[bytes], metadata: Mapping[str, str], **extra: Any
    ) -> None:
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

    def put_file(
        self, key: str, fileobj: IO[bytes], size: int, metadata: Mapping[str, str]
    ) -> None:
        """Upload ``fileobj`` from where it stands to its end, ``size`` bytes, like :meth:`put`
        (multipart from 16 MiB, parts streamed)."""
        self._upload(key, fileobj, size, metadata)

    def put_file_locked(
        self,
        key: str,
        fileobj: IO[bytes],
        size: int,
        metadata: Mapping[str, str],
        *,
        retain_until_ns: int,
        mode: str,
    ) -> None:
        """Upload like :meth:`put_file` under Object Lock, as :meth:`put_locked` does."""
        retain_until = datetime.fromtimestamp(retain_until_ns // 1_000_000_000, tz=UTC)
        self._upload(
            key,
            fileobj,
            size,
            metadata,
            ObjectLockMode=mode,
            ObjectLockRetainUntilDate=retain_until,
            ChecksumAlgorithm="SHA256",
        )

    def _upload(
        self,
        key: str,
        fileobj: IO[bytes],
        size: int,
        metadata: Mapping[str, str],
        **extra: Any,
    ) -> None:
        start = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(start)
        if end - start != size:
            raise StoreError(
                f"expected {size} bytes for s3://{self.bucket}/{key}, the file holds {end - start}"
            )
        if size < _PART_SIZE and start == 0:
            # The one PutObject a transfer manager would send, without its threads, its
            # futures or the import of s3transfer (and multiprocessing) on a first invocation:
            # most objects are an hour of one service. botocore seeks a retried body to offset
            # 0, which is why only a file that starts there goes this way.
            self._put(key, fileobj, metadata, **extra)
            return
        # What boto3's ``upload_fileobj`` does without the CRT (not in the Lambda runtime), on
        # any client: ours are botocore's, which lack the method.
        from s3transfer.manager import TransferManager  # noqa: PLC0415 (nothing at import time)

        try:
            with TransferManager(self.client, _transfer_config()) as manager:
                manager.upload(
                    fileobj=fileobj,
                    bucket=self.bucket,
                    key=key,
                    extra_args={
                        "ContentType": CONTENT_TYPE,
                        "Metadata": dict(metadata),
                        **self._encryption(),
                        **extra,
                    },
                ).result()
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("put", key, exc) from exc

    def _unless_absent(self, action: str, key: str, call: Callable[[], _T]) -> _T | None:
        """``call()``, ``None`` when the key does not exist, StoreError for any other failure."""
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) in _NOT_FOUND_CODES:
                return None
            raise self._fail(action, key, exc) from exc
        except BotoCoreError as exc:
            raise self._fail(action, key, exc) from exc

    def get_stream(self, key: str) -> IO[bytes] | None:
        """The object's bytes as a buffered stream (caller closes it), or ``None``."""
        response = self._unless_absent(
            "get", key, lambda: self.client.get_object(Bucket=self.bucket, Key=key)
        )
        if response is None:
            return None
        raw = _S3BodyReader(response["Body"], f"S3 get s3://{self.bucket}/{key}")
        return io.BufferedReader(raw, buffer_size=_READ_BUFFER)

    def list_prefixes(self, prefix: str) -> Iterator[str]:
        """The immediate "folders" under ``prefix`` (``/``-delimited common prefixes)."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
                for item in page.get("CommonPrefixes", []):
                    if "Prefix" in item:
                        yield item["Prefix"]
        except (ClientError, BotoCoreError) as exc:
            raise self._fail("list", prefix, exc) from exc

    def get(self, key: str) -> bytes | None:
        """The object's bytes, or ``None`` when absent."""

        def read() -> bytes:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

        return self._unless_absent("get", key, read)

    def head(self, key: str) -> StoredObject | None:
        """Size and user metadata, or ``None`` when absent."""
        response = self._unless_absent(
            "head", key, lambda: self.client.head_object(Bucket=self.bucket, Key=key)
        )
        if response is None:
            return None
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
