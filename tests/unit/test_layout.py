from datetime import date

import pytest

from di_archiver.layout import (
    NS_PER_DAY,
    LayoutError,
    bucket_object_key,
    day_start_ns,
    manifest_key,
    parse_object_key,
    sealed_day_key,
    service_partition,
)

ORG = "64a0c0ffee0000000000a001"
DAY = date(2026, 5, 4)
HOUR = 3600 * 1_000_000_000


def test_bucket_key_matches_the_documented_layout() -> None:
    start = day_start_ns(DAY) + 9 * HOUR
    key = bucket_object_key("di", ORG, "sso", start, start + HOUR)
    assert key == f"di/org={ORG}/svc=sso/dt=2026-05-04/0900-1000.jsonl.gz"


def test_last_bucket_of_day_ends_at_2400_and_round_trips() -> None:
    start = day_start_ns(DAY) + 23 * HOUR
    key = bucket_object_key("", ORG, "radius", start, start + HOUR)
    assert key == f"org={ORG}/svc=radius/dt=2026-05-04/2300-2400.jsonl.gz"
    parsed = parse_object_key(key)
    assert (parsed.start_ns, parsed.end_ns, parsed.sealed) == (start, start + HOUR, False)


def test_sealed_day_key_round_trips_to_the_whole_day() -> None:
    key = sealed_day_key("a/b/", ORG, "mdm", DAY)
    assert key == f"a/b/org={ORG}/svc=mdm/dt=2026-05-04/day.jsonl.gz"
    parsed = parse_object_key(key)
    assert parsed.sealed
    assert parsed.prefix == "a/b"
    assert parsed.end_ns - parsed.start_ns == NS_PER_DAY


def test_manifest_lives_outside_the_partition_tree() -> None:
    assert manifest_key("di", ORG, DAY) == f"di/_manifests/org={ORG}/dt=2026-05-04.json"


@pytest.mark.parametrize(
    ("start_offset", "end_offset"),
    [(23 * HOUR, 25 * HOUR), (HOUR, HOUR), (HOUR + 1, 2 * HOUR)],
)
def test_rejects_buckets_across_days_empty_or_off_minute(
    start_offset: int, end_offset: int
) -> None:
    base = day_start_ns(DAY)
    with pytest.raises(LayoutError):
        bucket_object_key("di", ORG, "sso", base + start_offset, base + end_offset)


@pytest.mark.parametrize(
    "key",
    [
        f"di/org={ORG}/svc=sso/dt=2026-05-04/0900-1000.json",
        f"di/org={ORG}/svc=sso/dt=2026-5-4/0900-1000.jsonl.gz",
        f"di/org={ORG}/service=sso/dt=2026-05-04/0900-1000.jsonl.gz",
        "di/_manifests/org=x/dt=2026-05-04.json",
    ],
)
def test_parse_rejects_foreign_keys(key: str) -> None:
    with pytest.raises(LayoutError):
        parse_object_key(key)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sso", "sso"),
        ("new_service_2", "new_service_2"),
        (None, "_unrecognised"),
        ("../etc", "_unrecognised"),
        ("SSO", "_unrecognised"),
        (7, "_unrecognised"),
    ],
)
def test_service_partition_never_drops_an_event(value: object, expected: str) -> None:
    assert service_partition(value) == expected
