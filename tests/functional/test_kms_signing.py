"""Day certificates signed by an asymmetric KMS key (moto) and checked with its public key only."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from moto import mock_aws
from moto.kms.models import kms_backends

from di_archiver.adapters.s3_store import S3ArchiveStore
from di_archiver.adapters.signing import KmsSigner, PublicKeyVerifier, kms_public_key
from di_archiver.domain.seal import DaySealer
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import SettingsError, SigningError
from tests.unit.integrity.fakes import DAY, DAY0, ORG, PREFIX, FakeEngine, FakeSource, day_ns
from tests.unit.integrity.fakes import populate as populate_source

BUCKET = "di-archive-signing"
REGION = "us-east-1"


class _DigestSigningKey:
    """moto 5 ignores ``MessageType=DIGEST`` and hashes the digest again; real KMS signs the
    digest as given. This stands in for moto's key so the emulator behaves like KMS."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.private_key = inner.private_key

    def sign(self, message: bytes, signing_algorithm: str) -> bytes:
        assert signing_algorithm == "ECDSA_SHA_256"
        return bytes(self.private_key.sign(message, ec.ECDSA(utils.Prehashed(hashes.SHA256()))))

    def public_key(self) -> bytes:
        return bytes(self.inner.public_key())


@pytest.fixture
def signing_key() -> Iterator[str]:
    with mock_aws():
        kms = boto3.client("kms", region_name=REGION)
        key_id = kms.create_key(KeyUsage="SIGN_VERIFY", KeySpec="ECC_NIST_P256")["KeyMetadata"][
            "Arn"
        ]
        key = kms_backends["123456789012"][REGION].keys[key_id.rsplit("/", 1)[1]]
        key.private_key = _DigestSigningKey(key.private_key)
        boto3.client("s3", region_name=REGION).create_bucket(Bucket=BUCKET)
        yield key_id


def test_kms_signer_signs_the_digest_that_the_public_key_verifies(signing_key: str) -> None:
    # Given a KMS signer and the public key fetched with GetPublicKey
    signer = KmsSigner(signing_key, kms_client=boto3.client("kms", region_name=REGION))
    verifier = kms_public_key(signing_key, kms_client=boto3.client("kms", region_name=REGION))
    digest = hashlib.sha256(b"manifest bytes").digest()

    # When a digest is signed
    signature = signer.sign_digest(digest)

    # Then the public key verifies it, and nothing else
    assert verifier.verify_digest(digest, signature, "ECDSA_SHA_256")
    assert not verifier.verify_digest(hashlib.sha256(b"other").digest(), signature, "ECDSA_SHA_256")
    assert signer.fingerprint == verifier.fingerprint


def test_sealing_with_kms_and_verifying_offline_with_an_exported_pem(
    signing_key: str, tmp_path: Path
) -> None:
    # Given an S3 archive sealed by the KMS signer
    source = FakeSource(now=day_ns(DAY0) + 4 * DAY)
    populate_source(source, DAY0, 3)
    store = S3ArchiveStore(BUCKET, s3_client=boto3.client("s3", region_name=REGION))
    FakeEngine(source, store).archive_days(ORG, DAY0, 3)  # type: ignore[arg-type]
    signer = KmsSigner(signing_key, kms_client=boto3.client("kms", region_name=REGION))
    DaySealer(store=store, prefix=PREFIX, clock=lambda: source.now, signer=signer).seal_org(
        ORG, day_ns(DAY0) + 2 * DAY
    )

    # When the public key is exported as PEM (what an auditor receives) and used offline
    pem = tmp_path / "archive-signing.pem"
    pem.write_bytes(kms_public_key(signing_key, kms_client=boto3.client("kms")).public_pem())
    report = verify_archive(store, prefix=PREFIX, verifier=PublicKeyVerifier.from_pem_file(pem))

    # Then every manifest's signature verifies
    assert report.findings == []
    assert report.signatures_checked == 2


def test_kms_errors_are_signing_errors_naming_the_key() -> None:
    with mock_aws():
        signer = KmsSigner("alias/missing", kms_client=boto3.client("kms", region_name=REGION))
        with pytest.raises(SigningError, match="alias/missing"):
            signer.sign_digest(b"\0" * 32)


def test_a_symmetric_key_is_refused_as_a_public_key() -> None:
    with mock_aws():
        kms = boto3.client("kms", region_name=REGION)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        with pytest.raises((SettingsError, SigningError)):
            kms_public_key(key_id, kms_client=kms)
