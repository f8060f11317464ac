"""S3 archive store, SSM checkpoints and the Secrets Manager provider against moto."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import ConnectionClosedError
from moto import mock_aws

from di_archiver.adapters import s3_store
from di_archiver.adapters.s3_store import S3ArchiveStore
from di_archiver.adapters.secrets import SecretProvider
from di_archiver.adapters.ssm_checkpoint import SsmCheckpointStore
from di_archiver.archive_format import decode_lines, encode_events
from di_archiver.domain.ports import put_fileobj
from di_archiver.domain.seal import DaySealer
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import CheckpointError, SecretError, StoreError
from di_archiver.layout import bucket_object_key

ORG = "64a0c0ffee0000000000a001"
BUCKET = "di-archive-test"


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        yield


def _body() -> tuple[bytes, dict[str, str]]:
    encoded = encode_events(
        [
            {"id": "b", "timestamp": "2026-05-04T09:00:01Z", "service": "sso"},
            {"id": "a", "timestamp": "2026-05-04T09:00:00.5Z", "service": "sso"},
        ]
    )
    return encoded.body, encoded.metadata(fetched_at_ns=1_777_000_000_000_000_000)


def test_s3_put_with_sse_s3_keeps_bytes_metadata_and_content_type(aws: None) -> None:
    # Given a store without a KMS key
    store = S3ArchiveStore(BUCKET)
    body, metadata = _body()
    # When an object is written and read back
    store.put("di/org=x/a.jsonl.gz", body, metadata)
    raw = boto3.client("s3").head_object(Bucket=BUCKET, Key="di/org=x/a.jsonl.gz")
    # Then bytes, metadata, content type and SSE-S3 are as configured
    assert store.get("di/org=x/a.jsonl.gz") == body
    assert raw["ServerSideEncryption"] == "AES256"
    assert raw["ContentType"] == "application/gzip"
    assert "ContentEncoding" not in raw
    head = store.head("di/org=x/a.jsonl.gz")
    assert head is not None
    assert head.metadata == metadata
    assert head.size == len(body)
    assert len(decode_lines(store.get("di/org=x/a.jsonl.gz") or b"")) == 2


def test_s3_put_with_kms_key(aws: None) -> None:
    # Given a customer-managed KMS key
    key_id = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    store = S3ArchiveStore(BUCKET, kms_key_id=key_id)
    # When an object is written
    store.put("k.jsonl.gz", b"x", {"di-count": "0"})
    # Then it is encrypted with that key
    head = boto3.client("s3").head_object(Bucket=BUCKET, Key="k.jsonl.gz")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["SSEKMSKeyId"].endswith(key_id)


def test_s3_list_is_ordered_and_delete_is_idempotent(aws: None) -> None:
    # Given objects under two prefixes (pagination is covered by a stubbed unit test)
    s3 = boto3.client("s3")
    keys = [f"di/p/{i:04d}.jsonl.gz" for i in (3, 1, 2)]
    for key in keys:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"")
    s3.put_object(Bucket=BUCKET, Key="other/x", Body=b"")
    store = S3ArchiveStore(BUCKET, s3_client=s3)
    # When listing the prefix and deleting
    listed = [obj.key for obj in store.list("di/")]
    store.delete(keys[0])
    store.delete(keys[0])
    # Then every key under the prefix comes back in order, and deletes are idempotent
    assert listed == sorted(keys)
    assert store.head(keys[0]) is None
    assert store.get("absent") is None


def test_ssm_checkpoint_round_trip_and_overwrite(aws: None) -> None:
    # Given an empty parameter store
    store = SsmCheckpointStore("/di-archiver/checkpoints/")
    # When a document is saved twice and read back
    assert store.load(ORG) is None
    store.save(ORG, {"checkpoint_ns": 1, "version": 1})
    store.save(ORG, {"checkpoint_ns": 2, "version": 1})
    # Then the latest document is stored as a plain String parameter under prefix/org
    assert store.load(ORG) == {"checkpoint_ns": 2, "version": 1}
    parameter = boto3.client("ssm").get_parameter(Name=f"/di-archiver/checkpoints/{ORG}")
    assert parameter["Parameter"]["Type"] == "String"


def test_ssm_invalid_stored_checkpoint_is_a_clear_error(aws: None) -> None:
    # Given an operator overwrote the parameter with text
    boto3.client("ssm").put_parameter(
        Name=f"/cp/{ORG}", Value="yesterday", Type="String", Overwrite=True
    )
    # When it is loaded
    with pytest.raises(CheckpointError, match="not valid JSON"):
        SsmCheckpointStore("/cp").load(ORG)
    # Then the parameter is unchanged
    value = boto3.client("ssm").get_parameter(Name=f"/cp/{ORG}")["Parameter"]["Value"]
    assert value == "yesterday"


def test_secret_provider_reads_and_caches(aws: None) -> None:
    # Given a JSON secret
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="jc/cred", SecretString=json.dumps({"api_key": "k-1"}))
    provider = SecretProvider("jc/cred", client=sm)
    # When it is read, rotated, and read again within max_age and then forced
    first = provider.get()
    sm.put_secret_value(SecretId="jc/cred", SecretString=json.dumps({"api_key": "k-2"}))
    cached = provider.get()
    fresh = provider.get(force_fetch=True)
    # Then the cache holds until forced
    assert first == cached == {"api_key": "k-1"}
    assert fresh == {"api_key": "k-2"}


def test_secret_provider_missing_and_malformed(aws: None) -> None:
    # Given one missing and one non-JSON secret
    sm = boto3.client("secretsmanager")
    sm.create_secret(Name="bad", SecretString="api_key: hunter2-secret")
    # When / Then each error names the secret and the problem, never the value
    with pytest.raises(SecretError, match="ResourceNotFoundException"):
        SecretProvider("missing", client=sm).get()
    with pytest.raises(SecretError, match="not valid JSON") as caught:
        SecretProvider("bad", client=sm).get()
    assert "hunter2" not in str(caught.value)


def test_s3_put_file_multipart_with_sse_and_get_stream(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given parts of 5 MiB (S3's minimum) and an 11 MiB sealed body in a file object
    monkeypatch.setattr(s3_store, "_PART_SIZE", 5 * 1024 * 1024)
    store = S3ArchiveStore(BUCKET)
    body = os.urandom(11 * 1024 * 1024)
    # When it is uploaded with put_file and streamed back
    store.put_file("di/big.jsonl.gz", io.BytesIO(body), len(body), {"di-count": "7"})
    stream = store.get_stream("di/big.jsonl.gz")
    assert stream is not None
    with stream:
        chunks = iter(lambda: stream.read(1 << 20), b"")
        assert b"".join(chunks) == body
    # Then it went multipart, encrypted, typed and described like a put
    raw = boto3.client("s3").head_object(Bucket=BUCKET, Key="di/big.jsonl.gz")
    assert raw["ETag"].strip('"').endswith("-3")
    assert raw["ServerSideEncryption"] == "AES256"
    assert raw["ContentType"] == "application/gzip"
    assert raw["Metadata"] == {"di-count": "7"}
    assert store.get_stream("di/absent") is None


def test_s3_put_file_below_the_part_size_is_one_put_from_the_file(aws: None) -> None:
    # Given a spooled object below the multipart threshold, its file at an arbitrary position
    store = S3ArchiveStore(BUCKET)
    body = os.urandom(300_000)
    spool = io.BytesIO(body)
    spool.seek(1234)
    # When it is uploaded with put_file after the rewind put_fileobj gives it
    put_fileobj(store, "di/small.jsonl.gz", spool, len(body), {"di-count": "3"})
    # Then S3 holds exactly its bytes, as one PutObject, encrypted, typed and described
    raw = boto3.client("s3").get_object(Bucket=BUCKET, Key="di/small.jsonl.gz")
    assert raw["Body"].read() == body
    assert "-" not in raw["ETag"]
    assert raw["ServerSideEncryption"] == "AES256"
    assert raw["ContentType"] == "application/gzip"
    assert raw["Metadata"] == {"di-count": "3"}


def _drop_the_first_put_after_4_kb(s3: Any) -> list[int]:
    """Make the first PutObject attempt send 4 KB of its body and lose its connection; the
    returned list counts the attempts."""
    attempts: list[int] = []

    def drop_first(request: AWSPreparedRequest, **_: object) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            request.body.read(4096)  # type: ignore[union-attr]
            raise ConnectionClosedError(endpoint_url=request.url)

    s3.meta.events.register_first("before-send.s3.PutObject", drop_first)
    return attempts


@pytest.mark.parametrize("start", [0, 1000])
def test_s3_put_file_below_the_part_size_stores_the_file_from_its_position_after_a_retry(
    aws: None, start: int
) -> None:
    # Given a store whose first PutObject attempt sends part of the file and loses its
    # connection, and a small file positioned at its start or past it
    s3 = boto3.client("s3")
    store = S3ArchiveStore(BUCKET, s3_client=s3)
    attempts = _drop_the_first_put_after_4_kb(s3)
    body = os.urandom(100_000)
    fileobj = io.BytesIO(body)
    fileobj.seek(start)
    # When the file from there is uploaded (botocore seeks a retried body to offset 0)
    store.put_file("di/retried.jsonl.gz", fileobj, len(body) - start, {})
    # Then it took a retry, and S3 holds exactly the bytes from that position
    assert len(attempts) == 2
    stored = boto3.client("s3").get_object(Bucket=BUCKET, Key="di/retried.jsonl.gz")
    assert stored["Body"].read() == body[start:]


def test_s3_put_file_refuses_a_size_the_file_does_not_hold(aws: None) -> None:
    # Given a file of 5,000 bytes announced as 100, and one of 100 announced as 5,000
    store = S3ArchiveStore(BUCKET)
    # When / Then each upload is refused before anything is stored, naming both sizes
    with pytest.raises(StoreError, match=r"expected 100 bytes .* holds 5000"):
        store.put_file("di/short.jsonl.gz", io.BytesIO(os.urandom(5000)), 100, {})
    with pytest.raises(StoreError, match=r"expected 5000 bytes .* holds 100"):
        store.put_file("di/long.jsonl.gz", io.BytesIO(os.urandom(100)), 5000, {})
    listed = boto3.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="di/")
    assert "Contents" not in listed


def test_s3_put_file_locked_below_the_part_size_sends_retention_and_a_sha256_checksum(
    aws: None,
) -> None:
    # Given a bucket with Object Lock enabled, its PutObject requests recorded
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="locked-small", ObjectLockEnabledForBucket=True)
    sent: list[dict[str, str]] = []

    def record(request: AWSPreparedRequest, **_: object) -> None:
        sent.append(
            {
                name.lower(): value.decode() if isinstance(value, bytes) else str(value)
                for name, value in request.headers.items()
            }
        )

    s3.meta.events.register_first("before-send.s3.PutObject", record)
    store = S3ArchiveStore("locked-small", s3_client=s3)
    # When a small sealed object is uploaded from a file under retention
    store.put_file_locked(
        "di/day.jsonl.gz",
        io.BytesIO(b"sealed day"),
        10,
        {"di-count": "1"},
        retain_until_ns=1_893_456_000 * 10**9,
        mode="COMPLIANCE",
    )
    # Then its one PutObject carries the retention and the SHA-256 checksum S3 requires for it
    (headers,) = sent
    assert headers["x-amz-object-lock-mode"] == "COMPLIANCE"
    assert headers["x-amz-object-lock-retain-until-date"].startswith("2030-01-01")
    assert headers["x-amz-sdk-checksum-algorithm"] == "SHA256"
    assert "x-amz-checksum-sha256" in {headers.get("x-amz-trailer"), *headers}


def test_s3_put_file_locked_sets_object_lock_retention(aws: None) -> None:
    # Given a bucket with Object Lock enabled
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="locked", ObjectLockEnabledForBucket=True)
    store = S3ArchiveStore("locked", s3_client=s3)
    # When a sealed object is uploaded under retention
    store.put_file_locked(
        "di/day.jsonl.gz",
        io.BytesIO(b"sealed"),
        6,
        {"di-count": "1"},
        retain_until_ns=1_893_456_000 * 10**9,
        mode="GOVERNANCE",
    )
    # Then the version is retained in that mode until that date
    head = s3.head_object(Bucket="locked", Key="di/day.jsonl.gz")
    assert head["ObjectLockMode"] == "GOVERNANCE"
    assert head["ObjectLockRetainUntilDate"].year == 2030


def test_s3_list_prefixes_and_streamed_seal_and_verify(aws: None) -> None:
    # Given hourly bucket objects of one day on S3
    store = S3ArchiveStore(BUCKET)
    day = 1_777_593_600 * 10**9  # 2026-05-01T00:00Z
    hour = 3600 * 10**9
    for h in range(3):
        events = [
            {"id": f"{h}{i:03d}", "timestamp": f"2026-05-01T0{h}:00:{i:02d}Z", "service": "sso"}
            for i in range(20)
        ]
        encoded = encode_events(events)
        key = bucket_object_key("di", ORG, "sso", day + h * hour, day + (h + 1) * hour)
        store.put(key, encoded.body, encoded.metadata(fetched_at_ns=day))
    # When the day is sealed and verified through the streaming S3 paths
    DaySealer(store=store, prefix="di", clock=lambda: day + 2 * 86_400 * 10**9).seal_org(
        ORG, day + 86_400 * 10**9
    )
    # Then one sealed object holds every event and a windowed verify finds nothing
    assert list(store.list_prefixes(f"di/org={ORG}/")) == [f"di/org={ORG}/svc=sso/"]
    sealed = store.get(f"di/org={ORG}/svc=sso/dt=2026-05-01/day.jsonl.gz")
    assert sealed is not None
    assert len(decode_lines(sealed)) == 60
    report = verify_archive(
        store, prefix="di", start_day=date(2026, 5, 1), end_day=date(2026, 5, 1)
    )
    assert report.ok
    assert report.events_checked == 60
