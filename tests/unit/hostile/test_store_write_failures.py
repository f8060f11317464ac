"""Finding 1: a write that fails half-way (full disk, crash) never makes a bucket look archived.

The local store keeps metadata in a sidecar beside the object. Before the fix the sidecar was
renamed first, so a full disk during the content write left new metadata over old content; the
next run compared its fetch with the sidecar's hash, called the bucket "unchanged" and moved
the checkpoint past events that were never stored.
"""

from __future__ import annotations

import errno
import gzip
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from di_archiver.adapters import local_store
from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.archive_format import META_SHA256, encode_lines, sort_key
from di_archiver.domain.engine import ArchiveEngine, EngineRunError
from di_archiver.errors import CheckpointError, StoreError
from di_archiver.timestamps import parse_timestamp_ns
from tests.unit.engine.fakes import FakeSource, event
from tests.unit.engine.helpers import CONFIG, Clock

ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"
KEY = "di/org=x/svc=directory/dt=2026-05-04/0900-1000.jsonl.gz"


class FullDisk:
    """``os.replace`` that fails with ENOSPC on chosen calls (counting from 1)."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.calls = 0
        self._real: Callable[..., None] = os.replace

    def __call__(self, src: object, dst: object) -> None:
        self.calls += 1
        if self.calls in self.failing:
            raise OSError(errno.ENOSPC, "No space left on device")
        self._real(src, dst)


def body_of(*lines: bytes) -> tuple[bytes, dict[str, str]]:
    pairs = [(sort_key(i, {"id": str(i)}, line), line) for i, line in enumerate(lines)]
    encoded = encode_lines(pairs)
    return encoded.body, encoded.metadata(fetched_at_ns=0)


@pytest.mark.parametrize("failing_rename", [1, 2])
def test_a_torn_write_never_pairs_metadata_with_other_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_rename: int
) -> None:
    # Given an object stored with its metadata
    store = LocalArchiveStore(tmp_path)
    old_body, old_meta = body_of(b'{"a":1}')
    store.put(KEY, old_body, old_meta)
    # When a rewrite fails at either rename (sidecar first, then the object)
    new_body, new_meta = body_of(b'{"a":1}', b'{"b":2}')
    monkeypatch.setattr(local_store.os, "replace", FullDisk({failing_rename}))
    with pytest.raises(StoreError, match=r"cannot write archive object .*No space left") as err:
        store.put(KEY, new_body, new_meta)
    monkeypatch.undo()
    # Then the error names the path and what to do
    assert str(tmp_path) in str(err.value)
    assert "free space" in str(err.value)
    # And head never reports the new hash over the old content
    head = store.head(KEY)
    assert head is not None
    assert store.get(KEY) == old_body
    assert head.metadata.get(META_SHA256) in (old_meta[META_SHA256], None)
    # And no temporary file is left behind
    assert not list(tmp_path.rglob(".tmp-*"))


def test_metadata_survives_a_copy_of_the_archive(tmp_path: Path) -> None:
    # Given an archive copied elsewhere (new inodes and times)
    store = LocalArchiveStore(tmp_path / "a")
    body, meta = body_of(b'{"a":1}')
    store.put(KEY, body, meta)
    for path in (tmp_path / "a").rglob("*"):
        if path.is_file():
            target = tmp_path / "b" / path.relative_to(tmp_path / "a")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes())
    # When read there / Then the metadata still holds, because the content matches it
    head = LocalArchiveStore(tmp_path / "b").head(KEY)
    assert head is not None
    assert head.metadata == meta


@pytest.mark.parametrize("failing_rename", [1, 2])
def test_a_failed_rewrite_is_repaired_by_the_next_run_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_rename: int
) -> None:
    # Given a closed bucket archived with one event
    source = FakeSource()
    first = event("2026-05-04T09:10:00Z", "a" * 24)
    source.add(ORG, first)
    store = LocalArchiveStore(tmp_path / "archive")
    checkpoints = FileCheckpointStore(tmp_path / "checkpoints.json")
    clock = Clock(parse_timestamp_ns("2026-05-04T12:10:00Z"))
    config = replace(CONFIG, lookback_ns=CONFIG.bucket_ns * 3, pipeline=False)

    def engine() -> ArchiveEngine:
        return ArchiveEngine(
            source=source, store=store, checkpoints=checkpoints, config=config, clock=clock
        )

    clock.now = parse_timestamp_ns("2026-05-04T10:30:00Z")  # the 09:00 bucket is still open
    engine().run([ORG])
    # When DI later returns a second (late) event and the disk fills during the rewrite
    late = event("2026-05-04T09:20:00Z", "b" * 24)
    source.add(ORG, late)
    clock.now = parse_timestamp_ns("2026-05-04T12:10:00Z")
    monkeypatch.setattr(local_store.os, "replace", FullDisk({failing_rename}))
    with pytest.raises(EngineRunError, match="No space left"):
        engine().run([ORG])
    monkeypatch.undo()
    saved = checkpoints.load(ORG)
    # And the next run finds space again
    engine().run([ORG])
    # Then the late event is archived (the bucket was not judged "unchanged" from metadata)
    stored = store.get("di/org=" + ORG + "/svc=directory/dt=2026-05-04/0900-1000.jsonl.gz")
    assert stored is not None
    lines = gzip.decompress(stored).splitlines()
    assert len(lines) == 2
    assert any(b"b" * 24 in line for line in lines)
    # And the failed run had not moved the checkpoint past the 09:00 bucket
    assert saved is not None
    assert saved["closed_through"] <= "2026-05-04T09:00:00Z"


def test_checkpoint_file_errors_name_the_path_and_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a checkpoint file on a full disk
    path = tmp_path / "checkpoints.json"
    monkeypatch.setattr(local_store.os, "replace", FullDisk({1}))
    # When saved / Then the error is a CheckpointError naming the file and what to do
    with pytest.raises(CheckpointError, match=f"{path}.*No space left.*free space"):
        FileCheckpointStore(path).save(ORG, {"closed_through": "2026-05-04T00:00:00Z"})
