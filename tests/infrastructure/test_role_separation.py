"""Separation of duties, judged on the exact policies of the synthesised stack.

Every key is built by the runtime's own layout functions, and every decision combines the
role's identity policy with the bucket policy or key policy, as AWS does (see iam_eval).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from di_archiver.domain.manifest import pending_relink_key
from di_archiver.layout import (
    NS_PER_DAY,
    bucket_object_key,
    certificate_key,
    day_start_ns,
    late_object_key,
    manifest_key,
    sealed_day_key,
)

from .conftest import ORG, Synthesised
from .iam_eval import BUCKET, Account, wildcard_match

DAY = date(2026, 5, 1)
PREFIX = "di"
HOUR_NS = NS_PER_DAY // 24

HOURLY = bucket_object_key(PREFIX, ORG, "directory", day_start_ns(DAY), day_start_ns(DAY) + HOUR_NS)
STAGED = late_object_key(PREFIX, ORG, "directory", day_start_ns(DAY), day_start_ns(DAY) + HOUR_NS)
SEALED = {
    "sealed day object": sealed_day_key(PREFIX, ORG, "directory", DAY),
    "manifest": manifest_key(PREFIX, ORG, DAY),
    "certificate": certificate_key(PREFIX, ORG, DAY),
    "relink marker": pending_relink_key(PREFIX, ORG),
}


def s3(key: str) -> str:
    return f"arn:aws:s3:::{BUCKET}/{key}"


@pytest.fixture(scope="module")
def account(default: Synthesised) -> Account:
    return Account(default.raw)


def _role(default: Synthesised, account: Account, duty: str) -> str:
    construct = {"archive": default.stack.archiver, "seal": default.stack.sealer}.get(
        duty, default.stack.verifier
    )
    return account.role_arn(default.stack.get_logical_id(construct.role.node.default_child))


@pytest.fixture(scope="module")
def roles(default: Synthesised, account: Account) -> dict[str, str]:
    return {duty: _role(default, account, duty) for duty in ("archive", "seal", "verify")}


@pytest.fixture(scope="module")
def signing_key(default: Synthesised, account: Account) -> str:
    return account.resolve.arns[
        default.stack.get_logical_id(default.stack.signing_key.node.default_child)  # type: ignore[arg-type]
    ]


@pytest.mark.parametrize("what", sorted(SEALED))
@pytest.mark.parametrize("action", ["s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"])
def test_archive_role_cannot_write_or_delete_sealed_keys(
    account: Account, roles: dict[str, str], what: str, action: str
) -> None:
    assert not account.allowed(roles["archive"], action, s3(SEALED[what]))


def test_archive_role_writes_hourly_objects_and_reads_everything(
    account: Account, roles: dict[str, str]
) -> None:
    archive = roles["archive"]
    assert account.allowed(archive, "s3:PutObject", s3(HOURLY))
    assert account.allowed(archive, "s3:DeleteObject", s3(HOURLY))
    # A late re-read of a sealed day is staged, never written into it
    assert account.allowed(archive, "s3:PutObject", s3(STAGED))
    for key in [HOURLY, STAGED, *SEALED.values()]:
        assert account.allowed(archive, "s3:GetObject", s3(key))
    assert account.allowed(archive, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}")
    # And nothing outside the hourly layout, even under the prefix
    assert not account.allowed(archive, "s3:PutObject", s3(f"{PREFIX}/notes.txt"))
    assert not account.allowed(archive, "s3:PutObjectRetention", s3(HOURLY))


def test_archive_role_cannot_sign(
    account: Account, roles: dict[str, str], signing_key: str
) -> None:
    assert not account.allowed(roles["archive"], "kms:Sign", signing_key)


def test_seal_role_can_seal_sign_and_publish(
    account: Account, roles: dict[str, str], signing_key: str, default: Synthesised
) -> None:
    seal = roles["seal"]
    for key in SEALED.values():
        assert account.allowed(seal, "s3:PutObject", s3(key))
        assert account.allowed(seal, "s3:PutObjectRetention", s3(key))
    assert account.allowed(seal, "s3:DeleteObject", s3(HOURLY))  # merged hourly objects
    assert account.allowed(seal, "s3:DeleteObject", s3(STAGED))  # merged staged objects
    assert account.allowed(seal, "s3:DeleteObject", s3(SEALED["relink marker"]))
    assert account.allowed(seal, "kms:Sign", signing_key)
    assert account.allowed(seal, "kms:GetPublicKey", signing_key)
    bus = account.resolve(default.stack.resolve(default.stack.head_bus_arn))
    assert account.allowed(seal, "events:PutEvents", bus)
    # But it never talks to DI: no credential
    secret = account.resolve.arns[
        default.stack.get_logical_id(default.stack.secret.node.default_child)  # type: ignore[arg-type]
    ]
    assert not account.allowed(seal, "secretsmanager:GetSecretValue", secret)
    assert account.allowed(roles["archive"], "secretsmanager:GetSecretValue", secret)
    # And even it cannot delete old versions or bypass governance retention of sealed days
    assert not account.allowed(seal, "s3:DeleteObjectVersion", s3(SEALED["sealed day object"]))
    assert not account.allowed(
        seal, "s3:BypassGovernanceRetention", s3(SEALED["sealed day object"])
    )


def test_verify_role_only_reads(account: Account, roles: dict[str, str], signing_key: str) -> None:
    verify = roles["verify"]
    for key in [HOURLY, *SEALED.values()]:
        assert account.allowed(verify, "s3:GetObject", s3(key))
        for action in ("s3:PutObject", "s3:DeleteObject", "s3:PutObjectRetention"):
            assert not account.allowed(verify, action, s3(key))
    assert account.allowed(verify, "kms:GetPublicKey", signing_key)
    assert not account.allowed(verify, "kms:Sign", signing_key)


def test_no_other_principal_may_write_sealed_keys_or_sign(
    account: Account, signing_key: str
) -> None:
    # Given an administrator whose IAM policy allows everything
    admin = "arn:aws:iam::111122223333:role/Admin"
    everything: list[dict[str, Any]] = [{"Effect": "Allow", "Action": "*", "Resource": "*"}]
    # Then the bucket policy still refuses writes to sealed keys, and the key policy signing
    for key in SEALED.values():
        assert not account.allowed(admin, "s3:PutObject", s3(key), identity=everything)
        assert not account.allowed(admin, "s3:DeleteObject", s3(key), identity=everything)
    assert not account.allowed(admin, "kms:Sign", signing_key, identity=everything)
    # While hourly objects stay manageable (the evaluator is not denying everything)
    assert account.allowed(admin, "s3:PutObject", s3(HOURLY), identity=everything)


def test_evaluator_wildcards_follow_iam() -> None:
    # '?' is exactly one character, '*' spans '/'
    hourly = "di/org=*/svc=*/dt=*/????-????.jsonl.gz"
    assert wildcard_match(hourly, HOURLY)
    assert not wildcard_match(hourly, SEALED["sealed day object"])
    assert not wildcard_match(hourly, "di/org=a/svc=b/dt=c/000-0100.jsonl.gz")
    assert wildcard_match("di/*", "di/a/b/c")
    assert not wildcard_match("di/a.b", "di/aXb")
