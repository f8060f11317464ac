"""The key-file signer and the PEM verifier: what an auditor and a local archive use."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from di_archiver.adapters.signing import LocalKeySigner, PublicKeyVerifier
from di_archiver.errors import SettingsError, SigningError


def test_generated_key_is_private_to_its_owner_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "seal.pem"
    LocalKeySigner.generate(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(SettingsError, match="refusing to overwrite"):
        LocalKeySigner.generate(path)


def test_public_pem_verifies_what_the_key_file_signed(tmp_path: Path) -> None:
    # Given a key file and its public half exported as PEM
    signer = LocalKeySigner.generate(tmp_path / "seal.pem")
    public = tmp_path / "seal.pub.pem"
    public.write_bytes(signer.verifier().public_pem())
    verifier = PublicKeyVerifier.from_pem_file(public)
    digest = hashlib.sha256(b"x").digest()

    # Then its signatures verify, altered ones and other algorithms do not
    signature = signer.sign_digest(digest)
    assert verifier.verify_digest(digest, signature, "ECDSA_SHA_256")
    assert not verifier.verify_digest(
        digest, signature[:-1] + bytes([signature[-1] ^ 1]), "ECDSA_SHA_256"
    )
    assert not verifier.verify_digest(digest, signature, "RSASSA_PSS_SHA_256")
    assert verifier.fingerprint == signer.fingerprint
    # And loading the same key file again gives the same key
    assert LocalKeySigner.from_pem_file(tmp_path / "seal.pem").fingerprint == signer.fingerprint


def test_bad_key_files_say_what_to_do_without_echoing_them(tmp_path: Path) -> None:
    secret_looking = tmp_path / "bad.pem"
    secret_looking.write_text(
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVl\n-----END PRIVATE KEY-----\n"
    )
    with pytest.raises(SettingsError) as raised:
        LocalKeySigner.from_pem_file(secret_looking)
    assert "c2VjcmV0" not in str(raised.value)
    assert "keygen" in str(raised.value)
    with pytest.raises(SettingsError, match="cannot read"):
        PublicKeyVerifier.from_pem_file(tmp_path / "absent.pem")


def test_only_sha256_digests_are_signed(tmp_path: Path) -> None:
    signer = LocalKeySigner.generate(tmp_path / "seal.pem")
    with pytest.raises(SigningError, match="32-byte"):
        signer.sign_digest(b"not a digest")
