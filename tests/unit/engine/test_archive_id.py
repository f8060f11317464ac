"""A checkpoint records its archive: another archive sharing the checkpoint path must backfill."""

from pathlib import Path

import pytest

from di_archiver.domain.checkpoint import load_checkpoint
from di_archiver.domain.engine import EngineConfig, EngineRunError, archive_id_of
from di_archiver.errors import CheckpointError
from di_archiver.settings import ArchiverSettings
from tests.unit.engine.fakes import ORG, FakeSource, event
from tests.unit.engine.helpers import HOUR, NOW, rig

OLD, NEW = "s3://old-bucket/di", "s3://new-bucket/di"


def source() -> FakeSource:
    found = FakeSource()
    found.add(ORG, event("2026-05-04T07:30:00Z", "e7"))
    return found


def test_the_checkpoint_records_the_archive_it_belongs_to() -> None:
    # Given an engine archiving to the old bucket
    r = rig(source(), archive_id=OLD)
    # When it runs: then its checkpoint names that archive
    r.engine.run([ORG])
    assert r.checkpoints.documents[ORG]["archive"] == OLD
    assert r.checkpoints.documents[ORG]["schema_version"] == 1


def test_a_checkpoint_of_another_archive_is_refused_with_the_way_out() -> None:
    # Given a checkpoint written for the old archive
    old = rig(source(), archive_id=OLD)
    old.engine.run([ORG])
    document = dict(old.checkpoints.documents[ORG])
    # When an engine for a new archive finds it at the shared checkpoint path
    new = rig(source(), archive_id=NEW)
    new.checkpoints.documents[ORG] = dict(document)
    with pytest.raises(EngineRunError) as caught:
        new.engine.run([ORG])
    # Then it fails with a CheckpointError naming both archives and the fixes, writing nothing
    error = caught.value.failures[0][1]
    assert isinstance(error, CheckpointError)
    for text in (OLD, NEW, "delete the checkpoint", "backfill", "point"):
        assert text in str(error)
    assert new.store.objects == {}
    assert new.checkpoints.documents[ORG] == document


def test_deleting_the_checkpoint_backfills_the_new_archive() -> None:
    # Given the refused checkpoint deleted
    new = rig(source(), archive_id=NEW)
    # When the new archive's engine runs: then it backfills the lookback window
    new.engine.run([ORG])
    assert any("/dt=2026-05-04/0700-0800" in key for key in new.store.objects)
    assert new.checkpoints.documents[ORG]["archive"] == NEW


def test_a_checkpoint_without_an_archive_is_accepted_and_adopted() -> None:
    # Given a checkpoint written before archives were recorded
    r = rig(source(), archive_id=OLD)
    r.checkpoints.documents[ORG] = {
        "schema_version": 1,
        "closed_through": "2026-05-04T07:00:00Z",
        "bucket_minutes": 60,
        "updated_at": "2026-05-04T07:05:00Z",
    }
    # When the engine runs: then it continues from it and records the archive on save
    report = r.engine.run([ORG])
    assert report.orgs[0].checkpoint_before_ns is not None
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"
    assert r.checkpoints.documents[ORG]["archive"] == OLD


def test_tools_without_an_archive_id_neither_check_nor_erase_it() -> None:
    # Given a checkpoint recorded for the old archive
    r = rig(source(), archive_id=OLD)
    r.engine.run([ORG])
    # When an engine without an archive id (a tool, a test) loads it and later advances it
    plain = rig(source())
    plain.checkpoints.documents[ORG] = dict(r.checkpoints.documents[ORG])
    plain.clock.now += 2 * HOUR
    plain.engine.run([ORG])
    # Then it was accepted, moved forward, and still names the archive it belongs to
    assert plain.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T12:00:00Z"
    assert plain.checkpoints.documents[ORG]["archive"] == OLD
    assert load_checkpoint(plain.checkpoints, ORG, bucket_ns=HOUR, now_ns=NOW + 2 * HOUR)


def test_an_invalid_archive_field_is_a_checkpoint_error() -> None:
    r = rig(source(), archive_id=OLD)
    r.checkpoints.documents[ORG] = {
        "schema_version": 1,
        "closed_through": "2026-05-04T07:00:00Z",
        "bucket_minutes": 60,
        "archive": 42,
    }
    with pytest.raises(EngineRunError, match="invalid archive"):
        r.engine.run([ORG])


def test_archive_id_from_settings(tmp_path: Path) -> None:
    s3 = ArchiverSettings.build({"org_ids": ORG, "archive_bucket": "b", "archive_prefix": "x/y/"})
    local = ArchiverSettings.build({"org_ids": ORG, "archive_dir": str(tmp_path)})
    assert archive_id_of(s3) == "s3://b/x/y"
    assert archive_id_of(local) == (tmp_path / "di").as_uri()
    assert EngineConfig.from_settings(s3).archive_id == "s3://b/x/y"
    assert EngineConfig.from_settings(s3, archive_id="custom").archive_id == "custom"
    assert EngineConfig.from_settings(local).archive_id == (tmp_path / "di").as_uri()
