"""AWS adapters wrap botocore errors in ArchiverErrors that name the resource, never a secret.

Clients are stubbed with botocore's Stubber: no sockets, no moto.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import boto3
import pytest
from botocore.stub import Stubber

from di_archiver.adapters.s3_store import S3ArchiveStore
from di_archiver.adapters.secrets import SecretProvider, secret_from_env
from di_archiver.adapters.ssm_checkpoint import SsmCheckpointStore
from di_archiver.errors import CheckpointError, SecretError, SettingsError, StoreError

ORG = "64a0c0ffee0000000000a001"
SECRET_VALUE = "jc-api-key-0123456789-super-secret"


@pytest.fixture
def s3() -> Iterator[tuple[S3ArchiveStore, Stubber]]:
    client = boto3.client("s3", region_name="us-east-1")
    with Stubber(client) as stub:
        yield S3ArchiveStore("archive-bucket", s3_client=client), stub


@pytest.fixture
def ssm() -> Iterator[tuple[SsmCheckpointStore, Stubber]]:
    client = boto3.client("ssm", region_name="us-east-1")
    with Stubber(client) as stub:
        yield SsmCheckpointStore("/di/cp", ssm_client=client), stub


def test_s3_put_error_names_bucket_key_and_code(s3: tuple[S3ArchiveStore, Stubber]) -> None:
    # Given S3 refuses the PUT
    store, stub = s3
    stub.add_client_error("put_object", service_error_code="AccessDenied", http_status_code=403)
    # When an object is written
    with pytest.raises(StoreError) as caught:
        store.put("di/a.jsonl.gz", b"x", {"di-count": "1"})
    # Then the error names the object and the AWS code, and chains the original
    assert "s3://archive-bucket/di/a.jsonl.gz" in str(caught.value)
    assert "AccessDenied" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_s3_put_sends_sse_s3_and_gzip_content_type(s3: tuple[S3ArchiveStore, Stubber]) -> None:
    # Given no KMS key is configured
    store, stub = s3
    stub.add_response(
        "put_object",
        {},
        {
            "Bucket": "archive-bucket",
            "Key": "k.jsonl.gz",
            "Body": b"data",
            "ContentType": "application/gzip",
            "Metadata": {"di-count": "3"},
            "ServerSideEncryption": "AES256",
        },
    )
    # When an object is written
    store.put("k.jsonl.gz", b"data", {"di-count": "3"})
    # Then the request matched exactly (no ContentEncoding, SSE-S3)
    stub.assert_no_pending_responses()


def test_s3_get_and_head_return_none_when_absent(s3: tuple[S3ArchiveStore, Stubber]) -> None:
    # Given both reads answer "not found"
    store, stub = s3
    stub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
    stub.add_client_error("head_object", service_error_code="404", http_status_code=404)
    # When / Then absent objects are None, not errors
    assert store.get("missing") is None
    assert store.head("missing") is None


def test_s3_get_other_errors_raise(s3: tuple[S3ArchiveStore, Stubber]) -> None:
    # Given S3 is throttling beyond the SDK's retries
    store, stub = s3
    stub.add_client_error("get_object", service_error_code="SlowDown", http_status_code=503)
    # When / Then the read fails with a StoreError naming the code
    with pytest.raises(StoreError, match="SlowDown"):
        store.get("k")


def test_s3_get_returns_body(s3: tuple[S3ArchiveStore, Stubber]) -> None:
    # Given an object exists
    store, stub = s3
    from botocore.response import StreamingBody

    stub.add_response(
        "get_object",
        {"Body": StreamingBody(io.BytesIO(b"abc"), 3)},
        {"Bucket": "archive-bucket", "Key": "k"},
    )
    # When / Then its bytes come back
    assert store.get("k") == b"abc"


def test_s3_list_follows_every_page(s3: tuple[S3ArchiveStore, Stubber]) -> None:
    # Given a listing that S3 returns in two pages
    store, stub = s3
    stub.add_response(
        "list_objects_v2",
        {
            "Contents": [{"Key": "di/a", "Size": 1}],
            "IsTruncated": True,
            "NextContinuationToken": "t",
        },
        {"Bucket": "archive-bucket", "Prefix": "di/"},
    )
    stub.add_response(
        "list_objects_v2",
        {"Contents": [{"Key": "di/b", "Size": 2}], "IsTruncated": False},
        {"Bucket": "archive-bucket", "Prefix": "di/", "ContinuationToken": "t"},
    )
    # When / Then both pages are yielded, with sizes and empty metadata
    listed = list(store.list("di/"))
    assert [(o.key, o.size, dict(o.metadata)) for o in listed] == [("di/a", 1, {}), ("di/b", 2, {})]


def test_s3_list_error_is_wrapped(s3: tuple[S3ArchiveStore, Stubber]) -> None:
    # Given the bucket does not exist
    store, stub = s3
    stub.add_client_error(
        "list_objects_v2", service_error_code="NoSuchBucket", http_status_code=404
    )
    # When / Then listing raises StoreError, not a botocore error
    with pytest.raises(StoreError, match="NoSuchBucket"):
        list(store.list("di/"))


def test_ssm_load_missing_parameter_is_none(ssm: tuple[SsmCheckpointStore, Stubber]) -> None:
    # Given the org has never been archived
    store, stub = ssm
    stub.add_client_error("get_parameter", service_error_code="ParameterNotFound")
    # When / Then there is no checkpoint
    assert store.load(ORG) is None


def test_ssm_load_non_json_value_is_checkpoint_error(
    ssm: tuple[SsmCheckpointStore, Stubber],
) -> None:
    # Given someone stored garbage in the parameter
    store, stub = ssm
    stub.add_response(
        "get_parameter",
        {"Parameter": {"Name": f"/di/cp/{ORG}", "Value": "not json{", "Type": "String"}},
        {"Name": f"/di/cp/{ORG}"},
    )
    # When / Then loading names the parameter and explains the fix
    with pytest.raises(CheckpointError, match=f"/di/cp/{ORG} is not valid JSON"):
        store.load(ORG)


def test_ssm_load_non_object_json_is_checkpoint_error(
    ssm: tuple[SsmCheckpointStore, Stubber],
) -> None:
    # Given the parameter holds a JSON list
    store, stub = ssm
    stub.add_response(
        "get_parameter",
        {"Parameter": {"Name": f"/di/cp/{ORG}", "Value": "[1]", "Type": "String"}},
        {"Name": f"/di/cp/{ORG}"},
    )
    # When / Then it is rejected
    with pytest.raises(CheckpointError, match="JSON object"):
        store.load(ORG)


def test_ssm_save_error_is_wrapped(ssm: tuple[SsmCheckpointStore, Stubber]) -> None:
    # Given SSM refuses the write
    store, stub = ssm
    stub.add_client_error("put_parameter", service_error_code="ThrottlingException")
    # When / Then the error names the parameter and code
    with pytest.raises(CheckpointError, match=f"/di/cp/{ORG}: ThrottlingException"):
        store.save(ORG, {"checkpoint_ns": 1})


@pytest.mark.parametrize("prefix", ["relative/path", "", "/a//b"])
def test_ssm_prefix_must_be_a_path(prefix: str) -> None:
    # Given / When / Then an unusable prefix is a settings error, raised before any call
    with pytest.raises(SettingsError):
        SsmCheckpointStore(prefix, ssm_client=boto3.client("ssm", region_name="us-east-1"))


def test_ssm_rejects_org_id_that_would_escape_the_prefix(
    ssm: tuple[SsmCheckpointStore, Stubber],
) -> None:
    # Given an org id that is not 24 hex characters
    store, _ = ssm
    # When / Then no parameter name is built from it
    with pytest.raises(ValueError, match="org id"):
        store.parameter_name("../other")


def _secret_provider(value: str | None, code: str | None = None) -> SecretProvider:
    client = boto3.client("secretsmanager", region_name="us-east-1")
    stub = Stubber(client)
    if code:
        stub.add_client_error("get_secret_value", service_error_code=code)
    else:
        stub.add_response(
            "get_secret_value", {"Name": "jc", "SecretString": value or ""}, {"SecretId": "jc"}
        )
    stub.activate()
    return SecretProvider("jc", client=client)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("   ", "is empty"),
        (f"api_key={SECRET_VALUE}", "not valid JSON"),
        (json.dumps([SECRET_VALUE]), "JSON object"),
        (json.dumps({"api_key": 42}), "non-empty strings"),
        (json.dumps({"token": SECRET_VALUE}), "none of the fields"),
    ],
)
def test_secret_shape_errors_never_show_the_value(value: str, expected: str) -> None:
    # Given a secret whose content is malformed
    provider = _secret_provider(value)
    # When it is read
    with pytest.raises(SecretError) as caught:
        provider.get()
    # Then the message says what is wrong, and neither it nor the chain carries the value
    assert expected in str(caught.value)
    assert SECRET_VALUE not in str(caught.value)
    assert SECRET_VALUE not in repr(caught.value.__cause__)
    assert SECRET_VALUE not in repr(provider)


def test_secret_missing_names_secret_and_code() -> None:
    # Given the secret does not exist
    provider = _secret_provider(None, code="ResourceNotFoundException")
    # When / Then the error names the secret id and the AWS code
    with pytest.raises(SecretError, match="cannot read secret jc: ResourceNotFoundException"):
        provider.get()


def test_secret_valid_mapping_is_returned() -> None:
    # Given a well-formed API-key secret
    provider = _secret_provider(json.dumps({"api_key": SECRET_VALUE}))
    # When / Then the mapping comes back for credentials_from_secret
    assert provider.get() == {"api_key": SECRET_VALUE}


def test_env_secret_api_key_and_service_account() -> None:
    # Given / When / Then each supported variable set gives the matching secret shape
    assert secret_from_env({"JUMPCLOUD_API_KEY": SECRET_VALUE}) == {"api_key": SECRET_VALUE}
    assert secret_from_env({"JUMPCLOUD_CLIENT_ID": "cid", "JUMPCLOUD_CLIENT_SECRET": "s"}) == {
        "client_id": "cid",
        "client_secret": "s",
    }
    assert secret_from_env({"MY_KEY": SECRET_VALUE}, api_key_env="MY_KEY") == {
        "api_key": SECRET_VALUE
    }


@pytest.mark.parametrize(
    ("environ", "api_key_env", "expected"),
    [
        ({}, None, "no JumpCloud credential"),
        ({"JUMPCLOUD_CLIENT_ID": "cid"}, None, "set both"),
        ({}, "MY_KEY", "MY_KEY is not set"),
        (
            {"JUMPCLOUD_API_KEY": SECRET_VALUE, "JUMPCLOUD_CLIENT_SECRET": SECRET_VALUE},
            None,
            "unset one",
        ),
    ],
)
def test_env_secret_errors(environ: dict[str, str], api_key_env: str | None, expected: str) -> None:
    # Given an incomplete or ambiguous environment
    # When / Then a SecretError explains it without echoing values
    with pytest.raises(SecretError, match=expected) as caught:
        secret_from_env(environ, api_key_env=api_key_env)
    assert SECRET_VALUE not in str(caught.value)
