"""Signed day certificates: every sealed manifest is signed, and verify checks the signatures.

The attacker in these tests holds everything the archive (DI-facing) role can reach in a
deployment that forgot role separation: the whole store, but not the signing key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from di_archiver.adapters.signing import LocalKeySigner, PublicKeyVerifier
from di_archiver.archive_format import decode_lines, encode_lines, keyed_line
from di_archiver.domain.certificate import Certificate
from di_archiver.domain.manifest import Manifest, ManifestObject, sha256_hex
from di_archiver.domain.seal import DaySealer
from di_archiver.domain.verify import ExpectedHead, verify_archive
from di_archiver.layout import certificate_key, manifest_key, sealed_day_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    ORG,
    PREFIX,
    Crash,
    FakeEngine,
    FakeSource,
    MemoryStore,
    day_ns,
    make_event,
    populate,
)

DAYS = [DAY0 + timedelta(days=i) for i in range(4)]


class RecordingPublisher:
    def __init__(self) -> None:
        self.heads: list[dict[str, Any]] = []

    def publish(self, head: Mapping[str, Any]) -> None:
        self.heads.append(dict(head))


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> LocalKeySigner:
    return LocalKeySigner.generate(tmp_path_factory.mktemp("keys") / "seal.pem")


@pytest.fixture
def verifier(signer: LocalKeySigner) -> PublicKeyVerifier:
    return signer.verifier()


def sealed_archive(
    signer: LocalKeySigner | None, publisher: RecordingPublisher | None = None
) -> tuple[MemoryStore, FakeSource]:
    source = FakeSource(now=day_ns(DAY0) + 6 * DAY)
    populate(source, DAY0, 5)
    store = MemoryStore()
    FakeEngine(source, store).archive_days(ORG, DAY0, 5)
    sealer(store, source, signer, publisher).seal_org(ORG, day_ns(DAY0) + 4 * DAY)
    return store, source


def sealer(
    store: MemoryStore,
    source: FakeSource,
    signer: LocalKeySigner | None,
    publisher: RecordingPublisher | None = None,
) -> DaySealer:
    return DaySealer(
        store=store,
        prefix=PREFIX,
        source=source,
        clock=lambda: source.now,
        signer=signer,
        publishers=[publisher] if publisher else [],
    )


def findings(store: MemoryStore, verifier: PublicKeyVerifier | None, **kw: Any) -> set[str]:
    report = verify_archive(store, prefix=PREFIX, verifier=verifier, **kw)
    return {f"{f.kind} {f.key}" for f in report.findings}


def test_every_sealed_manifest_is_signed_and_published(
    signer: LocalKeySigner, verifier: PublicKeyVerifier
) -> None:
    # Given an archive sealed with a signing key and a head publisher
    publisher = RecordingPublisher()
    store, _ = sealed_archive(signer, publisher)

    # When it is verified with the public key
    report = verify_archive(store, prefix=PREFIX, verifier=verifier)

    # Then every manifest carries a certificate that signs exactly its bytes
    assert report.findings == []
    assert report.signatures_checked == 4
    for day in DAYS:
        manifest = store.get(manifest_key(PREFIX, ORG, day))
        cert = Certificate.from_bytes(store.get(certificate_key(PREFIX, ORG, day)) or b"")
        assert manifest is not None
        assert cert.manifest_sha256 == sha256_hex(manifest)
        assert cert.public_key_sha256 == signer.fingerprint
    # And each signed day was published with its hash and signature
    assert [h["day"] for h in publisher.heads] == [d.isoformat() for d in DAYS]
    assert publisher.heads[-1]["manifest_sha256"] == report.chain_heads[ORG][1]


def rewrite_attack(store: MemoryStore, day: date, service: str = "directory") -> None:
    """Drop one sealed event; recompute metadata, the manifest and every later link."""
    key = sealed_day_key(PREFIX, ORG, service, day)
    lines = decode_lines(store.objects[key][0])
    kept = [keyed_line(line) for line in lines[1:]]
    encoded = encode_lines(kept)
    store.objects[key] = (encoded.body, encoded.metadata(fetched_at_ns=0))
    m_key = manifest_key(PREFIX, ORG, day)
    manifest = Manifest.from_bytes(store.objects[m_key][0])
    objects = tuple(
        ManifestObject(
            key=o.key,
            service=o.service,
            count=encoded.count,
            sha256=encoded.sha256,
            first_ts=encoded.metadata(fetched_at_ns=0)["di-first-ts"],
            last_ts=o.last_ts,
            size=len(encoded.body),
        )
        if o.key == key
        else o
        for o in manifest.objects
    )
    data = Manifest(
        org_id=ORG,
        day=day,
        objects=objects,
        di_count=manifest.di_count,
        previous_manifest_sha256=manifest.previous_manifest_sha256,
        sealed_at=manifest.sealed_at,
        repairs=manifest.repairs,
    ).to_bytes()
    store.objects[m_key] = (data, {"di-sha256": sha256_hex(data)})
    later = day + timedelta(days=1)
    while (next_key := manifest_key(PREFIX, ORG, later)) in store.objects:
        relinked = Manifest.from_bytes(store.objects[next_key][0]).relinked(sha256_hex(data))
        data = relinked.to_bytes()
        store.objects[next_key] = (data, {"di-sha256": sha256_hex(data)})
        later += timedelta(days=1)


def test_rewrite_attack_passes_the_chain_but_fails_the_signatures(
    signer: LocalKeySigner, verifier: PublicKeyVerifier
) -> None:
    # Given a signed archive in which one sealed event was dropped and everything an archive
    # writer can recompute was recomputed (object metadata, manifest, every later link)
    store, _ = sealed_archive(signer)
    rewrite_attack(store, DAYS[1])

    # Then hashes, counts and chain alone see nothing (the attack the certificates exist for)
    assert findings(store, None) == set()
    # And the signature check reports the rewritten day and every relinked one after it
    assert findings(store, verifier) == {
        f"signature {certificate_key(PREFIX, ORG, day)}" for day in DAYS[1:]
    }


def test_certificates_signed_with_another_key_fail(
    signer: LocalKeySigner, verifier: PublicKeyVerifier, tmp_path: Path
) -> None:
    # Given the rewrite attack, finished by re-signing with a key the attacker made
    store, source = sealed_archive(signer)
    rewrite_attack(store, DAYS[1])
    forger = LocalKeySigner.generate(tmp_path / "forged.pem")
    sealer(store, source, forger).certify_days(ORG, DAYS)

    # Then every forged certificate fails with the trusted public key
    report = verify_archive(store, prefix=PREFIX, verifier=verifier)
    assert {f.kind for f in report.findings} == {"signature"}
    assert len(report.findings) == 4
    assert all("does not verify" in f.detail for f in report.findings)


def test_deleting_the_newest_day_is_found_with_a_published_head(
    signer: LocalKeySigner, verifier: PublicKeyVerifier
) -> None:
    # Given a signed archive whose heads were published, and then its newest day deleted
    publisher = RecordingPublisher()
    store, _ = sealed_archive(signer, publisher)
    newest = publisher.heads[-1]
    for key in [k for k in store.objects if f"dt={DAYS[-1]}" in k]:
        store.delete(key)

    # Then the shorter chain is still valid and signed...
    assert findings(store, verifier) == set()
    # ...but not against the published head
    head = ExpectedHead(None, date.fromisoformat(newest["day"]), newest["manifest_sha256"])
    assert findings(store, verifier, expected_heads=[head]) == {
        f"head {manifest_key(PREFIX, ORG, DAYS[-1])}"
    }


def test_published_head_of_an_untouched_archive_matches(
    signer: LocalKeySigner, verifier: PublicKeyVerifier
) -> None:
    publisher = RecordingPublisher()
    store, _ = sealed_archive(signer, publisher)
    newest = publisher.heads[-1]
    head = ExpectedHead(ORG, date.fromisoformat(newest["day"]), newest["manifest_sha256"])
    assert findings(store, verifier, expected_heads=[head]) == set()
    # A wrong hash for an existing day is a finding too
    wrong = ExpectedHead(ORG, head.day, "0" * 64)
    assert findings(store, verifier, expected_heads=[wrong]) == {
        f"head {manifest_key(PREFIX, ORG, head.day)}"
    }


def test_repair_and_relink_are_re_signed_and_re_published(
    signer: LocalKeySigner, verifier: PublicKeyVerifier
) -> None:
    # Given a signed archive, and a late event archived for an already sealed day
    publisher = RecordingPublisher()
    store, source = sealed_archive(signer, publisher)
    source.add(make_event(10_000, day_ns(DAYS[1]) + 3 * 3600 * 10**9 + 5))
    FakeEngine(source, store).snapshot_bucket(
        ORG, day_ns(DAYS[1]) + 3 * 3600 * 10**9, day_ns(DAYS[1]) + 4 * 3600 * 10**9
    )
    publisher.heads.clear()

    # When the day is sealed again (a repair, which relinks every later manifest)
    sealer(store, source, signer, publisher).seal_org(ORG, day_ns(DAY0) + 4 * DAY)

    # Then every rewritten manifest was signed again and published, and all signatures verify
    assert [h["day"] for h in publisher.heads] == [d.isoformat() for d in DAYS[1:]]
    assert findings(store, verifier) == set()


def test_archive_sealed_before_signing_is_certified_by_the_next_seal(
    signer: LocalKeySigner, verifier: PublicKeyVerifier
) -> None:
    # Given an archive sealed without a signer
    store, source = sealed_archive(None)
    assert len(findings(store, verifier)) == 4  # no certificates yet

    # When a seal pass runs with a signer
    sealer(store, source, signer).seal_org(ORG, day_ns(DAY0) + 4 * DAY)

    # Then every stored manifest is signed
    assert findings(store, verifier) == set()


@pytest.mark.parametrize("crash_at", range(1, 60))
def test_a_crash_at_any_write_still_ends_fully_signed(
    signer: LocalKeySigner, verifier: PublicKeyVerifier, crash_at: int
) -> None:
    # Given a sealing pass (with a late-event repair) killed at one write
    source = FakeSource(now=day_ns(DAY0) + 6 * DAY)
    populate(source, DAY0, 5)
    store = MemoryStore()
    FakeEngine(source, store).archive_days(ORG, DAY0, 5)
    sealer(store, source, signer).seal_org(ORG, day_ns(DAY0) + 3 * DAY)
    source.add(make_event(10_000, day_ns(DAYS[0]) + 7))
    FakeEngine(source, store).snapshot_bucket(ORG, day_ns(DAYS[0]), day_ns(DAYS[0]) + 3600 * 10**9)
    store.fail_at = {store.mutations + crash_at}
    with contextlib.suppress(Crash):
        sealer(store, source, signer).seal_org(ORG, day_ns(DAY0) + 4 * DAY)

    # When the next pass runs
    sealer(store, source, signer).seal_org(ORG, day_ns(DAY0) + 4 * DAY)

    # Then the archive is complete and every manifest carries a valid certificate
    assert findings(store, verifier) == set()
