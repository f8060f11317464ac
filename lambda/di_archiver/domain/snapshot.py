"""Snapshot one time bucket: fetch it, split it by service, write one object per service.

Two halves so the engine can pipeline them: :func:`collect_bucket` (network and JSON, holds the
GIL) and :func:`write_bucket` (sort, hash, gzip and store; zlib and hashlib release the GIL).

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
  of the bucket's range are merged the same way;
* a PUT is skipped when the stored object already holds every fetched line (and the store
  vouches that its metadata describes that content).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from di_archiver.archive_format import META_SHA256, encode_lines, keyed_line
from di_archiver.domain.ports import ArchiveStore, EventSource
from di_archiver.errors import ArchiverError, BucketTooLargeError, DIResponseError
from di_archiver.layout import (
    NS_PER_DAY,
    bucket_object_key,
    day_of_ns,
    day_start_ns,
    sealed_day_key,
    service_partition,
)
from di_archiver.raw_events import MalformedEventError, RawEvent
from di_archiver.services import KNOWN_SERVICES
from di_archiver.timestamps import NS_PER_MS, format_timestamp_ns

SortKey = tuple[int, str, bytes]
KeyedLine = tuple[SortKey, bytes]
_KNOWN = frozenset(KNOWN_SERVICES)


@dataclass(slots=True)
class CollectedBucket:
    """The in-range events of one bucket, serialised and split by service partition."""

    org_id: str
    start_ns: int
    end_ns: int
    fetch_end_ns: int
    closed: bool
    by_service: dict[str, list[KeyedLine]] = field(default_factory=dict)
    events: int = 0
    bytes: int = 0  # serialised line bytes held, bounded by max_bucket_bytes

    @property
    def unknown_services(self) -> dict[str, int]:
        return {s: len(v) for s, v in self.by_service.items() if s not in _KNOWN}


@dataclass(frozen=True, slots=True)
class WriteOutcome:
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
    window = _range_text(collected.start_ns, collected.fetch_end_ns)
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
    org_id, start_ns, end_ns = collected.org_id, collected.start_ns, collected.end_ns
    fetch_end_ns = collected.fetch_end_ns
    edge_lo, edge_hi = edge_tolerance(start_ns, fetch_end_ns)
    by_service = collected.by_service
    count = collected.events
    size = collected.bytes
    # This loop runs once per archived event: service names repeat, so their partition (a
    # regex check) is worked out once per name.
    partitions: dict[object, str] = {}
    for ts, event_id, service, line in page:
        if not start_ns <= ts < fetch_end_ns:
            if edge_lo <= ts < edge_hi:
                continue
            raise _outside_window(collected, event_id, ts)
        count += 1
        if count > max_events:
            raise BucketTooLargeError(
                f"bucket {_range_text(start_ns, end_ns)} of org {org_id} holds more than "
                f"{max_events} events; set DI_ARCHIVER_BUCKET_MINUTES lower"
            )
        size += len(line)
        hashable = service if isinstance(service, str) else None
        partition = partitions.get(hashable)
        if partition is None:
            partition = partitions[hashable] = service_partition(service)
        lines = by_service.get(partition)
        if lines is None:
            lines = by_service[partition] = []
        lines.append(((ts, event_id, line), line))
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
    """Refuse to hold more than ``max_bytes`` of serialised lines of one bucket in memory."""
    if collected.bytes > max_bytes:
        raise BucketTooLargeError(
            f"bucket {_range_text(collected.start_ns, collected.end_ns)} of org "
            f"{collected.org_id} holds more than {max_bytes} bytes of events "
            f"({collected.events} events so far), more than this run may hold in memory; set "
            "DI_ARCHIVER_BUCKET_MINUTES lower (or raise DI_ARCHIVER_MAX_BUCKET_BYTES together "
            "with the function's memory)"
        )


def close_pages(pages: object) -> None:
    """Stop a prefetching client's thread at once when we bail out mid-bucket."""
    close = getattr(pages, "close", None)
    if close is not None:
        close()


def collect_bucket(
    source: EventSource,
    org_id: str,
    *,
    start_ns: int,
    end_ns: int,
    fetch_end_ns: int,
    closed: bool,
    max_events: int,
    max_bytes: int | None = None,
) -> CollectedBucket:
    """Fetch ``[start, fetch_end)`` and keep only events whose parsed timestamp lies inside it."""
    collected = CollectedBucket(org_id, start_ns, end_ns, fetch_end_ns, closed)
    pages = source.iter_pages(org_id, start_ns, fetch_end_ns)
    try:
        for page in pages:
            add_page(collected, page, max_events=max_events)
            if max_bytes is not None:
                check_bucket_bytes(collected, max_bytes)
    except MalformedEventError as exc:
        raise malformed_in_bucket(exc, org_id, start_ns, end_ns) from exc.__cause__
    finally:
        close_pages(pages)
    return collected


def _iter_stored_lines(body: bytes) -> Iterator[bytes]:
    """Lines of a stored object, decompressed as a stream so a sealed day never sits whole."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
            for raw in stream:
                line = raw.rstrip(b"\n")
                if line:
                    yield line
    except (OSError, EOFError) as exc:
        raise ArchiverError(f"stored archive object is not valid gzip: {exc}") from exc


def _keyed(line: bytes) -> KeyedLine:
    try:
        return keyed_line(line)
    except MalformedEventError:
        raise
    except ValueError as exc:
        raise ArchiverError(f"stored archive line is not JSON: {exc}") from exc


def _merge_stored(
    body: bytes,
    fetched_lines: set[bytes],
    fetched_events: set[tuple[int, str]],
    *,
    start_ns: int,
    end_ns: int,
) -> tuple[list[KeyedLine], int, int]:
    """Merge a stored object into a fetch: ``(kept, already, revised)``.

    ``kept``: in-range stored lines whose (timestamp, id) the fetch lacks (kept forever);
    ``already``: fetched lines stored byte for byte; ``revised``: stored lines replaced because
    the fetch holds another version of their (timestamp, id) (DI's current answer wins).
    """
    kept: list[KeyedLine] = []
    seen: set[bytes] = set()
    revised = 0
    for line in _iter_stored_lines(body):
        if line in fetched_lines:
            seen.add(line)
            continue
        keyed = _keyed(line)
        if not start_ns <= keyed[0][0] < end_ns:
            continue
        if keyed[0][:2] in fetched_events:
            revised += 1
        else:
            kept.append(keyed)
    return kept, len(seen), revised


def write_bucket(
    store: ArchiveStore,
    collected: CollectedBucket,
    *,
    prefix: str,
    fetched_at_ns: int,
    consult_sealed_day: bool,
) -> WriteOutcome:
    """Write one object per service of ``collected``; never remove an archived event.

    ``consult_sealed_day``: the bucket's day may already be sealed, so when a bucket object is
    absent the sealed day object (if any) is read for this bucket's range.
    """
    written = unchanged = size = events = collisions = revised = 0
    org, start, end = collected.org_id, collected.start_ns, collected.end_ns
    for service in sorted(collected.by_service):
        pairs = collected.by_service[service]
        key = bucket_object_key(prefix, org, service, start, end)
        encoded = encode_lines(pairs)
        events += encoded.count
        head = store.head(key)
        if head is not None and head.metadata.get(META_SHA256) == encoded.sha256:
            unchanged += 1
            continue
        stored: bytes | None = None
        if head is not None:
            stored = store.get(key)
        elif consult_sealed_day:
            stored = store.get(sealed_day_key(prefix, org, service, day_of_ns(start)))
        replaced = 0
        if stored is not None:
            fetched_lines = {line for _, line in pairs}
            kept, already, replaced = _merge_stored(
                stored,
                fetched_lines,
                {k[:2] for k, _ in pairs},
                start_ns=start,
                end_ns=end,
            )
            # An object whose store cannot vouch for its metadata (a write torn between content
            # and metadata) is rewritten even when its content already holds the fetch, so
            # metadata and content agree again.
            vouched = head is None or META_SHA256 in head.metadata
            if already == len(fetched_lines) and not replaced and vouched:
                unchanged += 1
                continue
            if kept:
                encoded = encode_lines([*pairs, *kept])
        store.put(key, encoded.body, encoded.metadata(fetched_at_ns=fetched_at_ns))
        written += 1
        size += len(encoded.body)
        collisions += encoded.collisions
        revised += replaced
    return WriteOutcome(written, unchanged, size, events, collisions, revised)


def day_may_be_sealed(start_ns: int, *, now_ns: int, lag_ns: int, settle_ns: int) -> bool:
    """Only a day whose every bucket is closed can have been sealed."""
    day_end = day_start_ns(day_of_ns(start_ns)) + NS_PER_DAY
    return day_end <= now_ns - lag_ns and day_end + settle_ns <= now_ns
