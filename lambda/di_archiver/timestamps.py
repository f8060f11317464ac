"""DI timestamps carry 0-9 fractional digits; we compare them only as integer nanoseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from di_archiver.errors import ArchiverError

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))\Z",
    re.ASCII,
)


class TimestampError(ArchiverError, ValueError):
    """A timestamp string is not RFC 3339."""


# Every event is parsed, and building a datetime dominates the cost; events of one bucket
# share a handful of hours, so the calendar work is done once per hour.
_HOUR_SECONDS: dict[tuple[str, str, str, str], int] = {}
_HOUR_CACHE_LIMIT = 50_000
# The fast path: DI writes UTC with a "Z", and the events of a page share their minutes, so a
# validated "YYYY-MM-DDTHH:MM" prefix maps straight to epoch seconds (fields read as UTC).
_MINUTE_PREFIX: dict[str, int] = {}
_MINUTE_CACHE_LIMIT = 100_000
# Events of a page share their seconds too: a "YYYY-MM-DDTHH:MM:SS" prefix the minute path has
# validated maps to epoch ns in one lookup (two slices, two lookups and an addition fewer).
# Pages arrive in time order, so a thousand seconds catch nearly every hit; a day holds
# 86,400 of them, and a cache that kept them all would weigh ~10 MB in a seal or a verify.
_SECOND_PREFIX: dict[str, int] = {}
_SECOND_CACHE_LIMIT = 1_024
_TWO_DIGITS = {f"{n:02d}": n for n in range(60)}
_FRACTION_SCALE: tuple[int, ...] = tuple(10**9 // 10**digits for digits in range(10))


def _hour_seconds(year: str, month: str, day: str, hour: str, value: str) -> int:
    key = (year, month, day, hour)
    cached = _HOUR_SECONDS.get(key)
    if cached is None:
        try:
            cached = int(
                datetime(int(year), int(month), int(day), int(hour), tzinfo=UTC).timestamp()
            )
        except ValueError as exc:
            raise TimestampError(f"not a valid date/time: {value!r}") from exc
        if len(_HOUR_SECONDS) >= _HOUR_CACHE_LIMIT:
            _HOUR_SECONDS.clear()
        _HOUR_SECONDS[key] = cached
    return cached


def parse_timestamp_ns(value: str) -> int:
    """Parse an RFC 3339 timestamp with 0-9 fractional digits to epoch nanoseconds (UTC)."""
    if type(value) is str and value[-1:] == "Z":
        base = _SECOND_PREFIX.get(value[:19])
        if base is None and value[16:17] == ":":
            minute = _MINUTE_PREFIX.get(value[:16])
            second = _TWO_DIGITS.get(value[17:19])
            if minute is not None and second is not None:
                base = (minute + second) * NS_PER_SECOND
                if len(_SECOND_PREFIX) >= _SECOND_CACHE_LIMIT:
                    _SECOND_PREFIX.clear()
                _SECOND_PREFIX[value[:19]] = base
        if base is not None:
            size = len(value)
            if size == 20:
                return base
            if 22 <= size <= 30 and value[19] == ".":
                fraction = value[20:-1]
                if fraction.isascii() and fraction.isdigit():
                    return base + int(fraction) * _FRACTION_SCALE[size - 21]
    return _parse_slow(value)


def _parse_slow(value: str) -> int:
    match = _RFC3339.match(value) if isinstance(value, str) else None
    if match is None:
        raise TimestampError(f"not an RFC 3339 timestamp: {value!r}")
    year, month, day, hour, minute, second, fraction, zulu, sign, off_h, off_m = match.groups()
    minutes, secs = int(minute), int(second)
    if minutes > 59 or secs > 59:
        raise TimestampError(f"not a valid date/time: {value!r}")
    seconds = _hour_seconds(year, month, day, hour, value) + minutes * 60 + secs
    if len(_MINUTE_PREFIX) >= _MINUTE_CACHE_LIMIT:
        _MINUTE_PREFIX.clear()
    _MINUTE_PREFIX[value[:16]] = seconds - secs
    if not zulu:
        offset = int(off_h) * 3600 + int(off_m) * 60
        seconds -= offset if sign == "+" else -offset
    nanos = int((fraction or "").ljust(9, "0")) if fraction else 0
    return seconds * NS_PER_SECOND + nanos


def format_timestamp_ns(ns: int) -> str:
    """Format epoch nanoseconds as RFC 3339 UTC with trailing zeros trimmed (Go's RFC3339Nano)."""
    seconds, nanos = divmod(ns, NS_PER_SECOND)
    base = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos:
        return f"{base}.{nanos:09d}".rstrip("0") + "Z"
    return f"{base}Z"


def datetime_to_ns(value: datetime) -> int:
    """Convert an aware datetime to epoch nanoseconds."""
    if value.tzinfo is None:
        raise TimestampError("naive datetime: give a timezone (UTC)")
    delta = value - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_SECOND + delta.microseconds * 1_000


def ns_to_datetime(ns: int) -> datetime:
    """Convert epoch nanoseconds to an aware UTC datetime (microsecond precision)."""
    return datetime.fromtimestamp(ns // 1_000 / 1_000_000, tz=UTC)
