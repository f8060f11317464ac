"""What one archive object holds, and the metadata that describes it (the archive contract).

An object is gzip-compressed UTF-8 JSON Lines, one DI event per line, sorted by
(timestamp as integer ns, id, line). Lines are the API's objects re-serialised compactly with
key order and unicode preserved; nothing is dropped or renamed. Two events with the same
(id, timestamp) are one event only when they are identical; differing ones are both kept and
counted as collisions (RADIUS ids are content-derived UUIDv3s and could collide).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from di_archiver import __version__
from di_archiver.errors import ArchiverError
from di_archiver.timestamps import format_timestamp_ns, parse_timestamp_ns

META_COUNT = "di-count"
META_SHA256 = "di-sha256"
META_FIRST_TS = "di-first-ts"
META_LAST_TS = "di-last-ts"
META_VERSION = "di-archiver-version"
META_FETCHED_AT = "di-fetched-at"
META_FORMAT = "di-format"
FORMAT_VERSION = "jsonl-gzip-1"

# Bucket objects are rewritten every run while open, so they favour speed; sealed days are kept
# for years, so they favour size.
FAST_LEVEL = 6
ARCHIVAL_LEVEL = 9


class MalformedEventError(ArchiverError):
    """An event has no usable ``timestamp``; it cannot be placed in a bucket."""


@dataclass(frozen=True, slots=True)
class EncodedObject:
    body: bytes
    sha256: str
    count: int
    first_ts_ns: int | None
    last_ts_ns: int | None
    raw_size: int
    collisions: int

    def metadata(self, *, fetched_at_ns: int) -> dict[str, str]:
        """S3 user metadata for this object (all strings, lower-case keys)."""
        meta = {
            META_COUNT: str(self.count),
            META_SHA256: self.sha256,
            META_VERSION: __version__,
            META_FETCHED_AT: format_timestamp_ns(fetched_at_ns),
            META_FORMAT: FORMAT_VERSION,
        }
        if self.first_ts_ns is not None and self.last_ts_ns is not None:
            meta[META_FIRST_TS] = format_timestamp_ns(self.first_ts_ns)
            meta[META_LAST_TS] = format_timestamp_ns(self.last_ts_ns)
        return meta


def event_timestamp_ns(event: Mapping[str, Any]) -> int:
    value = event.get("timestamp")
    if not isinstance(value, str):
        raise MalformedEventError(f"event id={event.get('id')!r} has no string timestamp")
    try:
        return parse_timestamp_ns(value)
    except ValueError as exc:
        raise MalformedEventError(f"event id={event.get('id')!r}: {exc}") from None


def serialise_event(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


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


def decompress(body: bytes) -> bytes:
    try:
        return gzip.decompress(body)
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiverError(f"archive object is not valid gzip: {exc}") from exc


def decode_lines(body: bytes) -> list[bytes]:
    """The JSON lines of a gzip archive object (without newlines)."""
    raw = decompress(body)
    return raw.split(b"\n")[:-1] if raw else []
