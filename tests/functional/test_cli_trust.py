"""verify, seal and keygen from the command line: signatures, published heads, failing closed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from di_archiver.adapters.local_store import LocalArchiveStore
from di_archiver.cli import main
from di_archiver.layout import manifest_key
from tests.unit.integrity.fakes import DAY, DAY0, ORG, PREFIX, FakeEngine, FakeSource, day_ns
from tests.unit.integrity.fakes import populate as populate_source
from tests.unit.trust.test_certificates import DAYS, rewrite_attack


@pytest.fixture
def signed_archive(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A local archive sealed with ``seal --signing-key`` (checkpoint file as the CLI reads)."""
    # Given a key from keygen, and four closed days archived locally
    key = tmp_path / "keys" / "seal.pem"
    key.parent.mkdir()
    assert main(["keygen", "--out", str(key)]) == 0
    archive = tmp_path / "archive"
    source = FakeSource(now=day_ns(DAY0) + 6 * DAY)
    populate_source(source, DAY0, 5)
    FakeEngine(source, LocalArchiveStore(archive)).archive_days(ORG, DAY0, 5)  # type: ignore[arg-type]
    checkpoint = tmp_path / "checkpoints.json"
    document = {"schema_version": 1, "bucket_minutes": 60, "closed_through": "2026-05-05T00:00:00Z"}
    checkpoint.write_text(json.dumps({ORG: document}))
    heads = tmp_path / "heads.jsonl"
    code = main(
        [
            "seal", "--offline", "--org-id", ORG, "--archive", str(archive),
            "--checkpoint", str(checkpoint), "--signing-key", str(key),
            "--heads-file", str(heads),
        ]
    )  # fmt: skip
    assert code == 0
    return archive, key.with_name("seal.pub.pem"), heads


def newest_head(heads: Path) -> str:
    last = json.loads(heads.read_text().splitlines()[-1])
    return f"{last['org']}:{last['day']}:{last['manifest_sha256']}"


def test_signed_archive_verifies_with_the_public_key_and_the_published_head(
    signed_archive: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    archive, public, heads = signed_archive
    code = main(
        ["verify", "--archive", str(archive), "--public-key", str(public),
         "--expect-head", newest_head(heads)]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "checked 4 signature(s)" in out


def test_rewrite_attack_is_a_signature_failure(
    signed_archive: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    # Given the rewrite attack on the local copy (everything recomputed but the signature)
    archive, public, _ = signed_archive
    store = _MemoryOverLocal(archive)
    rewrite_attack(store, DAYS[1])  # type: ignore[arg-type]
    store.flush()
    # Then verify without a key passes the hashes and chain, and with the key fails
    assert main(["verify", "--archive", str(archive)]) == 0
    capsys.readouterr()
    assert main(["verify", "--archive", str(archive), "--public-key", str(public)]) == 1
    out = capsys.readouterr().out
    assert "FINDING signature:" in out
    assert out.count("FINDING signature:") == 3  # the rewritten day and both relinked ones


def test_deleting_the_newest_day_is_found_with_the_published_head(
    signed_archive: tuple[Path, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    archive, public, heads = signed_archive
    head = newest_head(heads)
    for path in list(archive.rglob(f"*dt={DAYS[-1]}*")):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    assert main(["verify", "--archive", str(archive), "--public-key", str(public)]) == 0
    capsys.readouterr()
    code = main(
        ["verify", "--archive", str(archive), "--public-key", str(public), "--expect-head", head]
    )
    out = capsys.readouterr().out
    assert code == 1
    assert f"FINDING head: {manifest_key(PREFIX, ORG, DAYS[-1])}" in out


def test_verify_fails_closed_on_missing_empty_and_non_archive_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["verify", "--archive", str(tmp_path / "does-not-exist")]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["verify", "--archive", str(tmp_path / "empty")]) == 1
    assert "FINDING empty" in capsys.readouterr().out
    (tmp_path / "file").write_text("not an archive")
    assert main(["verify", "--archive", str(tmp_path / "file")]) == 2
    assert main(["verify", "--archive", str(tmp_path / "empty"), "--expect-head", "x:y"]) == 2


class _MemoryOverLocal:
    """The attacker's view: a dict of every object, written back to disk afterwards."""

    def __init__(self, root: Path) -> None:
        self.local = LocalArchiveStore(root)
        self.objects = {
            s.key: (self.local.get(s.key) or b"", dict(s.metadata)) for s in self.local.list("")
        }

    def flush(self) -> None:
        for key, (body, meta) in self.objects.items():
            self.local.put(key, body, meta)
