"""Seal closed UTC days: merge a day's bucket objects into one object per (org, service, day).

Order of writes for one day (each step is idempotent, so a crash anywhere converges on rerun):

1. per service, the merged sealed object (skipped when its SHA-256 is unchanged);
2. when later manifests exist, the pending-relink marker (see :mod:`.manifest`);
3. the day manifest, then the relink of later manifests, then the marker's removal;
4. only then, the day's bucket objects are deleted.

Merge rule for re-seals: a bucket object written after a seal is authoritative for the events it
holds (same ``(timestamp, id)`` -> the bucket's line wins); every other sealed line is kept, so
an event that aged out of DI is never lost.
"""

from __future__ import annotations

import heapq
import json
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import IO, Any, Literal, Protocol, runtime_checkable

from di_archiver.archive_format import (
    ARCHIVAL_LEVEL,
    META_SHA256,
    EncodedObject,
    LineReader,
    SortKey,
    StreamedObject,
    StreamEncoder,
    encode_lines,
    event_timestamp_ns,
    keyed_line,
    sort_key,
)
from di_archiver.domain.certificate import (
    Certificate,
    head_document,
    parse_certificate_name,
    sign_manifest,
)
from di_archiver.domain.counting import ExactCounter
from di_archiver.domain.manifest import (
    GENESIS_SHA256,
    Manifest,
    ManifestError,
    ManifestObject,
    Repair,
    check_relink_marker,
    manifest_dir,
    parse_manifest_key,
    parse_relink_marker,
    pending_relink_key,
    relink_marker,
    sha256_hex,
)
from di_archiver.domain.ports import (
    ArchiveStore,
    CheckpointStore,
    EventSource,
    HeadPublisher,
    Signer,
    StoredObject,
    open_object,
    put_fileobj,
)
from di_archiver.errors import ArchiverError, CheckpointError, IntegrityError, SettingsError
from di_archiver.layout import (
    NS_PER_DAY,
    LayoutError,
    ObjectKey,
    certificate_key,
    day_of_ns,
    day_start_ns,
    late_root,
    manifest_key,
    org_prefix,
    parse_late_key,
    parse_object_key,
    sealed_day_key,
)
from di_archiver.timestamps import NS_PER_MS, format_timestamp_ns, parse_timestamp_ns

LockMode = Literal["GOVERNANCE", "COMPLIANCE"]

COVERAGE_FIELD = "coverage"
"""Manifest field ``{"from": ts, "to": ts}``: the part of the day the archive covered."""

# A sealed day is compressed into a spool that moves to /tmp beyond this size, so memory stays
# bounded by the largest of zlib's window, one line, and this buffer, never by the day.
SPOOL_MAX_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Retention:
    """Object Lock retention applied to sealed objects (never to hourly bucket objects)."""

    days: int
    mode: LockMode = "COMPLIANCE"

    def __post_init__(self) -> None:
        if self.days < 1:
            raise SettingsError("object lock retention must be at least 1 day")


@runtime_checkable
class LockingStore(Protocol):
    """Optional extension of ArchiveStore: write an object under Object Lock retention.

    S3 implements it as ``PutObject(..., ObjectLockMode=mode,
    ObjectLockRetainUntilDate=<retain_until>)`` on a bucket created with Object Lock enabled
    (versioning on; a re-seal writes a new version, the locked old one stays retained).
    """

    def put_locked(
        self,
        key: str,
        body: bytes,
        metadata: Mapping[str, str],
        *,
        retain_until_ns: int,
        mode: LockMode,
    ) -> None:
        """Write like ``put`` and protect this version until ``retain_until_ns``."""


@runtime_checkable
class FileLockingStore(Protocol):
    """Optional: :meth:`LockingStore.put_locked` from a file (S3 multipart upload)."""

    def put_file_locked(
        self,
        key: str,
        fileobj: IO[bytes],
        size: int,
        metadata: Mapping[str, str],
        *,
        retain_until_ns: int,
        mode: LockMode,
    ) -> None:
        """Upload like ``put_file`` and protect this version until ``retain_until_ns``."""


class RecordingLockStore:
    """Local stand-in for Object Lock: records retention and refuses early deletes."""

    def __init__(self, inner: ArchiveStore, *, clock: Callable[[], int] = time.time_ns) -> None:
        self.inner = inner
        self.clock = clock
        self.retention: dict[str, tuple[int, LockMode]] = {}

    def put(self, key: str, body: bytes, metadata: Mapping[str, str]) -> None:
        self.inner.put(key, body, metadata)

    def put_locked(
        self,
        key: str,
        body: bytes,
        metadata: Mapping[str, str],
        *,
        retain_until_ns: int,
        mode: LockMode,
    ) -> None:
        self.inner.put(key, body, metadata)
        self._retain(key, retain_until_ns, mode)

    def put_file(
        self, key: str, fileobj: IO[bytes], size: int, metadata: Mapping[str, str]
    ) -> None:
        put_fileobj(self.inner, key, fileobj, size, metadata)

    def put_file_locked(
        self,
        key: str,
        fileobj: IO[bytes],
        size: int,
        metadata: Mapping[str, str],
        *,
        retain_until_ns: int,
        mode: LockMode,
    ) -> None:
        put_fileobj(self.inner, key, fileobj, size, metadata)
        self._retain(key, retain_until_ns, mode)

    def _retain(self, key: str, retain_until_ns: int, mode: LockMode) -> None:
        # Like S3, a new version never shortens the protection an older one already has.
        previous = self.retention.get(key, (0, mode))[0]
        self.retention[key] = (max(previous, retain_until_ns), mode)

    def get(self, key: str) -> bytes | None:
        return self.inner.get(key)

    def get_stream(self, key: str) -> IO[bytes] | None:
        return open_object(self.inner, key)

    def head(self, key: str) -> StoredObject | None:
        return self.inner.head(key)

    def list(self, prefix: str) -> Iterator[StoredObject]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        until = self.retention.get(key)
        if until is not None and until[0] > self.clock():
            raise ArchiverError(f"{key} is under object lock until {format_timestamp_ns(until[0])}")
        self.inner.delete(key)


class MaintenanceObserver(Protocol):
    """Receives seal/reconcile outcomes; the handler maps them to metrics and log lines."""

    def on_day_sealed(self, result: SealResult) -> None: ...

    def on_day_repaired(self, result: SealResult) -> None: ...

    def on_warning(self, message: str, **fields: object) -> None: ...


class NullMaintenanceObserver:
    def on_day_sealed(self, result: SealResult) -> None:
        pass

    def on_day_repaired(self, result: SealResult) -> None:
        pass

    def on_warning(self, message: str, **fields: object) -> None:
        pass


@dataclass(frozen=True, slots=True)
class SealResult:
    """What sealing one (org, day) did."""

    org_id: str
    day: date
    events: int
    objects_written: int
    buckets_deleted: int
    manifest_written: bool
    repaired: bool
    manifest_sha256: str
    di_count: int | None


@dataclass(frozen=True, slots=True)
class OrgObjects:
    """An org's archive objects grouped by day (one listing serves a whole pass)."""

    sealed: dict[date, dict[str, StoredObject]] = field(default_factory=dict)
    buckets: dict[date, list[tuple[ObjectKey, StoredObject]]] = field(default_factory=dict)

    @property
    def days(self) -> set[date]:
        return set(self.sealed) | set(self.buckets)


def day_bounds(day: date) -> tuple[int, int]:
    start = day_start_ns(day)
    return start, start + NS_PER_DAY


def checkpoint_span(checkpoints: CheckpointStore, org_id: str) -> tuple[int, int | None] | None:
    """``(closed_through, archived_from)`` from the org's checkpoint document, read once: the
    end of the newest closed bucket, and where the archive begins (the first run's backfill
    start) when recorded. None when the org has no checkpoint yet."""
    document = checkpoints.load(org_id)
    if document is None:
        return None
    value = document.get("closed_through")
    if not isinstance(value, str):
        raise CheckpointError(
            f"checkpoint of org {org_id} has no closed_through; run the archiver once first"
        )
    try:
        closed_ns = parse_timestamp_ns(value)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint of org {org_id}: bad closed_through ({exc})") from None
    value = document.get("archived_from")
    if not isinstance(value, str):
        return closed_ns, None
    try:
        return closed_ns, parse_timestamp_ns(value)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint of org {org_id}: bad archived_from ({exc})") from None


def checkpoint_bucket_minutes(checkpoints: CheckpointStore, org_id: str, default: int = 60) -> int:
    document = checkpoints.load(org_id) or {}
    value = document.get("bucket_minutes", default)
    return value if isinstance(value, int) and value > 0 else default


def list_org_objects(store: ArchiveStore, prefix: str, org_id: str) -> OrgObjects:
    """Every data object of ``org_id`` grouped by day; foreign keys are ignored."""
    grouped = OrgObjects()
    for stored in store.list(org_prefix(prefix, org_id)):
        try:
            parsed = parse_object_key(stored.key)
        except LayoutError:
            continue
        if parsed.org_id != org_id or parsed.prefix != prefix.strip("/"):
            continue
        if parsed.sealed:
            grouped.sealed.setdefault(parsed.day, {})[parsed.service] = stored
        else:
            grouped.buckets.setdefault(parsed.day, []).append((parsed, stored))
    for stored in store.list(late_root(prefix, org_id)):
        try:
            parsed = parse_late_key(stored.key)
        except LayoutError:
            continue
        if parsed.org_id == org_id and parsed.prefix == prefix.strip("/"):
            # Staged buckets of a sealed day: merged (and deleted) by its next seal.
            grouped.buckets.setdefault(parsed.day, []).append((parsed, stored))
    return grouped


def list_manifest_days(store: ArchiveStore, prefix: str, org_id: str) -> list[date]:
    return list_sealed_days(store, prefix, org_id)[0]


def list_sealed_days(store: ArchiveStore, prefix: str, org_id: str) -> tuple[list[date], set[date]]:
    """``(days with a manifest, days with a certificate)`` from one listing of the org."""
    days = []
    certified = set()
    for stored in store.list(manifest_dir(prefix, org_id)):
        parsed = parse_manifest_key(prefix, stored.key)
        if parsed is not None and parsed[0] == org_id:
            days.append(parsed[1])
            continue
        name = stored.key.rsplit("/", 1)[-1]
        day = parse_certificate_name(name)
        if day is not None and stored.key == certificate_key(prefix, org_id, day):
            certified.add(day)
    return sorted(days), certified


def _keyed(lines: Iterable[bytes]) -> list[tuple[tuple[int, str, bytes], bytes]]:
    pairs = []
    for line in lines:
        event = json.loads(line)
        pairs.append((sort_key(event_timestamp_ns(event), event, line), line))
    return pairs


def merge_day(
    sealed_lines: Sequence[bytes], bucket_lines: Sequence[Sequence[bytes]]
) -> EncodedObject:
    """Sealed lines plus bucket lines; a bucket's line replaces a sealed one of the same event."""
    fresh = [pair for lines in bucket_lines for pair in _keyed(lines)]
    authoritative = {key[:2] for key, _ in fresh}
    kept = [pair for pair in _keyed(sealed_lines) if pair[0][:2] not in authoritative]
    return encode_lines([*kept, *fresh], level=ARCHIVAL_LEVEL)


_SEALED, _BUCKET, _STAGED = 0, 1, 2


def _ranked(lines: Iterable[bytes], rank: int, name: str) -> Iterator[tuple[SortKey, int]]:
    previous: SortKey | None = None
    for line in lines:
        key, _ = keyed_line(line)
        if previous is not None and key < previous:
            # A k-way merge of unsorted input would write an unsorted day; refuse instead.
            raise IntegrityError(
                f"{name} is not sorted by (timestamp, id); run `di-archiver verify` and "
                "re-snapshot or restore it"
            )
        previous = key
        yield key, rank


def _resolve_group(group: list[tuple[SortKey, int]]) -> Iterator[tuple[SortKey, bytes]]:
    # The newest kind of input is authoritative for an event: a staged bucket (written after
    # the seal, from the bucket and sealed lines it saw) over a bucket over the sealed day.
    top = max(rank for _, rank in group)
    for key, rank in group:
        if rank == top:
            yield key, key[2]


def merge_sorted_streams(
    sealed_lines: Iterable[bytes] | None,
    bucket_lines: Sequence[Iterable[bytes]],
    *,
    names: Sequence[str] = (),
    staged: Sequence[bool] = (),
) -> Iterator[tuple[SortKey, bytes]]:
    """:func:`merge_day`'s rule over already sorted inputs, lazily (k-way merge).

    Lines sharing ``(timestamp, id)`` arrive together; if any of them comes from a bucket,
    the sealed ones are dropped (the bucket is authoritative; a ``staged`` bucket is over a plain
    one). Exact duplicates are left to
    :class:`~di_archiver.archive_format.StreamEncoder`, which drops them and counts collisions.
    """
    streams = [_ranked(sealed_lines, _SEALED, "the sealed day object")] if sealed_lines else []
    streams += [
        _ranked(
            lines,
            _STAGED if i < len(staged) and staged[i] else _BUCKET,
            names[i] if i < len(names) else f"bucket object {i}",
        )
        for i, lines in enumerate(bucket_lines)
    ]
    group: list[tuple[SortKey, int]] = []
    for item in heapq.merge(*streams):
        if group and item[0][:2] != group[0][0][:2]:
            yield from _resolve_group(group)
            group = []
        group.append(item)
    yield from _resolve_group(group)


class DaySealer:
    """Seals days of one archive (store + prefix); safe to rerun after a crash at any step."""

    def __init__(
        self,
        *,
        store: ArchiveStore,
        prefix: str,
        source: EventSource | None = None,
        clock: Callable[[], int] = time.time_ns,
        retention: Retention | None = None,
        observer: MaintenanceObserver | None = None,
        signer: Signer | None = None,
        publishers: Sequence[HeadPublisher] = (),
        counter: ExactCounter | None = None,
    ) -> None:
        if retention is not None and not isinstance(store, LockingStore):
            raise SettingsError(
                "object lock retention is configured but the archive store cannot lock objects"
            )
        self.store = store
        self.prefix = prefix.strip("/")
        self.source = source
        # DI's count recorded in the manifest is exact for the day, whatever end_time does.
        self.counter = counter or (ExactCounter(source) if source is not None else None)
        self.clock = clock
        self.retention = retention
        self.observer = observer or NullMaintenanceObserver()
        self.signer = signer
        self.publishers = tuple(publishers)
        self.certificates_written = 0

    # -- certificates --------------------------------------------------------------------------

    def _certify(self, org_id: str, day: date, manifest_bytes: bytes, now: int) -> None:
        """Sign the stored manifest bytes, store the certificate beside them, publish the head.

        Written after the manifest: a crash in between leaves a manifest without a matching
        certificate, which :meth:`ensure_certificate` (called by every later seal of the day,
        every relink and :meth:`seal_org` for uncertified days) repairs.
        """
        if self.signer is None:
            return
        certificate = sign_manifest(
            self.signer,
            prefix=self.prefix,
            org_id=org_id,
            day=day,
            manifest_bytes=manifest_bytes,
            now_ns=now,
        )
        body = certificate.to_bytes()
        self._put_retained(
            certificate_key(self.prefix, org_id, day), body, _manifest_meta(body), now
        )
        self.certificates_written += 1
        head = head_document(certificate)
        for publisher in self.publishers:
            publisher.publish(head)

    def ensure_certificate(self, org_id: str, day: date, manifest_bytes: bytes) -> bool:
        """Certify ``manifest_bytes`` unless a certificate by this key already covers them.

        Checks the certificate's hash and key fingerprint only: the seal role signs, it does
        not need the verifier (``verify`` checks the signature itself).
        """
        if self.signer is None:
            return False
        data = self.store.get(certificate_key(self.prefix, org_id, day))
        if data is not None:
            try:
                current = Certificate.from_bytes(data)
            except ManifestError:
                current = None
            if (
                current is not None
                and current.manifest_sha256 == sha256_hex(manifest_bytes)
                and current.public_key_sha256 == self.signer.fingerprint
            ):
                return False
        self._certify(org_id, day, manifest_bytes, self.clock())
        return True

    def certify_days(self, org_id: str, days: Iterable[date]) -> int:
        """Certify the stored manifests of ``days`` (e.g. an archive sealed before signing)."""
        done = 0
        for day in sorted(days):
            loaded = self.load_manifest(org_id, day)
            if loaded is not None and self.ensure_certificate(org_id, day, loaded[1]):
                done += 1
        return done

    # -- manifests and the chain -------------------------------------------------------------

    def load_manifest(self, org_id: str, day: date) -> tuple[Manifest, bytes] | None:
        key = manifest_key(self.prefix, org_id, day)
        data = self.store.get(key)
        if data is None:
            return None
        return Manifest.from_bytes(data, key=key), data

    def _previous_sha(self, org_id: str, day: date, manifest_days: Sequence[date]) -> str:
        if not any(d < day for d in manifest_days):
            return GENESIS_SHA256
        previous = self.load_manifest(org_id, day - timedelta(days=1))
        if previous is None:
            raise IntegrityError(
                f"org {org_id}: manifest of {day - timedelta(days=1)} is missing inside the "
                "chain; run `di-archiver verify` and restore it before sealing"
            )
        return sha256_hex(previous[1])

    def complete_pending_relink(self, org_id: str) -> bool:
        """Finish a relink a crashed run announced; True when there was a marker.

        The marker carries the SHA-256 of the manifest it relinks from. When the stored
        manifest still has it, the relink is finished. When it does not, either the run crashed
        before writing that manifest (then the chain is still intact and the marker is simply
        dropped) or someone edited the manifest: then the chain is broken and relinking would
        heal tampering, so this raises :class:`IntegrityError` and ``verify`` reports both.
        """
        key = pending_relink_key(self.prefix, org_id)
        data = self.store.get(key)
        if data is None:
            return False
        from_day, _ = parse_relink_marker(data, key)
        problem = check_relink_marker(data, key, self._manifest_bytes(org_id))
        if problem is None:
            self._relink_after(org_id, from_day)
        elif not self._successor_links_to_stored(org_id, from_day):
            raise IntegrityError(
                f"org {org_id}: refusing to finish the relink announced by {key}: {problem}; "
                "run `di-archiver verify`, restore the manifest, then delete the marker"
            )
        self.store.delete(key)
        return True

    def _manifest_bytes(self, org_id: str) -> Callable[[date], bytes | None]:
        def load(day: date) -> bytes | None:
            return self.store.get(manifest_key(self.prefix, org_id, day))

        return load

    def _successor_links_to_stored(self, org_id: str, day: date) -> bool:
        """True when nothing needs relinking after ``day`` (its successor links to it)."""
        current = self.load_manifest(org_id, day)
        following = self.load_manifest(org_id, day + timedelta(days=1))
        if current is None or following is None:
            return following is None and current is not None
        return following[0].previous_manifest_sha256 == sha256_hex(current[1])

    def _relink_after(self, org_id: str, day: date) -> None:
        """Rewrite the previous-hash link of every manifest after ``day``, in day order."""
        current = self.load_manifest(org_id, day)
        if current is None:
            raise IntegrityError(f"org {org_id}: manifest of {day} missing during relink")
        previous_bytes = current[1]
        later = [d for d in list_manifest_days(self.store, self.prefix, org_id) if d > day]
        expected = day
        for next_day in later:
            expected += timedelta(days=1)
            if next_day != expected:
                raise IntegrityError(
                    f"org {org_id}: manifest chain has a hole at {expected}; run verify"
                )
            loaded = self.load_manifest(org_id, next_day)
            assert loaded is not None  # listed a moment ago; a racing delete is a store bug
            manifest, data = loaded
            wanted = sha256_hex(previous_bytes)
            if manifest.previous_manifest_sha256 != wanted:
                data = manifest.relinked(wanted).to_bytes()
                now = self.clock()
                self._put_retained(
                    manifest_key(self.prefix, org_id, next_day), data, _manifest_meta(data), now
                )
                self._certify(org_id, next_day, data, now)
            else:
                # An interrupted relink may have rewritten this manifest but not its certificate.
                self.ensure_certificate(org_id, next_day, data)
            previous_bytes = data

    # -- sealing -----------------------------------------------------------------------------

    def sealable_days(
        self,
        org_id: str,
        closed_through: int,
        objects: OrgObjects,
        manifest_days: Sequence[date],
        *,
        archived_from: int | None = None,
    ) -> list[date]:
        """Closed days that need a (re-)seal: no manifest yet, or bucket objects left over.

        Only days the archive covered get a manifest: from the checkpoint's backfill start
        (``archived_from``) on, every day (empty ones too, so the chain has no holes); without
        it (older checkpoints), from the first day holding objects or a manifest. A manifest
        vouching for a day nobody archived would be a false statement in the chain.
        """
        last_closed = day_of_ns(closed_through) - timedelta(days=1)
        with_data = sorted(objects.days)
        covered = [day_of_ns(archived_from)] if archived_from is not None else []
        starts = [
            d for d in (with_data[:1] + list(manifest_days[:1]) + covered) if d <= last_closed
        ]
        if not starts:
            return []
        have = set(manifest_days)
        first = min(starts)
        days = []
        day = first
        while day <= last_closed:
            if day not in have and manifest_days and manifest_days[0] < day < manifest_days[-1]:
                # A hole inside the chain means a manifest was removed: re-creating it would
                # hide exactly what the chain exists to reveal.
                raise IntegrityError(
                    f"org {org_id}: manifest of {day} is missing inside the chain; run "
                    "`di-archiver verify` and restore it before sealing"
                )
            if day not in have or day in objects.buckets:
                days.append(day)
            day += timedelta(days=1)
        return days

    def seal_org(
        self,
        org_id: str,
        closed_through_ns: int,
        *,
        archived_from: int | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[SealResult]:
        """Seal every sealable day of ``org_id`` in ascending order.

        ``should_stop`` is asked before each day; once it returns True no further day is
        started and the days sealed so far are returned (the next pass continues from there).
        """
        self.complete_pending_relink(org_id)
        objects = list_org_objects(self.store, self.prefix, org_id)
        manifest_days, certified = list_sealed_days(self.store, self.prefix, org_id)
        results = []
        sealable = self.sealable_days(
            org_id, closed_through_ns, objects, manifest_days, archived_from=archived_from
        )
        for day in sealable:
            if should_stop is not None and should_stop():
                break
            results.append(self.seal_day(org_id, day, objects=objects, archived_from=archived_from))
            manifest_days = sorted({*manifest_days, day})
        if self.signer is not None and not (should_stop is not None and should_stop()):
            # Manifests sealed before signing was configured, or whose certificate write was
            # interrupted by a crash: sign what is stored (verify it first if in doubt).
            self.certify_days(org_id, set(manifest_days) - certified - set(sealable))
        return results

    def seal_day(
        self,
        org_id: str,
        day: date,
        *,
        objects: OrgObjects | None = None,
        archived_from: int | None = None,
    ) -> SealResult:
        """Merge the day's objects into sealed objects, write its manifest, drop its buckets.

        The manifest's ``coverage`` says which part of the day was archived (``from`` is later
        than midnight only on the day the backfill started); ``di_count`` counts that part.
        """
        if objects is None:
            objects = list_org_objects(self.store, self.prefix, org_id)
        manifest_days = list_manifest_days(self.store, self.prefix, org_id)
        existing = self.load_manifest(org_id, day)
        start_ns, end_ns = day_bounds(day)
        if archived_from is not None and start_ns < archived_from < end_ns:
            start_ns = archived_from
        if existing is not None:
            # Coverage only grows: a later backfill start (a deleted checkpoint) does not
            # un-archive what an earlier run covered.
            start_ns = min(start_ns, _coverage_start(existing[0], default=start_ns))
        di_count = None
        if self.counter is not None:
            di_count = self.counter.count(org_id, start_ns, end_ns)

        buckets_by_service: dict[str, list[tuple[ObjectKey, StoredObject]]] = defaultdict(list)
        for parsed, stored in objects.buckets.get(day, []):
            buckets_by_service[parsed.service].append((parsed, stored))
        sealed = objects.sealed.get(day, {})
        services = sorted(set(buckets_by_service) | set(sealed))

        now = self.clock()
        entries = []
        written = 0
        merged_sha: dict[str, str] = {}
        for service in services:
            key = sealed_day_key(self.prefix, org_id, service, day)
            bucket_keys = [
                parsed.key
                for parsed, _ in sorted(buckets_by_service[service], key=lambda p: p[0].start_ns)
            ]
            with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX_BYTES) as spool:
                merged, had_sealed, shas = self._merge_service(
                    key if service in sealed else None, bucket_keys, spool
                )
                merged_sha.update(shas)
                if merged.count == 0 and not had_sealed:
                    continue
                head = self.store.head(key)
                if head is None or head.metadata.get(META_SHA256) != merged.sha256:
                    self._put_sealed_file(key, spool, merged, now)
                    written += 1
            entries.append(
                ManifestObject(
                    key=key,
                    service=service,
                    count=merged.count,
                    sha256=merged.sha256,
                    first_ts=_fmt(merged.first_ts_ns),
                    last_ts=_fmt(merged.last_ts_ns),
                    size=merged.size,
                )
            )

        manifest, manifest_written, repaired = self._write_manifest(
            org_id=org_id,
            day=day,
            entries=tuple(entries),
            coverage=(start_ns, end_ns),
            di_count=di_count,
            existing=existing,
            manifest_days=manifest_days,
            now=now,
            buckets=buckets_by_service,
        )
        deleted, kept = self._delete_merged_buckets(
            org_id, objects.buckets.get(day, []), merged_sha
        )
        if kept:
            objects.buckets[day] = kept
        else:
            objects.buckets.pop(day, None)
        objects.sealed[day] = {
            entry.service: StoredObject(entry.key, entry.size) for entry in entries
        }
        result = SealResult(
            org_id=org_id,
            day=day,
            events=manifest.archived_count,
            objects_written=written,
            buckets_deleted=deleted,
            manifest_written=manifest_written,
            repaired=repaired,
            manifest_sha256=sha256_hex(manifest.to_bytes()),
            di_count=manifest.di_count,
        )
        if repaired:
            self.observer.on_day_repaired(result)
        elif manifest_written:
            self.observer.on_day_sealed(result)
        return result

    def _merge_service(
        self, sealed_key: str | None, bucket_keys: Sequence[str], spool: IO[bytes]
    ) -> tuple[StreamedObject, bool, dict[str, str]]:
        """Stream-merge one service's sealed object and buckets into ``spool``.

        Returns what was written, whether a sealed object was read, and the SHA-256 of the
        content actually merged from each bucket (the delete guard compares it later).
        """
        with ExitStack() as stack:
            sealed_reader: LineReader | None = None
            if sealed_key is not None:
                stream = open_object(self.store, sealed_key)
                if stream is not None:
                    stack.callback(stream.close)
                    sealed_reader = LineReader(stream)
            readers: dict[str, LineReader] = {}
            for bucket_key in bucket_keys:
                stream = open_object(self.store, bucket_key)
                if stream is not None:
                    stack.callback(stream.close)
                    readers[bucket_key] = LineReader(stream)
            encoder = StreamEncoder(spool, level=ARCHIVAL_LEVEL)
            for sort_key_, line in merge_sorted_streams(
                sealed_reader,
                list(readers.values()),
                names=list(readers),
                staged=[_is_staged(k) for k in readers],
            ):
                encoder.add(sort_key_, line)
            merged = encoder.finish()
        shas = {k: r.sha256 for k, r in readers.items() if r.finished}
        return merged, sealed_reader is not None, shas

    def _delete_merged_buckets(
        self,
        org_id: str,
        buckets: Sequence[tuple[ObjectKey, StoredObject]],
        merged_sha: Mapping[str, str],
    ) -> tuple[int, list[tuple[ObjectKey, StoredObject]]]:
        """Delete each bucket only if it still holds what was merged; returns (deleted, kept).

        A resnapshot racing this seal may have rewritten a bucket since it was read: deleting
        that version would lose its new events, so it stays for the next seal to merge.
        """
        deleted = 0
        kept = []
        for parsed, stored in buckets:
            current = self.store.head(parsed.key)
            if current is None:
                continue
            if current.metadata.get(META_SHA256) != merged_sha.get(parsed.key):
                self.observer.on_warning(
                    "bucket object changed after it was merged; kept for the next seal",
                    org_id=org_id,
                    key=parsed.key,
                )
                kept.append((parsed, stored))
                continue
            self.store.delete(parsed.key)
            deleted += 1
        return deleted, kept

    def _put_sealed(self, key: str, encoded: EncodedObject, now: int) -> None:
        self._put_retained(key, encoded.body, encoded.metadata(fetched_at_ns=now), now)

    def _put_sealed_file(
        self, key: str, spool: IO[bytes], merged: StreamedObject, now: int
    ) -> None:
        """Upload a spooled sealed object, under Object Lock retention when configured."""
        metadata = merged.metadata(fetched_at_ns=now)
        if self.retention is None:
            put_fileobj(self.store, key, spool, merged.size, metadata)
            return
        retain_until_ns = now + self.retention.days * NS_PER_DAY
        spool.seek(0)
        if isinstance(self.store, FileLockingStore):
            self.store.put_file_locked(
                key,
                spool,
                merged.size,
                metadata,
                retain_until_ns=retain_until_ns,
                mode=self.retention.mode,
            )
            return
        assert isinstance(self.store, LockingStore)
        self.store.put_locked(
            key, spool.read(), metadata, retain_until_ns=retain_until_ns, mode=self.retention.mode
        )

    def _put_retained(self, key: str, body: bytes, metadata: Mapping[str, str], now: int) -> None:
        """Write a sealed object or manifest, under Object Lock retention when configured."""
        if self.retention is None:
            self.store.put(key, body, metadata)
            return
        assert isinstance(self.store, LockingStore)
        self.store.put_locked(
            key,
            body,
            metadata,
            retain_until_ns=now + self.retention.days * NS_PER_DAY,
            mode=self.retention.mode,
        )

    def _write_manifest(
        self,
        *,
        org_id: str,
        day: date,
        entries: tuple[ManifestObject, ...],
        coverage: tuple[int, int],
        di_count: int | None,
        existing: tuple[Manifest, bytes] | None,
        manifest_days: Sequence[date],
        now: int,
        buckets: Mapping[str, Sequence[tuple[ObjectKey, StoredObject]]],
    ) -> tuple[Manifest, bool, bool]:
        previous_sha = self._previous_sha(org_id, day, manifest_days)
        covered = {
            "from": format_timestamp_ns(coverage[0]),
            "to": format_timestamp_ns(coverage[1]),
        }
        if existing is not None:
            old = existing[0]
            if (
                old.objects == entries
                and old.previous_manifest_sha256 == previous_sha
                and old.extra.get(COVERAGE_FIELD, covered) == covered
            ):
                self.ensure_certificate(org_id, day, existing[1])
                return old, False, False
            repairs = old.repairs
            if old.objects != entries:
                after = sum(entry.count for entry in entries)
                repairs = (
                    *old.repairs,
                    Repair(
                        at=format_timestamp_ns(now),
                        reason="late_events" if after > old.archived_count else "content_changed",
                        di_count_before=old.di_count,
                        di_count_after=di_count if di_count is not None else old.di_count,
                        archived_count_before=old.archived_count,
                        archived_count_after=after,
                        buckets=tuple(
                            sorted(
                                {p.key.rsplit("/", 1)[1] for v in buckets.values() for p, _ in v}
                            )
                        ),
                    ),
                )
            manifest = Manifest(
                org_id=org_id,
                day=day,
                objects=entries,
                di_count=di_count if di_count is not None else old.di_count,
                previous_manifest_sha256=previous_sha,
                sealed_at=old.sealed_at,
                repairs=repairs,
                extra={**old.extra, COVERAGE_FIELD: covered},
            )
            repaired = old.objects != entries
        else:
            manifest = Manifest(
                org_id=org_id,
                day=day,
                objects=entries,
                di_count=di_count,
                previous_manifest_sha256=previous_sha,
                sealed_at=format_timestamp_ns(now),
                extra={COVERAGE_FIELD: covered},
            )
            repaired = False
        data = manifest.to_bytes()
        # Only an existing successor needs relinking; while a sequence of earlier days is being
        # prepended, the successor appears only when the last of them is sealed.
        later = (day + timedelta(days=1)) in manifest_days
        marker = pending_relink_key(self.prefix, org_id)
        if later:
            # Announce the relink first: a crash between here and the marker's removal leaves
            # later links stale, and only this marker lets the next run fix them.
            body = relink_marker(day, sha256_hex(data), format_timestamp_ns(now))
            self.store.put(marker, body, {})
        self._put_retained(manifest_key(self.prefix, org_id, day), data, _manifest_meta(data), now)
        self._certify(org_id, day, data, now)
        if later:
            self._relink_after(org_id, day)
            self.store.delete(marker)
        return manifest, True, repaired


def _coverage_start(manifest: Manifest, *, default: int) -> int:
    recorded = manifest.extra.get(COVERAGE_FIELD)
    if isinstance(recorded, Mapping) and isinstance(recorded.get("from"), str):
        try:
            return parse_timestamp_ns(recorded["from"])
        except ValueError:
            return default
    # Sealed before coverage was recorded: those manifests vouched for the whole day.
    return day_start_ns(manifest.day)


def _is_staged(key: str) -> bool:
    try:
        parse_late_key(key)
    except LayoutError:
        return False
    return True


def _manifest_meta(data: bytes) -> dict[str, str]:
    return {META_SHA256: sha256_hex(data)}


def _fmt(ns: int | None) -> str | None:
    return None if ns is None else format_timestamp_ns(ns)


def archived_events_by_window(
    store: ArchiveStore, manifest: Manifest, windows: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Per window ``[start, end)``: (archived events, archived events in its last ms).

    Objects are streamed line by line, so a day of any size is counted in bounded memory.
    """
    totals = [[0, 0] for _ in windows]
    for entry in manifest.objects:
        stream = open_object(store, entry.key)
        if stream is None:
            continue
        with stream:
            for line in LineReader(stream):
                event: Any = json.loads(line)
                ts = event_timestamp_ns(event)
                for index, (start, end) in enumerate(windows):
                    if start <= ts < end:
                        totals[index][0] += 1
                        if ts >= end - NS_PER_MS:
                            totals[index][1] += 1
    return [(a, b) for a, b in totals]
