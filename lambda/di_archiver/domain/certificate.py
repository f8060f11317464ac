"""Day certificates: a signature over a day manifest's SHA-256, stored beside the manifest.

The hash chain proves nothing was removed *inside* it, but anyone who can write manifests can
recompute the whole chain after dropping an event. The certificate closes that gap: the seal
role signs the manifest's SHA-256 with an asymmetric key (KMS ``SIGN_VERIFY``, ECC_NIST_P256,
``ECDSA_SHA_256``, ``MessageType=DIGEST``) that the archive (DI-facing) role cannot use, and
``verify`` checks it with the public key only. A rewritten manifest then either has no valid
certificate or one signed by a key the auditor does not trust.

The certificate is canonical JSON (see :func:`~.manifest.canonical_json`):
``schema_version``, ``org``, ``day``, ``manifest_key``, ``manifest_sha256``, ``algorithm``,
``key_id``, ``public_key_sha256`` (fingerprint of the signing key), ``signature`` (base64 of
the DER signature) and ``signed_at``. Only ``manifest_sha256`` is signed; the manifest it
hashes already names its org, day, objects and predecessor.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from di_archiver.domain.manifest import ManifestError, canonical_json, sha256_hex
from di_archiver.domain.ports import SignatureVerifier, Signer
from di_archiver.layout import CERTIFICATE_SUFFIX, DATE_PARTITION, ORG_PARTITION, manifest_key
from di_archiver.timestamps import format_timestamp_ns

CERTIFICATE_SCHEMA_VERSION = 1
SIGNING_ALGORITHM = "ECDSA_SHA_256"


@dataclass(frozen=True, slots=True)
class Certificate:
    """The signature of one day manifest."""

    org_id: str
    day: date
    manifest_key: str
    manifest_sha256: str
    algorithm: str
    key_id: str
    public_key_sha256: str
    signature: bytes
    signed_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": CERTIFICATE_SCHEMA_VERSION,
            "org": self.org_id,
            "day": self.day.isoformat(),
            "manifest_key": self.manifest_key,
            "manifest_sha256": self.manifest_sha256,
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "public_key_sha256": self.public_key_sha256,
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "signed_at": self.signed_at,
        }

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @classmethod
    def from_bytes(cls, data: bytes, *, key: str = "certificate") -> Certificate:
        """Parse and validate; any deviation is a :class:`ManifestError`."""
        try:
            document = json.loads(data.decode("utf-8"))
            if not isinstance(document, dict):
                raise TypeError("not a JSON object")
            if document.get("schema_version") != CERTIFICATE_SCHEMA_VERSION:
                raise ValueError(f"unknown schema_version {document.get('schema_version')!r}")
            return cls(
                org_id=_str(document["org"]),
                day=date.fromisoformat(_str(document["day"])),
                manifest_key=_str(document["manifest_key"]),
                manifest_sha256=_str(document["manifest_sha256"]),
                algorithm=_str(document["algorithm"]),
                key_id=_str(document["key_id"]),
                public_key_sha256=_str(document["public_key_sha256"]),
                signature=base64.b64decode(_str(document["signature"]), validate=True),
                signed_at=_str(document["signed_at"]),
            )
        except (ValueError, TypeError, KeyError, UnicodeDecodeError, binascii.Error) as exc:
            raise ManifestError(f"{key} is not a valid certificate: {exc!r}") from exc


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def sign_manifest(
    signer: Signer,
    *,
    prefix: str,
    org_id: str,
    day: date,
    manifest_bytes: bytes,
    now_ns: int,
) -> Certificate:
    """Sign the SHA-256 of ``manifest_bytes`` (the exact bytes stored)."""
    digest_hex = sha256_hex(manifest_bytes)
    return Certificate(
        org_id=org_id,
        day=day,
        manifest_key=manifest_key(prefix, org_id, day),
        manifest_sha256=digest_hex,
        algorithm=signer.algorithm,
        key_id=signer.key_id,
        public_key_sha256=signer.fingerprint,
        signature=signer.sign_digest(bytes.fromhex(digest_hex)),
        signed_at=format_timestamp_ns(now_ns),
    )


def check_certificate(
    certificate: Certificate,
    *,
    verifier: SignatureVerifier,
    prefix: str,
    org_id: str,
    day: date,
    manifest_bytes: bytes,
) -> str | None:
    """None when the certificate is a valid signature of exactly these bytes, else why not."""
    actual = sha256_hex(manifest_bytes)
    if certificate.org_id != org_id or certificate.day != day:
        return f"certifies org {certificate.org_id} day {certificate.day}, not this day"
    if certificate.manifest_key != manifest_key(prefix, org_id, day):
        return f"certifies {certificate.manifest_key}, not this manifest"
    if certificate.manifest_sha256 != actual:
        return "certifies another manifest (SHA-256 differs): the manifest was rewritten"
    if not verifier.verify_digest(
        bytes.fromhex(actual), certificate.signature, certificate.algorithm
    ):
        return (
            f"signature does not verify with the public key {verifier.fingerprint[:16]}...: "
            "the manifest or its certificate was forged"
        )
    return None


def parse_certificate_name(name: str) -> date | None:
    """The day of a certificate file name ``dt=YYYY-MM-DD.cert.json``, else None."""
    head = f"{DATE_PARTITION}="
    if not (name.startswith(head) and name.endswith(CERTIFICATE_SUFFIX)):
        return None
    try:
        return date.fromisoformat(name[len(head) : -len(CERTIFICATE_SUFFIX)])
    except ValueError:
        return None


def certificate_org(folder: str) -> str | None:
    """The org of a manifest folder name ``org=<id>``."""
    head = f"{ORG_PARTITION}="
    return folder[len(head) :] if folder.startswith(head) else None


def head_document(certificate: Certificate) -> dict[str, Any]:
    """What a :class:`~.ports.HeadPublisher` records for a signed day (no archive content)."""
    return {
        "org": certificate.org_id,
        "day": certificate.day.isoformat(),
        "manifest_sha256": certificate.manifest_sha256,
        "signature": base64.b64encode(certificate.signature).decode("ascii"),
        "algorithm": certificate.algorithm,
        "key_id": certificate.key_id,
        "public_key_sha256": certificate.public_key_sha256,
        "signed_at": certificate.signed_at,
    }
