"""verify fails closed: nothing to check, odd keys and symlinks are findings, never a pass."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from di_archiver.adapters.local_store import LocalArchiveStore
from di_archiver.archive_format import decode_lines, encode_lines, keyed_line
from di_archiver.domain.seal import DaySealer, list_org_objects
from di_archiver.domain.verify import verify_archive
from di_archiver.errors import StoreError
from di_archiver.layout import LayoutError, parse_object_key, sealed_day_key
from tests.unit.integrity.fakes import (
    DAY,
    DAY0,
    ORG,
    PREFIX,
    FakeEngine,
    FakeSource,
    MemoryStore,
    day_ns,
    populate,
)

BAD_DATE_KEY = f"{PREFIX}/org={ORG}/svc=directory/dt=2026-13-45/0000-0100.jsonl.gz"


def sealed_memory_archive() -> tuple[MemoryStore, FakeSource]:
    source = FakeSource(now=day_ns(DAY0) + 6 * DAY)
    populate(source, DAY0, 3)
    store = MemoryStore()
    FakeEngine(source, store).archive_days(ORG, DAY0, 3)
    DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now).seal_org(
        ORG, day_ns(DAY0) + 2 * DAY
    )
    return store, source


def copy_to_disk(store: MemoryStore, root: Path) -> LocalArchiveStore:
    local = LocalArchiveStore(root)
    for key, (body, meta) in store.objects.items():
        local.put(key, body, meta)
    return local


def test_impossible_date_is_a_layout_error_not_a_value_error() -> None:
    with pytest.raises(LayoutError, match="impossible date"):
        parse_object_key(BAD_DATE_KEY)


def test_key_with_an_impossible_date_is_a_finding_for_verify_and_ignored_by_seal() -> None:
    # Given a sealed archive plus one object at dt=2026-13-45
    store, source = sealed_memory_archive()
    store.objects[BAD_DATE_KEY] = store.objects[next(iter(store.objects))]

    # When verify runs (whole archive, and a window), and seal lists the org
    report = verify_archive(store, prefix=PREFIX)
    windowed = verify_archive(store, prefix=PREFIX, start_day=DAY0, end_day=DAY0)
    grouped = list_org_objects(store, PREFIX, ORG)
    DaySealer(store=store, prefix=PREFIX, source=source, clock=lambda: source.now).seal_org(
        ORG, day_ns(DAY0) + 3 * DAY
    )

    # Then it is reported as unknown, with no traceback, and sealing does not trip over it
    assert [(f.kind, f.key) for f in report.findings] == [("unknown", BAD_DATE_KEY)]
    assert windowed.findings == []  # a window only reads its own day folders
    assert all("2026-13" not in str(day) for day in grouped.days)


def test_empty_store_is_a_finding() -> None:
    report = verify_archive(MemoryStore(), prefix=PREFIX)
    assert [f.kind for f in report.findings] == ["empty"]
    assert "check --archive" in report.findings[0].detail


def test_missing_local_directory_is_a_finding(tmp_path: Path) -> None:
    report = verify_archive(LocalArchiveStore(tmp_path / "does-not-exist"), prefix=PREFIX)
    assert [f.kind for f in report.findings] == ["empty"]


def test_symlinked_service_folder_with_an_altered_copy_is_reported(tmp_path: Path) -> None:
    # Given a local sealed archive whose sso folder was replaced by a link to an altered copy
    store, _ = sealed_memory_archive()
    local = copy_to_disk(store, tmp_path / "archive")
    folder = tmp_path / "archive" / PREFIX / f"org={ORG}" / "svc=sso"
    copy = tmp_path / "elsewhere"
    shutil.copytree(folder, copy)
    day_file = copy / f"dt={DAY0}" / "day.jsonl.gz"
    lines = decode_lines(day_file.read_bytes())
    day_file.write_bytes(encode_lines([keyed_line(line) for line in lines[1:]]).body)
    shutil.rmtree(folder)
    folder.symlink_to(copy, target_is_directory=True)

    # When verify runs
    report = verify_archive(local, prefix=PREFIX)

    # Then the link is a finding and the objects behind it are not taken as present
    kinds = {f.kind for f in report.findings}
    assert "symlink" in kinds
    assert any(f.key.endswith("svc=sso") for f in report.findings if f.kind == "symlink")
    assert not report.ok
    # And reading through the link is refused, so query cannot read the altered copy either
    with pytest.raises(StoreError, match="symbolic link"):
        local.get(sealed_day_key(PREFIX, ORG, "sso", DAY0))


def test_symlinked_object_file_is_reported(tmp_path: Path) -> None:
    store, _ = sealed_memory_archive()
    local = copy_to_disk(store, tmp_path / "archive")
    target = Path(tmp_path / "archive" / sealed_day_key(PREFIX, ORG, "directory", DAY0))
    moved = tmp_path / "moved.gz"
    target.rename(moved)
    target.symlink_to(moved)
    report = verify_archive(local, prefix=PREFIX)
    assert ("symlink", sealed_day_key(PREFIX, ORG, "directory", DAY0)) in {
        (f.kind, f.key) for f in report.findings
    }


class HiddenFromListing(MemoryStore):
    """A store whose listing misses one key that head() and get() still find."""

    hidden: str = ""

    def list(self, prefix: str):  # type: ignore[no-untyped-def]
        return (s for s in super().list(prefix) if s.key != self.hidden)


def test_manifest_object_found_only_by_head_is_still_checked() -> None:
    # Given an altered sealed object that the listing does not return but head() finds
    store, _ = sealed_memory_archive()
    hidden = HiddenFromListing()
    hidden.objects = store.objects
    hidden.hidden = sealed_day_key(PREFIX, ORG, "systems", DAY0 + timedelta(days=1))
    body, meta = hidden.objects[hidden.hidden]
    lines = decode_lines(body)
    altered = encode_lines([keyed_line(line) for line in lines[1:]]).body
    hidden.objects[hidden.hidden] = (altered, meta)

    # Then verify reads it anyway and reports the alteration
    report = verify_archive(hidden, prefix=PREFIX)
    assert ("altered", hidden.hidden) in {(f.kind, f.key) for f in report.findings}
