"""Signers and signature verifiers for day certificates: AWS KMS, or a local key file.

Verification always uses the ``cryptography`` library on the *public* key, whether that key
came from ``kms:GetPublicKey`` or from a PEM file an auditor was given, so a copy of the
archive can be verified with no AWS access. Only adapters import boto3; ``cryptography`` is
imported lazily (nothing at import time).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from di_archiver.adapters.s3_store import aws_client, error_code
from di_archiver.domain.certificate import SIGNING_ALGORITHM
from di_archiver.errors import SettingsError, SigningError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import (
        EllipticCurvePrivateKey,
        EllipticCurvePublicKey,
    )

_DIGEST_BYTES = 32


def _fingerprint(public_key: EllipticCurvePublicKey) -> str:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def _check_digest(digest: bytes) -> None:
    if len(digest) != _DIGEST_BYTES:
        raise SigningError(f"expected a 32-byte SHA-256 digest, got {len(digest)} bytes")


def _read_key_file(source: Path, what: str) -> bytes:
    try:
        return source.read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read {what} {source}: {exc.strerror}") from None


def _p256_public(key: Any, source: str) -> EllipticCurvePublicKey:
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SettingsError(f"{source} is not an ECC NIST P-256 public key")
    return key


class PublicKeyVerifier:
    """Verifies ECDSA_SHA_256 signatures over SHA-256 digests with one P-256 public key."""

    def __init__(self, public_key: EllipticCurvePublicKey) -> None:
        self._key = public_key
        self._fingerprint = _fingerprint(public_key)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def verify_digest(self, digest: bytes, signature: bytes, algorithm: str) -> bool:
        from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: PLC0415

        if algorithm != SIGNING_ALGORITHM or len(digest) != _DIGEST_BYTES:
            return False
        try:
            self._key.verify(signature, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))
        except (InvalidSignature, ValueError):
            return False
        return True

    @classmethod
    def from_pem_file(cls, path: str | os.PathLike[str]) -> PublicKeyVerifier:
        """A PEM public key (``-----BEGIN PUBLIC KEY-----``) or, locally, a private key file."""
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

        source = Path(path)
        data = _read_key_file(source, "public key")
        try:
            if b"PRIVATE KEY" in data:
                private = serialization.load_pem_private_key(data, password=None)
                return cls(_p256_public(private.public_key(), str(source)))
            return cls(_p256_public(serialization.load_pem_public_key(data), str(source)))
        except (ValueError, TypeError) as exc:
            raise SettingsError(
                f"{source} is not a PEM public key ({type(exc).__name__}); export it with "
                "`aws kms get-public-key` or `di-archiver keygen`"
            ) from None

    @classmethod
    def from_der(cls, der: bytes, *, source: str) -> PublicKeyVerifier:
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

        try:
            return cls(_p256_public(serialization.load_der_public_key(der), source))
        except (ValueError, TypeError) as exc:
            raise SettingsError(f"{source} returned no usable public key") from exc

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415

        return self._key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class LocalKeySigner:
    """Signs with an EC P-256 private key in a PEM file (demo, tests, local archives)."""

    def __init__(self, private_key: EllipticCurvePrivateKey, *, source: str) -> None:
        self._key = private_key
        self._fingerprint = _fingerprint(private_key.public_key())
        self._source = source

    def __repr__(self) -> str:
        return f"LocalKeySigner(key={self._fingerprint[:16]}...)"

    @property
    def key_id(self) -> str:
        return f"local:{self._fingerprint}"

    @property
    def algorithm(self) -> str:
        return SIGNING_ALGORITHM

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def sign_digest(self, digest: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec, utils  # noqa: PLC0415

        _check_digest(digest)
        return self._key.sign(digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))

    def verifier(self) -> PublicKeyVerifier:
        return PublicKeyVerifier(self._key.public_key())

    @classmethod
    def from_pem_file(cls, path: str | os.PathLike[str]) -> LocalKeySigner:
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

        source = Path(path)
        data = _read_key_file(source, "signing key")
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            # Never echo the file: it is a private key.
            raise SettingsError(
                f"{source} is not an unencrypted PEM private key; create one with "
                "`di-archiver keygen`"
            ) from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(
            key.curve, ec.SECP256R1
        ):
            raise SettingsError(f"{source} is not an ECC NIST P-256 private key")
        return cls(key, source=str(source))

    @classmethod
    def generate(cls, path: str | os.PathLike[str]) -> LocalKeySigner:
        """Create a new P-256 key file readable by its owner only; refuse to overwrite one."""
        from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
        from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

        target = Path(path)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise SettingsError(f"{target} exists; refusing to overwrite a signing key") from None
        except OSError as exc:
            raise SettingsError(f"cannot create signing key {target}: {exc.strerror}") from None
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        return cls(key, source=str(target))


class KmsSigner:
    """Signs digests with an asymmetric KMS key (``SIGN_VERIFY``, ECC_NIST_P256).

    Only the seal role may call ``kms:Sign`` on the key; ``verify`` fetches the public key
    (``kms:GetPublicKey``) and checks signatures locally.
    """

    def __init__(
        self, key_id: str, *, kms_client: Any | None = None, endpoint_url: str | None = None
    ) -> None:
        if not key_id:
            raise SettingsError("a KMS signing key id is empty")
        self._key_id = key_id
        self._client = kms_client
        self._endpoint_url = endpoint_url
        self._fingerprint: str | None = None

    def __repr__(self) -> str:
        return f"KmsSigner(key_id={self._key_id!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("kms", endpoint_url=self._endpoint_url)
        return self._client

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def algorithm(self) -> str:
        return SIGNING_ALGORITHM

    @property
    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = kms_public_key(self._key_id, kms_client=self.client).fingerprint
        return self._fingerprint

    def sign_digest(self, digest: bytes) -> bytes:
        _check_digest(digest)
        try:
            response = self.client.sign(
                KeyId=self._key_id,
                Message=digest,
                MessageType="DIGEST",
                SigningAlgorithm=SIGNING_ALGORITHM,
            )
        except (ClientError, BotoCoreError) as exc:
            raise SigningError(f"KMS Sign with {self._key_id} failed: {error_code(exc)}") from exc
        return bytes(response["Signature"])


def kms_public_key(
    key_id: str, *, kms_client: Any | None = None, endpoint_url: str | None = None
) -> PublicKeyVerifier:
    """The KMS key's public half (``kms:GetPublicKey``) as a local verifier."""
    client = kms_client
    if client is None:
        client = aws_client("kms", endpoint_url=endpoint_url)
    try:
        response = client.get_public_key(KeyId=key_id)
    except (ClientError, BotoCoreError) as exc:
        raise SigningError(f"KMS GetPublicKey for {key_id} failed: {error_code(exc)}") from exc
    if response.get("KeyUsage") != "SIGN_VERIFY":
        raise SettingsError(f"KMS key {key_id} is not a SIGN_VERIFY key")
    return PublicKeyVerifier.from_der(bytes(response["PublicKey"]), source=f"KMS key {key_id}")
