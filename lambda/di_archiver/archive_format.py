"""What one archive object holds, and the metadata that describes it (the archive contract).

An object is gzip-compressed UTF-8 JSON Lines, one DI event per line, sorted by
(timestamp as integer ns, id, line). Each line is the bytes DI sent for the event (see
:mod:`di_archiver.raw_events`); nothing is re-encoded, dropped or renamed. Two events with the same
(id, timestamp) are one event only when they are identical; differing ones are both kept and
counted as collisions (RADIUS ids are content-derived UUIDv3s and could collide).
"""

from __future__ import annotations

import bisect
import functools
import gzip
import hashlib
import io
import itertools
import struct
import zlib
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from msgspec import Struct

from di_archiver import __version__
from di_archiver.errors import ArchiverError
from di_archiver.raw_events import event_head, serialise_event, timestamp_ns
from di_archiver.timestamps import format_timestamp_ns

META_COUNT = "di-count"
META_SHA256 = "di-sha256"
META_FIRST_TS = "di-first-ts"
META_LAST_TS = "di-last-ts"
META_VERSION = "di-archiver-version"
META_FETCHED_AT = "di-fetched-at"
META_FORMAT = "di-format"
FORMAT_VERSION = "jsonl-gzip-1"

# Bucket objects are rewritten every run while open and replaced by their sealed day within a
# day or two, so they favour speed; sealed days are kept for years, so they favour size. On DI
# events level 3 deflates ~2.4x faster than level 6 for ~25% more bytes (levels 1-3 share
# zlib's fast strategy; 3 compressed best of them), and deflating was a third of the CPU an
# event costs at level 6. Only the compressed bytes change: SHA-256s are of the content.
FAST_LEVEL = 3
ARCHIVAL_LEVEL = 9


class EncodedObject(Struct, frozen=True):
    body: bytes
    sha256: str
    count: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    raw_size: int
    collisions: int

    def metadata(self, *, fetched_at_ns: int) -> dict[str, str]:
        """S3 user metadata for this object (all strings, lower-case keys)."""
        return object_metadata(
            count=self.count,
            sha256=self.sha256,
            first_ts_ns=self.first_ts_ns,
            last_ts_ns=self.last_ts_ns,
            fetched_at_ns=fetched_at_ns,
        )


def object_metadata(
    *,
    count: int,
    sha256: str,
    first_ts_ns: int | None,
    last_ts_ns: int | None,
    fetched_at_ns: int,
) -> dict[str, str]:
    """S3 user metadata describing an object's content (all strings, lower-case keys)."""
    meta = {
        META_COUNT: str(count),
        META_SHA256: sha256,
        META_VERSION: __version__,
        META_FETCHED_AT: format_timestamp_ns(fetched_at_ns),
        META_FORMAT: FORMAT_VERSION,
    }
    if first_ts_ns is not None and last_ts_ns is not None:
        meta[META_FIRST_TS] = format_timestamp_ns(first_ts_ns)
        meta[META_LAST_TS] = format_timestamp_ns(last_ts_ns)
    return meta


def event_timestamp_ns(event: Mapping[str, Any]) -> int:
    return timestamp_ns(event.get("timestamp"), event.get("id"))


def sort_key(ts_ns: int, event: Mapping[str, Any], line: bytes) -> tuple[int, str, bytes]:
    return (ts_ns, str(event.get("id", "")), line)


def encode_lines(
    keyed_lines: Iterable[tuple[tuple[int, str, bytes], bytes]], *, level: int = FAST_LEVEL
) -> EncodedObject:
    """Sort, drop exact duplicates, hash and gzip ``(sort_key, line)`` pairs deterministically."""
    ordered = sorted(keyed_lines, key=lambda pair: pair[0])
    lines: list[bytes] = []
    collisions = 0
    previous: tuple[int, str, bytes] | None = None
    for key, line in ordered:
        if previous is not None and key[:2] == previous[:2]:
            if key[2] == previous[2]:
                continue
            collisions += 1
        lines.append(line)
        previous = key
    raw = b"".join(line + b"\n" for line in lines)
    first = ordered[0][0][0] if ordered else None
    last = ordered[-1][0][0] if ordered else None
    return EncodedObject(
        body=compress(raw, level=level),
        sha256=hashlib.sha256(raw).hexdigest(),
        count=len(lines),
        first_ts_ns=first,
        last_ts_ns=last,
        raw_size=len(raw),
        collisions=collisions,
    )


def encode_events(events: Iterable[Mapping[str, Any]], *, level: int = FAST_LEVEL) -> EncodedObject:
    """Encode parsed events (convenience over :func:`encode_lines`)."""
    pairs = []
    for event in events:
        line = serialise_event(event)
        pairs.append((sort_key(event_timestamp_ns(event), event, line), line))
    return encode_lines(pairs, level=level)


def compress(raw: bytes, *, level: int) -> bytes:
    """gzip with mtime 0 so equal content always gives equal bytes."""
    return gzip.compress(raw, compresslevel=level, mtime=0)


@functools.cache
def _gzip_header(level: int) -> bytes:
    # What this Python's gzip.compress(mtime=0) writes, so both encoders stay byte-identical;
    # worked out once per level (it builds a whole deflate state), not once per object.
    return compress(b"", level=level)[:10]


def decompress(body: bytes) -> bytes:
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiverError(f"archive object is not valid gzip: {exc}") from exc


def decode_lines(body: bytes) -> list[bytes]:
    """The JSON lines of a gzip archive object (without newlines)."""
    raw = decompress(body)
    return raw.split(b"\n")[:-1] if raw else []


SortKey = tuple[int, str, bytes]


class StreamedObject(Struct, frozen=True):
    """What :class:`StreamEncoder` wrote: like :class:`EncodedObject` without the body."""

    sha256: str
    count: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    raw_size: int
    size: int
    collisions: int

    def metadata(self, *, fetched_at_ns: int) -> dict[str, str]:
        """S3 user metadata for this object (same as :meth:`EncodedObject.metadata`)."""
        return object_metadata(
            count=self.count,
            sha256=self.sha256,
            first_ts_ns=self.first_ts_ns,
            last_ts_ns=self.last_ts_ns,
            fetched_at_ns=fetched_at_ns,
        )


_CHUNK_BYTES = 64 * 1024
_FEW_LINES = 8


class StreamEncoder:
    """:func:`encode_lines` for input already in sort-key order, written to ``sink`` as it comes.

    Memory is bounded by zlib's window, not by the object: lines are counted and de-duplicated
    against their predecessor as they come, and hashed and compressed in chunks of about 64 KB
    (a deflate call per line costs several times more, mostly when many encoders take turns as
    the services of a bucket do). The bytes written are
    identical to ``encode_lines(...).body`` for the same lines (deflate output does not depend
    on how its input is chunked), so objects and SHA-256s of either path are interchangeable.
    """

    def __init__(self, sink: IO[bytes], *, level: int = FAST_LEVEL) -> None:
        self._sink = sink
        header = _gzip_header(level)
        self._deflate = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._sha = hashlib.sha256()
        self._crc = 0
        self._previous: SortKey | None = None
        self._first: int | None = None
        self.count = 0
        self.collisions = 0
        self.raw_size = 0
        self.size = 0
        self._held: list[bytes] = []
        self._held_size = 0
        self._write(header)

    def _write(self, data: bytes) -> None:
        if data:
            self._sink.write(data)
            self.size += len(data)

    def add(self, key: SortKey, line: bytes) -> None:
        """Append one line; ``key`` must not sort before the previous key."""
        self.extend(((key, line),))

    @property
    def last_key(self) -> SortKey | None:
        """The key of the last line taken: a later line must not sort before it."""
        return self._previous

    def extend(self, pairs: Iterable[tuple[SortKey, bytes]]) -> None:
        """:meth:`add` each pair, hashing and compressing them as one chunk (fewer calls)."""
        previous = self._previous
        chunk: list[bytes] = []
        for key, line in pairs:
            if previous is not None:
                if key < previous:
                    raise ArchiverError(
                        "lines reached the stream encoder out of (timestamp, id) order"
                    )
                # Field by field: slicing both keys would build two tuples per line.
                if key[0] == previous[0] and key[1] == previous[1]:
                    if key[2] == previous[2]:
                        continue
                    self.collisions += 1
            if self._first is None:
                self._first = key[0]
            previous = key
            chunk.append(line)
        self._previous = previous
        if not chunk:
            return
        self.count += len(chunk)
        # Joined a few dozen KB at a time, not a page's lines of a service at once (often MBs):
        # glibc maps every block above its mmap threshold (fixed at 128 KB for the Lambda) fresh
        # from the kernel, so each large join cost a page fault per 4 KB and kept one more copy
        # of the page's lines alive.
        if len(chunk) <= _FEW_LINES:  # one line at a time from a merge, or one event's copies
            chunk.append(b"")
            self._hold(b"\n".join(chunk))
            return
        self._drain()
        ends = list(itertools.accumulate(map(len, chunk)))
        start = taken = 0
        while start < len(chunk):
            stop = max(start + 1, bisect.bisect_right(ends, taken + _CHUNK_BYTES, start))
            piece = chunk[start:stop]
            piece.append(b"")
            self._consume(b"\n".join(piece))
            start, taken = stop, ends[stop - 1]

    def _hold(self, data: bytes) -> None:
        self._held.append(data)
        self._held_size += len(data)
        if self._held_size >= _CHUNK_BYTES:
            self._drain()

    def _drain(self) -> None:
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held, self._held_size = [], 0
        self._consume(data)

    def _consume(self, data: bytes) -> None:
        self._sha.update(data)
        self._crc = zlib.crc32(data, self._crc)
        self.raw_size += len(data)
        self._write(self._deflate.compress(data))

    def finish(self) -> StreamedObject:
        """Flush the deflate stream and the gzip trailer; the sink then holds the object."""
        self._drain()
        self._write(self._deflate.flush(zlib.Z_FINISH))
        self._write(struct.pack("<LL", self._crc, self.raw_size & 0xFFFFFFFF))
        return StreamedObject(
            sha256=self._sha.hexdigest(),
            count=self.count,
            first_ts_ns=self._first,
            last_ts_ns=self._previous[0] if self._previous is not None else None,
            raw_size=self.raw_size,
            size=self.size,
            collisions=self.collisions,
        )


class _CountingReader:
    """Counts the compressed bytes read through it (a stream's size without buffering it)."""

    def __init__(self, inner: IO[bytes]) -> None:
        self.inner = inner
        self.bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = self.inner.read(size)
        self.bytes_read += len(data)
        return data

    def seek(self, offset: int, /) -> object:
        # GzipFile only seeks to rewind, which reading front to back never does.
        raise io.UnsupportedOperation("archive streams are read front to back")


class LineReader:
    """Iterates the lines of a gzip archive object read from a stream, one line in memory.

    Mirrors :func:`decode_lines`: lines are yielded without their newline, and text after the
    last newline is not a line (``partial_tail`` tells whether there was any). ``sha256`` and
    ``raw_size`` cover every decompressed byte, ``compressed_size`` every byte read, once the
    iteration has finished. Invalid gzip raises :class:`ArchiverError`.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._counter = _CountingReader(stream)
        self._sha = hashlib.sha256()
        self.raw_size = 0
        self.partial_tail = False
        self.finished = False

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    @property
    def compressed_size(self) -> int:
        return self._counter.bytes_read

    def __iter__(self) -> Iterator[bytes]:
        gz = gzip.GzipFile(fileobj=self._counter, mode="rb")
        try:
            while True:
                line = gz.readline()
                if not line:
                    break
                self._sha.update(line)
                self.raw_size += len(line)
                if line.endswith(b"\n"):
                    yield line[:-1]
                else:
                    self.partial_tail = True
        except (OSError, EOFError, zlib.error) as exc:
            raise ArchiverError(f"archive object is not valid gzip: {exc}") from exc
        finally:
            gz.close()
        self.finished = True


def keyed_line(line: bytes) -> tuple[SortKey, bytes]:
    """``(sort_key, line)`` of one archived JSON line (raises on a line without timestamp)."""
    event = event_head(line)
    return (event.ts_ns, event.event_id, line), line
