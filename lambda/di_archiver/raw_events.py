"""DI events as the bytes DI sent them (design invariant 5): parse only what placement needs.

A page body is split into its array elements without decoding them (msgspec skips over each
element while validating it and hands back its exact bytes); of each element only ``timestamp``,
``id`` and ``service`` are decoded. The archived line is those bytes: number spellings (``1E2``,
``1.10``, ``-0``, ``1e400``), escapes (``\\u00e9``), key order and duplicate keys stay as DI
wrote them. The one change: a line break between tokens (a pretty-printed body) becomes a space,
because a JSON Lines record must be one line; JSON cannot hold a raw line break anywhere else,
so this never touches a value.

The same head parser reads stored lines (:func:`event_head`), so the sort key of an event is
computed identically when it is fetched, merged, sealed and verified. Where a field cannot be
decoded by msgspec (a lone surrogate escape, a number beyond a double), the standard library
decodes that event instead, so the rules stay those of ``json.loads``: duplicate keys keep the
last value, ``id`` is compared as ``str(value)``.
"""

from __future__ import annotations

import decimal
import functools
import itertools
import json
import re
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from di_archiver.errors import ArchiverError
from di_archiver.timestamps import parse_timestamp_ns


class MalformedEventError(ArchiverError):
    """An event has no usable ``timestamp``; it cannot be placed in a bucket."""


class PageFormatError(ValueError):
    """A page body is not a UTF-8 JSON array of objects (or ``null``).

    ``malformed``: not even JSON (or not UTF-8), as a cut connection can leave it, so worth
    asking again; otherwise valid JSON of the wrong shape, which asking again will not fix.
    """

    def __init__(self, message: str, *, malformed: bool) -> None:
        super().__init__(message)
        self.malformed = malformed


class RepeatedKeyError(ArchiverError):
    """An event sends ``timestamp`` or ``service`` more than once.

    JSON readers disagree on which value counts (Python and Athena take the last, others the
    first), so the event's place in the archive would be a guess.
    """

    def __init__(self, event_id: object, keys: tuple[str, ...]) -> None:
        super().__init__(
            f"event id={str(event_id)[:64]!r} sends the key(s) {', '.join(keys)} more than once"
        )
        self.event_id = event_id
        self.keys = keys


class RawEvent(msgspec.Struct, frozen=True, gc=False):
    """One event: what placement needs, and the exact bytes to archive.

    Not tracked by the cyclic collector (its fields are decoded JSON values, which hold no
    reference cycles): a page's events outlive many young collections, and as tracked objects
    (a tuple subclass is never untracked) they were most of what each collection walked.
    """

    ts_ns: int
    event_id: str
    service: object
    line: bytes

    @property
    def sort_key(self) -> tuple[int, str, bytes]:
        """The archive's order: (timestamp as integer ns, id, line)."""
        return (self.ts_ns, self.event_id, self.line)


class _Head(msgspec.Struct, gc=False):  # decoded JSON values hold no reference cycles
    timestamp: Any = None
    id: Any = ""
    service: Any = None


class _Occurrences:
    """A field type of which every decoded value is an instance, and that counts its checks.

    msgspec hands each occurrence of a key of such a type to the decoder's ``dec_hook`` and
    then checks that what the hook returned is an instance of the type. That check runs once
    per occurrence, in C's loop, so counting the checks counts a key sent twice. The hook (an
    empty dict's ``get``: the value back unchanged) and the check (``next`` of a counter: a
    positive integer, so true) are C callables: no Python frame per key of every event.

    The counters are shared by every thread; a decode counts the difference of two readings.
    Another thread's decode can only add to it (a surplus; each ``next`` is atomic under the
    GIL), which sends that page to the exact check of :func:`_refuse_repeated_keys`: a slower
    answer, never a wrong one.
    """

    def __init__(self) -> None:
        counter = itertools.count(1)
        # A staticmethod: Python binds a bare partial found on a type as a method from 3.14 on
        # (and warns on 3.13), which would hand next() the class as well.
        check = staticmethod(functools.partial(next, counter))
        checked = type("_Counted", (type,), {"__instancecheck__": check})
        self.field_type: Any = checked("_Placement", (), {})
        self._tick: Callable[[], int] = counter.__next__

    def reading(self) -> int:
        return self._tick()

    def since(self, reading: int) -> int:
        """Checks counted since ``reading`` was taken."""
        return self._tick() - reading - 1


_TIMESTAMPS = _Occurrences()
_SERVICES = _Occurrences()
_ABSENT: Any = object()  # a key the event does not send, told apart from a null


if TYPE_CHECKING:
    _Timestamp = Any
    _Service = Any
else:
    _Timestamp = _TIMESTAMPS.field_type
    _Service = _SERVICES.field_type


# The field types must not admit None (no "| None"): msgspec decodes a null into such a field
# without calling the hook, so a null would hide one occurrence of a repeated key.
class _PageHead(msgspec.Struct, gc=False):
    timestamp: _Timestamp = _ABSENT
    id: Any = ""
    service: _Service = _ABSENT


_RETURN_AS_IS: dict[Any, Any] = {}
_PAGE_HEADS = msgspec.json.Decoder(list[_PageHead], dec_hook=_RETURN_AS_IS.get)
_PAGE = msgspec.json.Decoder(list[msgspec.Raw] | None)
_HEAD = msgspec.json.Decoder(_Head)


def _head_fields(line: bytes) -> tuple[Any, Any, Any]:
    try:
        head = _HEAD.decode(line)
    except msgspec.DecodeError:
        event = json.loads(line, parse_int=_json_int)
        if not isinstance(event, dict):
            raise MalformedEventError("an event is not a JSON object") from None
        return event.get("timestamp"), event.get("id", ""), event.get("service")
    return head.timestamp, head.id, head.service


def _json_int(text: str) -> int:
    # What msgspec makes of an integer (it has no digit limit), also past Python's 4,300-digit
    # limit on int(str), so both parsers give an event the same id.
    limit = sys.get_int_max_str_digits()
    if not limit or len(text) <= limit:
        return int(text)
    return int(decimal.Decimal(text))


def _id_text(event_id: Any) -> str:
    """The id as the archive compares it: ``str(value)``, also for an integer too long for it."""
    if type(event_id) is str:
        return event_id
    try:
        return str(event_id)
    except ValueError:  # an integer past the digit limit, alone or inside a list or object
        if isinstance(event_id, int):
            return str(decimal.Decimal(event_id))  # exact: Decimal converts ints without it
        raise MalformedEventError(
            "an event's id is a list or object holding an integer of more than "
            f"{sys.get_int_max_str_digits():,} digits, which cannot be compared as text"
        ) from None


def timestamp_ns(value: Any, event_id: Any) -> int:
    """An event's ``timestamp`` in ns, or a MalformedEventError naming the event."""
    if not isinstance(value, str):
        raise MalformedEventError(f"event id={_shown(event_id)} has no string timestamp")
    try:
        return parse_timestamp_ns(value)
    except ValueError as exc:
        raise MalformedEventError(f"event id={_shown(event_id)}: {exc}") from None


def _shown(event_id: Any) -> str:
    try:
        return repr(event_id)
    except ValueError:  # it holds an integer past the digit limit
        return repr(_id_text(event_id)[:64])


def event_head(line: bytes) -> RawEvent:
    """Placement fields of one JSON object line (fetched or stored); ``line`` is kept as is.

    Raises :class:`MalformedEventError` when the timestamp is missing or unusable, and
    ``ValueError`` when ``line`` is not JSON.
    """
    timestamp, event_id, service = _head_fields(line)
    ts = timestamp_ns(timestamp, event_id)
    return RawEvent(ts, _id_text(event_id), service, line)


def parse_page(body: bytes) -> list[RawEvent]:
    """The events of one ``/events`` answer, each with its exact bytes.

    ``null`` is an empty page. Raises :class:`PageFormatError` for a body that is not a UTF-8
    JSON array of objects, :class:`MalformedEventError` for an event without a usable
    timestamp (it cannot be placed, and must not vanish), and :class:`RepeatedKeyError` for an
    event that sends ``timestamp`` or ``service`` twice (readers disagree on which counts).
    """
    elements: list[msgspec.Raw] | list[bytes] | None
    try:
        elements = _PAGE.decode(body)
    except msgspec.ValidationError as exc:
        raise PageFormatError(f"not a JSON array: {exc}", malformed=False) from None
    except msgspec.DecodeError:
        # msgspec refuses a few things JSON allows (a lone surrogate escape such as "\ud800");
        # the standard library decides, so such a page is archived rather than refused forever.
        elements = _split_with_stdlib(body)
    if elements is None:
        return []
    lines = [bytes(element) for element in elements]
    if not body.isascii():
        _refuse_invalid_utf8(body, lines)
    if b"\n" in body or b"\r" in body:
        lines = [_one_line(line) for line in lines]
    heads, counted = _heads(body, elements, lines)
    events: list[RawEvent] = []
    append = events.append
    absent = 0
    for line, head in zip(lines, heads, strict=True):
        timestamp, event_id, service = head.timestamp, head.id, head.service
        ts = timestamp_ns(timestamp, event_id)
        if type(event_id) is not str:
            event_id = _id_text(event_id)
        if service is _ABSENT:
            absent += 1
            service = None
        append(RawEvent(ts, event_id, service, line))
    # Every event has one timestamp by now, so a surplus is an event that sent it twice;
    # a service sent twice shows as more services than events that send one.
    if counted is None or counted[0] > len(events) or counted[1] > len(events) - absent:
        _refuse_repeated_keys(body)
    return events


def _refuse_invalid_utf8(body: bytes, lines: list[bytes]) -> None:
    """PageFormatError unless the page is UTF-8: msgspec does not check the bytes it skips.

    Only the elements' bytes can hide invalid UTF-8 (msgspec read everything between them),
    and usually a minority of them is not ASCII: decoding those alone costs a fraction of
    decoding the body. The body is decoded only to say where the first bad byte is.
    """
    for line in lines:
        if not line.isascii():
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                break
    else:
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PageFormatError(f"not UTF-8 at byte {exc.start}", malformed=True) from None


def _heads(
    body: bytes, elements: list[msgspec.Raw] | list[bytes], lines: list[bytes]
) -> tuple[list[_PageHead], tuple[int, int] | None]:
    """Each element's placement fields, and how often the page sent ``timestamp`` and
    ``service`` (None: not counted); the whole page's in one call if it can.

    Decoding every head of the page at once, in msgspec's C loop, costs a third of decoding
    them element by element. Where it cannot (an element that is not an object, or that only
    the standard library decodes), the elements are looked at one by one, which also says why,
    and the keys are not counted: the page is searched for a repeated key the slow way.
    """
    if type(elements[0] if elements else None) is msgspec.Raw:
        timestamps, services = _TIMESTAMPS.reading(), _SERVICES.reading()
        try:
            heads = _PAGE_HEADS.decode(body)
        except msgspec.DecodeError:
            pass
        else:
            if len(heads) == len(lines):
                return heads, (_TIMESTAMPS.since(timestamps), _SERVICES.since(services))
    heads = []
    for line in lines:
        if line[:1] != b"{":
            raise PageFormatError("an element of the array is not a JSON object", malformed=False)
        timestamp, event_id, service = _head_fields(line)
        # In element order, as the whole-page path would fail: the first bad element decides.
        timestamp_ns(timestamp, event_id)
        heads.append(_PageHead(timestamp, event_id, service))
    return heads, None


_PLACEMENT_KEYS = ("timestamp", "service")


class _DuplicatedKeys(dict[str, Any]):
    duplicated: tuple[str, ...] = ()


def _flag_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    names = [name for name, _ in pairs]
    twice = tuple(k for k in _PLACEMENT_KEYS if names.count(k) > 1)
    if not twice:
        return obj
    flagged = _DuplicatedKeys(obj)
    flagged.duplicated = twice
    return flagged


def _refuse_repeated_keys(body: bytes) -> None:
    """RepeatedKeyError naming the first event of the page that repeats a placement key.

    The standard library parses the whole page again: this runs only when msgspec's count says
    a key came twice, or when msgspec could not count (a page it cannot decode whole).
    """
    # Values are not looked at (only keys, and the id's text): parse_int=str also keeps an
    # integer past Python's 4,300-digit limit, which msgspec skipped over, from failing the page.
    for event in json.loads(body, object_pairs_hook=_flag_duplicates, parse_int=str) or ():
        if isinstance(event, _DuplicatedKeys):
            raise RepeatedKeyError(event.get("id"), event.duplicated)


def _one_line(line: bytes) -> bytes:
    if b"\n" in line or b"\r" in line:
        return line.replace(b"\r", b" ").replace(b"\n", b" ")
    return line


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _split_with_stdlib(body: bytes) -> list[bytes] | None:
    """The array's elements as bytes, found by the standard library's parser (slow, exact)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PageFormatError(f"not UTF-8 at byte {exc.start}", malformed=True) from None
    # Only the elements' extent is wanted: parse_int=str keeps a number past Python's 4,300-digit
    # limit from reading as a malformed (so retried) body.
    decoder = json.JSONDecoder(parse_constant=_refuse_constant, parse_int=str)
    skip = _WHITESPACE.match
    elements: list[bytes] = []
    try:
        at = _end(skip(text, 0))
        if text.startswith("null", at) and _end(skip(text, at + 4)) == len(text):
            return None
        if not text.startswith("[", at):
            _, end = decoder.raw_decode(text, at)  # valid JSON of another shape, or malformed
            shape = "valid JSON" if _end(skip(text, end)) == len(text) else "not valid JSON"
            raise PageFormatError(f"not a JSON array ({shape})", malformed=shape != "valid JSON")
        at = _end(skip(text, at + 1))
        if text.startswith("]", at):
            at += 1
        else:
            while True:
                _, end = decoder.raw_decode(text, at)
                elements.append(text[at:end].encode("utf-8"))
                at = _end(skip(text, end))
                if text.startswith(",", at):
                    at = _end(skip(text, at + 1))
                    continue
                if text.startswith("]", at):
                    at += 1
                    break
                raise ValueError("expected ',' or ']'")
    except ValueError as exc:
        raise PageFormatError(f"not valid JSON: {exc}", malformed=True) from None
    if _end(skip(text, at)) != len(text):
        raise PageFormatError("not valid JSON: text after the array", malformed=True)
    return elements


def _end(match: re.Match[str] | None) -> int:
    assert match is not None  # the pattern matches the empty string
    return match.end()


def raw_event_of(event: dict[str, Any]) -> RawEvent:
    """A :class:`RawEvent` of a parsed event, serialised compactly (simulators, tests, tools)."""
    return event_head(serialise_event(event))


def serialise_event(event: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of a parsed event, keys in order: what a compact JSON server (the
    simulator) sends for it. The archive never re-encodes what DI sent; this serves the tools
    and tests that start from parsed events."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
