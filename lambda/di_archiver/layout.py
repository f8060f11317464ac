"""The archive key layout: the one function that names every object (the archive contract).

    <prefix>/org=<org id>/svc=<service>/dt=<YYYY-MM-DD>/<HHMM>-<HHMM>.jsonl.gz   bucket object
    <prefix>/org=<org id>/svc=<service>/dt=<YYYY-MM-DD>/day.jsonl.gz            sealed day
    <prefix>/_manifests/org=<org id>/dt=<YYYY-MM-DD>.json                       day manifest
    <prefix>/_late/org=<org id>/dt=<YYYY-MM-DD>/svc=<service>/<HHMM>-<HHMM>.jsonl.gz   staged

A *staged* object is a bucket rewritten after its day was sealed (late events found by a rerun,
a re-snapshot or reconcile). It lives outside the table's partition tree (``_late`` and the
``dt``-before-``svc`` order match neither Athena's projection template nor the local query's
``org=/svc=/dt=`` walk), so it is invisible to queries *by construction* and can never show an
event twice beside the sealed day; the next seal merges it into the day and deletes it.
    <prefix>/_manifests/org=<org id>/dt=<YYYY-MM-DD>.cert.json                  day certificate

Partition names ``org``/``svc``/``dt`` are deliberately not DI field names: Athena rejects a
partition column that repeats a data column, and events carry ``organization`` and ``service``.
Bucket names hold both ends (``2400`` is the next midnight) so objects written under a different
bucket width can be recognised as overlapping.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from msgspec import Struct

from di_archiver.errors import ArchiverError
from di_archiver.services import SERVICE_NAME_PATTERN, UNRECOGNISED_SERVICE_PARTITION
from di_archiver.timestamps import NS_PER_SECOND

ORG_PARTITION = "org"
SERVICE_PARTITION = "svc"
DATE_PARTITION = "dt"
OBJECT_SUFFIX = ".jsonl.gz"
SEALED_DAY_NAME = "day"
MANIFEST_ROOT = "_manifests"
LATE_ROOT = "_late"
CERTIFICATE_SUFFIX = ".cert.json"
NS_PER_DAY = 86_400 * NS_PER_SECOND
ORG_ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")

_OBJECT_KEY = re.compile(
    rf"^(?:(?P<prefix>.+)/)?{ORG_PARTITION}=(?P<org>[^/]+)/{SERVICE_PARTITION}=(?P<svc>[^/]+)/"
    rf"{DATE_PARTITION}=(?P<day>\d{{4}}-\d{{2}}-\d{{2}})/"
    rf"(?:(?P<sealed>{SEALED_DAY_NAME})|(?P<start>\d{{4}})-(?P<end>\d{{4}})){re.escape(OBJECT_SUFFIX)}$"
)


_LATE_KEY = re.compile(
    rf"^(?:(?P<prefix>.+)/)?{LATE_ROOT}/{ORG_PARTITION}=(?P<org>[^/]+)/"
    rf"{DATE_PARTITION}=(?P<day>\d{{4}}-\d{{2}}-\d{{2}})/{SERVICE_PARTITION}=(?P<svc>[^/]+)/"
    rf"(?P<start>\d{{4}})-(?P<end>\d{{4}}){re.escape(OBJECT_SUFFIX)}$"
)


class LayoutError(ArchiverError, ValueError):
    """A key, org id, service name or bucket boundary does not fit the archive layout."""


class ObjectKey(Struct, frozen=True):
    """A parsed archive object key; ``start_ns``/``end_ns`` bound the events it may hold."""

    prefix: str
    org_id: str
    service: str
    day: date
    start_ns: int
    end_ns: int
    sealed: bool
    late: bool = False  # a staged bucket of a sealed day (see the module docstring)

    @property
    def key(self) -> str:
        if self.sealed:
            return sealed_day_key(self.prefix, self.org_id, self.service, self.day)
        if self.late:
            return late_object_key(
                self.prefix, self.org_id, self.service, self.start_ns, self.end_ns
            )
        return bucket_object_key(self.prefix, self.org_id, self.service, self.start_ns, self.end_ns)


def _join(prefix: str, *parts: str) -> str:
    clean = prefix.strip("/")
    return "/".join([clean, *parts] if clean else parts)


def day_start_ns(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()) * NS_PER_SECOND


def day_of_ns(ns: int) -> date:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=ns // NS_PER_SECOND)).date()


def service_partition(service: object) -> str:
    """The ``svc=`` value for an event's ``service``; unusable values are kept, not dropped."""
    if isinstance(service, str) and SERVICE_NAME_PATTERN.match(service):
        return service
    return UNRECOGNISED_SERVICE_PARTITION


def validate_org_id(org_id: str) -> str:
    if not ORG_ID_PATTERN.match(org_id):
        raise LayoutError(f"org id must be 24 lower-case hex characters, got {org_id!r}")
    return org_id


def _partition_dir(prefix: str, org_id: str, service: str, day: date) -> str:
    return _join(
        prefix,
        f"{ORG_PARTITION}={org_id}",
        f"{SERVICE_PARTITION}={service}",
        f"{DATE_PARTITION}={day.isoformat()}",
    )


def bucket_object_key(prefix: str, org_id: str, service: str, start_ns: int, end_ns: int) -> str:
    """Key of the object holding ``service`` events of ``org_id`` with ``start <= ts < end``."""
    day = day_of_ns(start_ns)
    return f"{_partition_dir(prefix, org_id, service, day)}/{_bucket_name(start_ns, end_ns)}"


def _bucket_name(start_ns: int, end_ns: int) -> str:
    """``HHMM-HHMM.jsonl.gz`` of a bucket within one UTC day, on whole minutes."""
    base = day_start_ns(day_of_ns(start_ns))
    if not (base <= start_ns < end_ns <= base + NS_PER_DAY):
        raise LayoutError("a bucket must lie within one UTC day")
    if (start_ns - base) % (60 * NS_PER_SECOND) or (end_ns - base) % (60 * NS_PER_SECOND):
        raise LayoutError("bucket boundaries must be whole minutes")
    start_min = (start_ns - base) // (60 * NS_PER_SECOND)
    end_min = (end_ns - base) // (60 * NS_PER_SECOND)
    name = f"{start_min // 60:02d}{start_min % 60:02d}-{end_min // 60:02d}{end_min % 60:02d}"
    return f"{name}{OBJECT_SUFFIX}"


def late_object_key(prefix: str, org_id: str, service: str, start_ns: int, end_ns: int) -> str:
    """Key of a bucket staged for a sealed day: outside every path a query reads."""
    return _join(
        prefix,
        LATE_ROOT,
        f"{ORG_PARTITION}={org_id}",
        f"{DATE_PARTITION}={day_of_ns(start_ns).isoformat()}",
        f"{SERVICE_PARTITION}={service}",
        _bucket_name(start_ns, end_ns),
    )


def late_root(prefix: str, org_id: str | None = None) -> str:
    """Where staged objects live (of one org when given)."""
    if org_id is None:
        return _join(prefix, LATE_ROOT) + "/"
    return _join(prefix, LATE_ROOT, f"{ORG_PARTITION}={org_id}") + "/"


def parse_late_key(key: str) -> ObjectKey:
    """Inverse of :func:`late_object_key`."""
    kind = "a staged archive object key"
    match = _LATE_KEY.match(key)
    if match is None:
        raise LayoutError(f"not {kind}: {key!r}")
    day = _key_day(match["day"], key, kind)
    start_ns, end_ns = _bucket_span(day, match["start"], match["end"], key, kind)
    parsed = ObjectKey(
        prefix=match["prefix"] or "",
        org_id=match["org"],
        service=match["svc"],
        day=day,
        start_ns=start_ns,
        end_ns=end_ns,
        sealed=False,
        late=True,
    )
    if parsed.key != key:
        raise LayoutError(f"not a canonical staged archive object key: {key!r}")
    return parsed


def _key_day(text: str, key: str, kind: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        # dt=2026-13-45 has the layout's shape but no calendar day: a key we never write.
        raise LayoutError(f"not {kind} (impossible date): {key!r}") from None


def _bucket_span(day: date, start: str, end: str, key: str, kind: str) -> tuple[int, int]:
    """``HHMM`` bounds of a key's bucket, in ns; within the day or a LayoutError."""
    base = day_start_ns(day)
    start_ns = base + (int(start[:2]) * 60 + int(start[2:])) * 60 * NS_PER_SECOND
    end_ns = base + (int(end[:2]) * 60 + int(end[2:])) * 60 * NS_PER_SECOND
    if not base <= start_ns < end_ns <= base + NS_PER_DAY:
        raise LayoutError(f"not {kind} (impossible bucket): {key!r}")
    return start_ns, end_ns


def sealed_day_key(prefix: str, org_id: str, service: str, day: date) -> str:
    """Key of the one object per (org, service, day) that sealing produces."""
    return f"{_partition_dir(prefix, org_id, service, day)}/{SEALED_DAY_NAME}{OBJECT_SUFFIX}"


def day_partition_prefix(prefix: str, org_id: str, service: str, day: date) -> str:
    return _partition_dir(prefix, org_id, service, day) + "/"


def org_prefix(prefix: str, org_id: str) -> str:
    return _join(prefix, f"{ORG_PARTITION}={org_id}") + "/"


def manifest_key(prefix: str, org_id: str, day: date) -> str:
    """Key of the day manifest (outside the table's partition tree, so Athena never reads it)."""
    return _join(prefix, MANIFEST_ROOT, f"{ORG_PARTITION}={org_id}", f"{DATE_PARTITION}={day}.json")


def certificate_key(prefix: str, org_id: str, day: date) -> str:
    """Key of the day certificate: the signature over the manifest's SHA-256, beside it."""
    return _join(
        prefix,
        MANIFEST_ROOT,
        f"{ORG_PARTITION}={org_id}",
        f"{DATE_PARTITION}={day}{CERTIFICATE_SUFFIX}",
    )


def parse_object_key(key: str) -> ObjectKey:
    """Inverse of :func:`bucket_object_key` / :func:`sealed_day_key`."""
    kind = "an archive object key"
    match = _OBJECT_KEY.match(key)
    if match is None:
        raise LayoutError(f"not {kind}: {key!r}")
    day = _key_day(match["day"], key, kind)
    if match["sealed"]:
        start_ns, end_ns = day_start_ns(day), day_start_ns(day) + NS_PER_DAY
    else:
        start_ns, end_ns = _bucket_span(day, match["start"], match["end"], key, kind)
    parsed = ObjectKey(
        prefix=match["prefix"] or "",
        org_id=match["org"],
        service=match["svc"],
        day=day,
        start_ns=start_ns,
        end_ns=end_ns,
        sealed=bool(match["sealed"]),
    )
    if parsed.key != key:
        raise LayoutError(f"not a canonical archive object key: {key!r}")
    return parsed
