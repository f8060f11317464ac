"""Snapshot one time bucket: fetch it, split it by service, write one object per service.

Each service's object is encoded while the pages arrive: DI returns events ordered by
millisecond, so the events of the current millisecond wait in a small reorder buffer and are
then hashed and gzipped (SHA-256 and deflate run as the lines come) into a spool that stays in
memory up to a few hundred KB and then spills to a temporary file. Memory is therefore a few MB
per bucket in flight, whatever the events per hour. Should DI ever return a millisecond out of
order, that service's lines are read back and sorted in memory instead (bounded by
``max_bucket_bytes``), so the object is the same either way.

The engine pipelines the two halves: :func:`add_page` (parse, filter, encode) while the pages of
a bucket arrive, and :func:`write_bucket` (compare, merge, upload) on a writer thread while the
next bucket is fetched.

Rules that protect the archive:

* the half-open range ``[start, fetch_end)`` is enforced on the parsed integer-ns timestamp,
  whatever the API does with ``end_time`` (it filters at ms, inclusivity unknown): an event
  within a millisecond of either edge (what ms filtering returns) is left to the adjacent
  bucket; an event further outside the window it was asked for breaks DI's contract and stops
  the bucket with :class:`~di_archiver.errors.DIResponseError` (dropping it would lose it if
  DI never returns it for its own window; keeping it would misplace it);
* an event without a usable timestamp stops the bucket with MalformedEventError: it cannot be
  placed in any bucket and must not vanish silently (the run fails loudly and alarms);
* a rewrite never loses an archived event: when the stored object differs, the new content is
  the fetched lines plus every stored line whose (timestamp, id) the fetch lacks (aged out of
  DI); a stored line whose (timestamp, id) the fetch holds in another version is replaced by
  DI's current answer (a *revision*, counted and reported, never silent) so one event never
  appears twice; when no bucket object exists but the day was already sealed, the sealed lines
  of the bucket's range are merged the same way. Both sides are sorted, so this is a streaming
  merge-join, never a set of the bucket's lines;
* a PUT is skipped when the stored object already holds every fetched line (and the store
  vouches that its metadata describes that content).
"""

from __future__ import annotations

import contextlib
import operator
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import IO

import msgspec
from msgspec import Struct

from di_archiver.archive_format import (
    META_SHA256,
    LineReader,
    StreamedObject,
    StreamEncoder,
    keyed_line,
)
from di_archiver.domain.planning import PlannedBucket
from di_archiver.domain.ports import ArchiveStore, EventSource, open_object, put_fileobj
from di_archiver.errors import ArchiverError, BucketTooLargeError, DIResponseError
from di_archiver.layout import (
    NS_PER_DAY,
    bucket_object_key,
    day_of_ns,
    day_start_ns,
    late_object_key,
    manifest_key,
    sealed_day_key,
    service_partition,
)
from di_archiver.raw_events import MalformedEventError, RawEvent, event_head
from di_archiver.services import KNOWN_SERVICES
from di_archiver.timestamps import NS_PER_MS, format_timestamp_ns

SortKey = tuple[int, str, bytes]
KeyedLine = tuple[SortKey, bytes]
_KNOWN = frozenset(KNOWN_SERVICES)
# A service's gzip output stays in memory up to this size, then spills to a temporary file. A
# bucket in flight has one per service (15 at DI's mix), so this is paid per bucket in flight
# times services: at 512 KB, 16 buckets in flight held ~12 MB more at peak than at 64 KB.
SPOOL_MEMORY_BYTES = 64 * 1024


class ServiceStream:
    """One service's object of one bucket, encoded as its events arrive."""

    __slots__ = ("_encoder", "_spool", "_ties", "_unsorted", "result")

    def __init__(self) -> None:
        self._spool: IO[bytes] | None = tempfile.SpooledTemporaryFile(  # noqa: SIM115
            max_size=SPOOL_MEMORY_BYTES
        )
        self._encoder: StreamEncoder | None = StreamEncoder(self._spool)
        # Lines are held as their sort keys alone (a key's last item is its line): one tuple per
        # event, not two, so fewer objects for the cyclic collector to count and walk.
        # The newest millisecond's lines: the next page may hold more of that millisecond.
        self._ties: list[SortKey] = []
        self._unsorted: list[SortKey] | None = None
        self.result: StreamedObject | None = None

    def extend(self, keys: list[SortKey]) -> None:
        """Add one page's lines of this service (as sort keys), in the order DI sent them.

        A page's lines are sorted together (DI orders by millisecond only, and timsort is
        linear on sorted input), then encoded except the last millisecond's. Only a line that
        sorts before what is already encoded makes the service sort in memory to the end.
        """
        if not keys:
            return
        if self._unsorted is not None:
            self._unsorted.extend(keys)
            return
        held = self._ties
        held.extend(keys)
        held.sort()
        encoder = self._encoder
        assert encoder is not None
        if encoder.last_key is not None and held[0] < encoder.last_key:
            self._read_back()
            return
        last_ms = held[-1][0] // NS_PER_MS
        cut = len(held) - 1
        while cut and held[cut - 1][0] // NS_PER_MS == last_ms:
            cut -= 1
        if cut:
            encoder.extend(_keyed(held[:cut]))
            del held[:cut]

    def _read_back(self) -> None:
        """DI broke its own order: hold this service's lines in memory and sort them at the end."""
        assert self._encoder is not None
        assert self._spool is not None
        self._encoder.finish()
        self._spool.seek(0)
        self._unsorted = [event_head(line).sort_key for line in LineReader(self._spool)]
        self._unsorted.extend(self._ties)
        self._ties = []
        self._spool.close()
        self._spool, self._encoder = None, None

    def finish(self) -> StreamedObject:
        """Encode what is left; the spool then holds the whole gzip object."""
        if self.result is not None:
            return self.result
        if self._unsorted is not None:
            self._unsorted.sort()
            self._spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
            self._encoder = StreamEncoder(self._spool)
            self._encoder.extend(_keyed(self._unsorted))
            self._unsorted = None
        elif self._ties:
            assert self._encoder is not None
            self._encoder.extend(_keyed(self._ties))
            self._ties = []
        assert self._encoder is not None
        self.result = self._encoder.finish()
        self._encoder = None
        return self.result

    def open(self) -> IO[bytes]:
        """The finished gzip object, positioned at its start."""
        assert self._spool is not None
        assert self.result is not None
        self._spool.seek(0)
        return self._spool

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._unsorted = None
        self._ties = []


_line_of: Callable[[SortKey], bytes] = operator.itemgetter(2)


def _keyed(keys: list[SortKey]) -> Iterator[KeyedLine]:
    """``(key, line)`` pairs of ``keys``, made in C (zip reuses its tuple as each is consumed)."""
    return zip(keys, map(_line_of, keys), strict=True)


class CollectedBucket(Struct):
    """The in-range events of one bucket, encoded per service partition as they arrive.

    Events are read from ``read_from`` (the bucket's start, or where an earlier run's archived
    part ends when DI's count there has not moved: ``prior_events`` are that part's events,
    which the write keeps from the stored objects).
    """

    org_id: str
    start_ns: int
    end_ns: int
    fetch_end_ns: int
    closed: bool
    read_from_ns: int | None = None
    prior_events: int = 0
    by_service: dict[str, ServiceStream] = msgspec.field(default_factory=dict)
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    events: int = 0
    bytes: int = 0  # line bytes of the bucket's in-range events, bounded by max_bucket_bytes

    @classmethod
    def of(cls, org_id: str, planned: PlannedBucket) -> CollectedBucket:
        """An empty bucket to collect ``planned`` into, read from where the plan says."""
        return cls(
            org_id,
            planned.start_ns,
            planned.end_ns,
            planned.fetch_end_ns,
            planned.closed,
            planned.archived_through_ns,
            planned.archived_events,
        )

    @property
    def reads_from_ns(self) -> int:
        return self.start_ns if self.read_from_ns is None else self.read_from_ns

    @property
    def di_events(self) -> int:
        """DI's events in ``[start, fetch_end)`` as this read found them."""
        return self.prior_events + self.events

    @property
    def unknown_services(self) -> dict[str, int]:
        return {s: n for s, n in self.counts.items() if s not in _KNOWN}

    def close(self) -> None:
        """Release every spool (after the write, or when the bucket is abandoned)."""
        for stream in self.by_service.values():
            stream.close()


class WriteOutcome(Struct, frozen=True):
    objects_written: int
    objects_unchanged: int
    bytes_written: int
    events: int
    collisions: int
    revised: int = 0  # archived lines replaced by DI's changed version of the same event


def _range_text(start_ns: int, end_ns: int) -> str:
    return f"[{format_timestamp_ns(start_ns)}, {format_timestamp_ns(end_ns)})"


def edge_tolerance(start_ns: int, fetch_end_ns: int) -> tuple[int, int]:
    """``[lo, hi)``: what DI may return for ``[start, fetch_end)`` when it filters at whole
    milliseconds with either end inclusive. Outside it, an event breaks DI's contract."""
    lo = start_ns - start_ns % NS_PER_MS
    hi = fetch_end_ns - fetch_end_ns % NS_PER_MS + 2 * NS_PER_MS
    return lo, hi


def _outside_window(collected: CollectedBucket, event_id: str, ts: int) -> DIResponseError:
    window = _range_text(collected.reads_from_ns, collected.fetch_end_ns)
    return DIResponseError(
        f"org {collected.org_id}: DI returned event id={event_id[:64]!r} with "
        f"timestamp {format_timestamp_ns(ts)}, outside the window {window} it was asked for; "
        "the run stops here (the checkpoint stays before this bucket) rather than drop or "
        "misplace it. Retry later; if it persists, report it to JumpCloud support",
        status=200,
    )


def add_page(collected: CollectedBucket, page: Sequence[RawEvent], *, max_events: int) -> None:
    """Add one page, keeping only events whose parsed timestamp lies in ``[start, fetch_end)``.

    Events just outside (DI's millisecond filtering) are skipped; any further outside raise
    :class:`DIResponseError`.
    """
    org_id, start_ns, end_ns = collected.org_id, collected.reads_from_ns, collected.end_ns
    fetch_end_ns = collected.fetch_end_ns
    edge_lo, edge_hi = edge_tolerance(start_ns, fetch_end_ns)
    limit = max_events - collected.prior_events
    by_service = collected.by_service
    counts = collected.counts
    count = collected.events
    size = collected.bytes
    # This loop runs once per archived event: service names repeat, so the batch of their
    # partition (a regex check) is found once per name.
    batches: dict[str, list[SortKey]] = {}
    batch_of: dict[object, list[SortKey]] = {}
    skipped = 0
    for event in page:
        ts, event_id, service, line = event.ts_ns, event.event_id, event.service, event.line
        if not start_ns <= ts < fetch_end_ns:
            if edge_lo <= ts < edge_hi:
                skipped += 1
                continue
            raise _outside_window(collected, event_id, ts)
        size += len(line)
        try:
            batch = batch_of[service]
        except (KeyError, TypeError):  # a new value, or one that cannot be a key (an object)
            batch = batches.setdefault(service_partition(service), [])
            with contextlib.suppress(TypeError):
                batch_of[service] = batch
        batch.append((ts, event_id, line))
    count += len(page) - skipped
    if count > limit:
        raise BucketTooLargeError(
            f"bucket {_range_text(collected.start_ns, end_ns)} of org {org_id} holds "
            f"more than {max_events} events; set DI_ARCHIVER_BUCKET_MINUTES lower"
        )
    for partition, batch in batches.items():
        stream = by_service.get(partition)
        if stream is None:
            stream = by_service[partition] = ServiceStream()
            counts[partition] = 0
        stream.extend(batch)
        counts[partition] += len(batch)
    collected.events = count
    collected.bytes = size


def malformed_in_bucket(
    exc: MalformedEventError, org_id: str, start_ns: int, end_ns: int
) -> MalformedEventError:
    """``exc`` with the org and bucket it stopped, and what to do."""
    error = MalformedEventError(
        f"org {org_id} bucket {_range_text(start_ns, end_ns)}: {exc}; an event without a "
        "usable timestamp cannot be placed in a bucket, so the run stops rather than drop it "
        "(retry; report it to JumpCloud if it persists)"
    )
    error.__cause__ = exc
    return error


def check_bucket_bytes(collected: CollectedBucket, max_bytes: int) -> None:
    """Refuse a bucket whose events' lines exceed ``max_bytes``."""
    if collected.bytes > max_bytes:
        raise BucketTooLargeError(
            f"bucket {_range_text(collected.start_ns, collected.end_ns)} of org "
            f"{collected.org_id} holds more than {max_bytes} bytes of events "
            f"({collected.events} events so far); set DI_ARCHIVER_BUCKET_MINUTES lower (or "
            "raise DI_ARCHIVER_MAX_BUCKET_BYTES)"
        )


def close_pages(pages: object) -> None:
    """Stop a prefetching client's thread at once when we bail out mid-bucket."""
    close = getattr(pages, "close", None)
    if close is not None:
        close()


def collect_bucket(
    source: EventSource,
    org_id: str,
    planned: PlannedBucket,
    *,
    max_events: int,
    max_bytes: int | None = None,
) -> CollectedBucket:
    """Fetch ``[reads_from, fetch_end)`` of ``planned`` and keep only events whose parsed
    timestamp lies inside it."""
    collected = CollectedBucket.of(org_id, planned)
    if planned.reads_from_ns >= planned.fetch_end_ns:
        return collected  # nothing new to read
    pages = source.iter_pages(org_id, planned.reads_from_ns, planned.fetch_end_ns)
    try:
        for page in pages:
            add_page(collected, page, max_events=max_events)
            # Encoded: dropped before the next page is asked for, which a source may read
            # into the memory this one held.
            del page
            if max_bytes is not None:
                check_bucket_bytes(collected, max_bytes)
    except MalformedEventError as exc:
        collected.close()
        raise malformed_in_bucket(exc, org_id, planned.start_ns, planned.end_ns) from exc.__cause__
    except BaseException:
        collected.close()
        raise
    finally:
        close_pages(pages)
    return collected


def _stored_keyed(stream: IO[bytes], start_ns: int, end_ns: int) -> Iterator[KeyedLine]:
    """In-range lines of a stored object in order; refuses an object that is not sorted."""
    previous: SortKey | None = None
    for line in LineReader(stream):
        try:
            key, _ = keyed_line(line)
        except MalformedEventError:
            raise
        except ValueError as exc:
            raise ArchiverError(f"stored archive line is not JSON: {exc}") from exc
        if previous is not None and key < previous:
            raise ArchiverError(
                "a stored archive object is not sorted by (timestamp, id); run "
                "`di-archiver verify` and restore it before this bucket is rewritten"
            )
        previous = key
        if key[0] >= end_ns:
            return
        if key[0] >= start_ns:
            yield key, line


class _Merged(Struct):
    already: int = 0  # fetched lines the stored object holds byte for byte
    revised: int = 0  # stored lines replaced by another version of their (timestamp, id)
    kept: int = 0  # stored lines whose (timestamp, id) the fetch lacks


def _merge(
    fetched: IO[bytes], stored: IO[bytes], encoder: StreamEncoder, *, start_ns: int, end_ns: int
) -> _Merged:
    """Encode the fetched lines plus the stored lines the fetch lacks, both sorted, as one
    merge-join on (timestamp, id); count what the stored object already held."""
    merged = _Merged()
    mine = (keyed_line(line) for line in LineReader(fetched))
    theirs = _stored_keyed(stored, start_ns, end_ns)
    a = next(mine, None)
    b = next(theirs, None)
    while a is not None or b is not None:
        event = min(x[0][:2] for x in (a, b) if x is not None)
        group_a: list[KeyedLine] = []
        while a is not None and a[0][:2] == event:
            group_a.append(a)
            a = next(mine, None)
        group_b: list[KeyedLine] = []
        while b is not None and b[0][:2] == event:
            group_b.append(b)
            b = next(theirs, None)
        if group_a:
            lines = {line for _, line in group_a}
            held = {line for _, line in group_b}
            merged.already += len(lines & held)
            merged.revised += len(held - lines)
            encoder.extend(group_a)
        else:
            merged.kept += len(group_b)
            encoder.extend(group_b)
    return merged


def write_bucket(
    store: ArchiveStore,
    collected: CollectedBucket,
    *,
    prefix: str,
    fetched_at_ns: int,
    consult_sealed_day: bool,
) -> WriteOutcome:
    """Write one object per service of ``collected``; never remove an archived event.

    ``consult_sealed_day``: every bucket of the bucket's day is closed, so the day may be
    sealed already. Then, when the day's manifest exists, the bucket is *staged* (see
    :func:`~di_archiver.layout.late_object_key`) instead of written beside the sealed day, its
    content merged with the sealed day's lines of the bucket's range; the next seal merges it
    into the day. A seal that completes while this bucket is written is caught by a second
    look at the manifest: the objects just written are moved to the staging area.
    """
    try:
        return _write_bucket(
            store,
            collected,
            prefix=prefix,
            fetched_at_ns=fetched_at_ns,
            consult_sealed_day=consult_sealed_day,
        )
    finally:
        collected.close()


def _write_bucket(
    store: ArchiveStore,
    collected: CollectedBucket,
    *,
    prefix: str,
    fetched_at_ns: int,
    consult_sealed_day: bool,
) -> WriteOutcome:
    written = unchanged = size = events = collisions = revised = 0
    org, start, end = collected.org_id, collected.start_ns, collected.end_ns
    day = day_of_ns(start)
    sealed = consult_sealed_day and store.head(manifest_key(prefix, org, day)) is not None
    placed: list[tuple[str, str]] = []
    for service in sorted(collected.by_service):
        stream = collected.by_service[service]
        visible_key = bucket_object_key(prefix, org, service, start, end)
        staged_key = late_object_key(prefix, org, service, start, end)
        key = staged_key if sealed else visible_key
        encoded = stream.finish()
        events += encoded.count
        head = store.head(key)
        if head is not None and head.metadata.get(META_SHA256) == encoded.sha256:
            unchanged += 1
            continue
        stored: IO[bytes] | None = None
        if head is not None:
            stored = open_object(store, key)
        elif consult_sealed_day:
            stored = open_object(store, sealed_day_key(prefix, org, service, day))
        body, result, replaced, merged_body = stream.open(), encoded, 0, False
        if stored is not None:
            spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
            try:
                with stored:
                    encoder = StreamEncoder(spool)
                    merged = _merge(body, stored, encoder, start_ns=start, end_ns=end)
                # An object whose store cannot vouch for its metadata (a write torn between
                # content and metadata) is rewritten even when its content already holds the
                # fetch, so metadata and content agree again.
                vouched = head is None or META_SHA256 in head.metadata
                if merged.already == encoded.count and not merged.revised and vouched:
                    spool.close()
                    unchanged += 1
                    continue
                body, result, replaced, merged_body = spool, encoder.finish(), merged.revised, True
                body.seek(0)
            except BaseException:
                spool.close()
                raise
        try:
            put_fileobj(store, key, body, result.size, result.metadata(fetched_at_ns=fetched_at_ns))
        finally:
            if merged_body:
                body.close()
        if consult_sealed_day and not sealed:
            placed.append((visible_key, staged_key))
        written += 1
        size += result.size
        collisions += result.collisions
        revised += replaced
    if placed and store.head(manifest_key(prefix, org, day)) is not None:
        # Sealed meanwhile: the day object may already hold these events, so they must not
        # stay visible beside it. Staged first, then removed: a crash between the two leaves
        # a copy the next seal merges (bucket lines win), never a loss.
        for visible_key, staged_key in placed:
            _move(store, visible_key, staged_key)
    return WriteOutcome(written, unchanged, size, events, collisions, revised)


def _move(store: ArchiveStore, source_key: str, target_key: str) -> None:
    """Copy ``source_key`` to ``target_key`` (content and metadata), then delete it."""
    head = store.head(source_key)
    stream = open_object(store, source_key)
    if head is None or stream is None:
        return
    with stream, tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        shutil.copyfileobj(stream, spool, 1024 * 1024)
        put_fileobj(store, target_key, spool, spool.tell(), head.metadata)
    store.delete(source_key)


def day_may_be_sealed(start_ns: int, *, now_ns: int, lag_ns: int, settle_ns: int) -> bool:
    """Only a day whose every bucket is closed can have been sealed."""
    day_end = day_start_ns(day_of_ns(start_ns)) + NS_PER_DAY
    return day_end <= now_ns - lag_ns and day_end + settle_ns <= now_ns
