"""Memory bounds of one bucket: by events and by serialised bytes (two buckets may be in flight)."""

import pytest

from di_archiver.domain.engine import EngineConfig, EngineRunError
from di_archiver.errors import BucketTooLargeError, SettingsError
from di_archiver.settings import ArchiverSettings
from tests.unit.engine.fakes import ORG, FakeSource, event
from tests.unit.engine.helpers import at, rig

MIB = 1024 * 1024


def big_bucket() -> FakeSource:
    """Four ~1 kB events in 06:xx, one small event in 07:xx."""
    source = FakeSource(page_size=2)
    source.add(
        ORG,
        *(event(f"2026-05-04T06:0{i}:00Z", f"e{i}", blob="x" * 1000) for i in range(4)),
        event("2026-05-04T07:00:00Z", "small"),
    )
    return source


@pytest.mark.parametrize("pipeline", [True, False])
def test_a_bucket_with_too_many_bytes_fails_naming_the_fix_and_writes_nothing(
    pipeline: bool,
) -> None:
    # Given a byte bound below what the 06:00 bucket holds (but far above its event count bound)
    r = rig(big_bucket(), pipeline=pipeline, max_bucket_bytes=3000, max_events_per_bucket=1000)
    # When the engine runs: then the org fails with BucketTooLargeError naming the setting
    with pytest.raises(EngineRunError) as caught:
        r.engine.run([ORG])
    error = caught.value.failures[0][1]
    assert isinstance(error, BucketTooLargeError)
    assert "3000 bytes" in str(error)
    assert "DI_ARCHIVER_BUCKET_MINUTES" in str(error)
    # And nothing of it was written; the checkpoint stays at the backfill start
    assert r.store.objects == {}
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T06:00:00Z"


def test_snapshot_bucket_enforces_the_byte_bound_too() -> None:
    r = rig(big_bucket(), max_bucket_bytes=3000)
    with pytest.raises(BucketTooLargeError, match="DI_ARCHIVER_BUCKET_MINUTES"):
        r.engine.snapshot_bucket(ORG, at("2026-05-04T06:00"), at("2026-05-04T07:00"))
    assert r.store.objects == {}


def test_a_bucket_within_the_byte_bound_is_archived() -> None:
    r = rig(big_bucket(), max_bucket_bytes=5000)
    r.engine.run([ORG])
    assert r.checkpoints.documents[ORG]["closed_through"] == "2026-05-04T10:00:00Z"


def test_default_bounds_fit_a_small_lambda_and_reach_the_engine() -> None:
    # Given default settings, and then an explicit byte bound from the environment
    default = ArchiverSettings.build({"org_ids": ORG, "archive_bucket": "b"})
    from_env = ArchiverSettings.from_env(
        {
            "DI_ARCHIVER_ORG_IDS": ORG,
            "DI_ARCHIVER_ARCHIVE_BUCKET": "b",
            "DI_ARCHIVER_MAX_BUCKET_BYTES": str(32 * MIB),
        }
    )
    # Then the defaults are 500,000 events / 96 MiB and the engine receives them
    assert (default.max_events_per_bucket, default.max_bucket_bytes) == (500_000, 96 * MIB)
    config = EngineConfig.from_settings(default)
    assert (config.max_events_per_bucket, config.max_bucket_bytes) == (500_000, 96 * MIB)
    assert EngineConfig.from_settings(from_env).max_bucket_bytes == 32 * MIB


def test_a_non_positive_byte_bound_is_refused() -> None:
    with pytest.raises(SettingsError, match="DI_ARCHIVER_MAX_BUCKET_BYTES"):
        ArchiverSettings.build({"org_ids": ORG, "archive_bucket": "b", "max_bucket_bytes": 0})
    with pytest.raises(SettingsError, match="max_bucket_bytes"):
        rig(max_bucket_bytes=0)
