"""A killed write's temporary file is reported by verify and removed by maintenance."""

from __future__ import annotations

import os
import time
from pathlib import Path

from di_archiver.adapters.local_store import FileCheckpointStore, LocalArchiveStore
from di_archiver.domain.maintenance import TEMP_FILE_MAX_AGE_S, maintain
from di_archiver.domain.verify import verify_archive
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    ORG,
    PREFIX,
    FakeEngine,
    FakeSource,
    day_ns,
    populate,
)


def test_a_leftover_temp_file_is_a_verify_finding_until_maintenance_removes_it(
    tmp_path: Path,
) -> None:
    # Given a sealed local archive, a fresh temporary file (a write in progress) and an old one
    # (left by a killed process)
    store = LocalArchiveStore(tmp_path)
    checkpoints = FileCheckpointStore(tmp_path / "checkpoints.json")
    source = FakeSource(now=day_ns(DAY0) + 2 * DAY)
    populate(source, DAY0, 1, per_day=5)
    FakeEngine(source, store).archive_days(ORG, DAY0, 1)
    checkpoints.save(ORG, {"schema_version": 1, "closed_through": "2026-05-02T00:00:00Z",
                           "bucket_minutes": 60})  # fmt: skip
    maintain(org_ids=[ORG], store=store, checkpoints=checkpoints, prefix=PREFIX, reconcile=False)
    folder = tmp_path / PREFIX / f"org={ORG}"
    old, fresh = folder / ".tmp-killed.gz", folder / ".tmp-busy.gz"
    old.write_bytes(b"half an object")
    fresh.write_bytes(b"being written")
    stale = time.time() - TEMP_FILE_MAX_AGE_S - 60
    os.utime(old, (stale, stale))

    # When verify runs, then maintenance, then verify again
    before = verify_archive(store, prefix=PREFIX)
    report = maintain(
        org_ids=[ORG], store=store, checkpoints=checkpoints, prefix=PREFIX, reconcile=False
    )
    after = verify_archive(store, prefix=PREFIX)

    # Then both files were findings, only the old one was removed, the fresh one is still named
    assert sorted((f.kind, f.key) for f in before.findings) == [
        ("temp", f"{PREFIX}/org={ORG}/.tmp-busy.gz"),
        ("temp", f"{PREFIX}/org={ORG}/.tmp-killed.gz"),
    ]
    assert report.temp_files_removed == (f"{PREFIX}/org={ORG}/.tmp-killed.gz",)
    assert not old.exists()
    assert [(f.kind, f.key) for f in after.findings] == [
        ("temp", f"{PREFIX}/org={ORG}/.tmp-busy.gz")
    ]


def test_verify_with_progress_still_reports_leftover_temp_files(tmp_path: Path) -> None:
    # Given a local archive holding a temporary file of an interrupted write
    from di_archiver.application.verify import verify

    store = LocalArchiveStore(tmp_path)
    source = FakeSource(now=day_ns(DAY0) + 2 * DAY)
    populate(source, DAY0, 1, per_day=5)
    FakeEngine(source, store).archive_days(ORG, DAY0, 1)
    (tmp_path / PREFIX / f"org={ORG}" / ".tmp-killed.gz").write_bytes(b"half an object")
    seen: list[str] = []

    # When verify runs with a progress callback (what the CLI does on a terminal)
    report = verify(store, prefix=PREFIX, on_object=seen.append)

    # Then the temp file is a finding, and progress saw every checked object
    assert ("temp", f"{PREFIX}/org={ORG}/.tmp-killed.gz") in [
        (f.kind, f.key) for f in report.findings
    ]
    assert len(seen) == report.objects_checked > 0
