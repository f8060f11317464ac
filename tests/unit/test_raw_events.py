"""Page parsing keeps each event's bytes exactly as DI sent them (design invariant 5)."""

from __future__ import annotations

import inspect
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from di_archiver import raw_events
from di_archiver.raw_events import (
    MalformedEventError,
    PageFormatError,
    RepeatedKeyError,
    event_head,
    parse_page,
)
from di_archiver.timestamps import parse_timestamp_ns

TS = "2026-05-04T09:01:02.5Z"
TS_NS = parse_timestamp_ns(TS)
HEAD = b'"timestamp":"' + TS.encode() + b'","service":"sso"'

# Spellings a parse + re-encode changes (each was rewritten by the old json.loads/orjson path).
ODD = [
    b'{"id":"a","timestamp":"' + TS.encode() + b'","service":"sso","n":1E2}',
    b'{"id":"b","timestamp":"' + TS.encode() + b'","service":"sso","n":1.10}',
    b'{"id":"c","timestamp":"' + TS.encode() + b'","service":"sso","n":-0}',
    b'{"id":"d","timestamp":"'
    + TS.encode()
    + b'","service":"sso","name":"Ren\\u00e9e \\/ \\ud83d\\ude00"}',
    b'{"id":"e","timestamp":"' + TS.encode() + b'","service":"sso","k":1,"k":2}',
    b'{"id":"f","timestamp":"' + TS.encode() + b'","service":"sso","n":1e400}',
    b'{"id":"g","timestamp":"'
    + TS.encode()
    + b'","service":"sso","n":123456789012345678901234567890}',
    b'{ "id" : "h" , "timestamp" : "' + TS.encode() + b'" , "service":"sso" }',
    '{"id":"i","timestamp":"{ts}","service":"sso","name":"Zoë 東京"}'.replace("{ts}", TS).encode(),
]


def test_every_odd_spelling_is_kept_byte_for_byte() -> None:
    # Given a page holding events whose spellings a re-encoder would change
    body = b"[" + b",".join(ODD) + b"]"
    # When parsed
    events = parse_page(body)
    # Then each event's line is exactly the bytes of its array element
    assert [e.line for e in events] == ODD
    assert [e.event_id for e in events] == list("abcdefghi")
    assert {e.ts_ns for e in events} == {TS_NS}
    assert {e.service for e in events} == {"sso"}


def test_a_pretty_printed_page_gives_one_valid_json_line_per_event() -> None:
    # Given a body with line breaks (LF and CRLF) inside and between its elements
    body = (
        b'[\r\n  {\r\n    "id": "a",\n    "timestamp": "' + TS.encode() + b'",\n'
        b'    "note": "two\\nlines", "n": 1E2\n  },\n  {"id":"b","timestamp":"'
        + TS.encode()
        + b'"}\n]\n'
    )
    # When parsed
    events = parse_page(body)
    # Then every line is one line, decodes to the same object, and keeps its spellings
    assert len(events) == 2
    for event in events:
        assert b"\n" not in event.line
        assert b"\r" not in event.line
    assert json.loads(events[0].line) == json.loads(body)[0]
    assert b'"n": 1E2' in events[0].line
    assert b'"two\\nlines"' in events[0].line
    assert events[1].line == b'{"id":"b","timestamp":"' + TS.encode() + b'"}'


def test_a_repeated_id_resolves_like_json_loads() -> None:
    # Given an event whose id appears twice (not a placement key)
    line = b'{"id":"first","timestamp":"' + TS.encode() + b'","id":"last"}'
    # When parsed as a page and as a stored line
    (fetched,) = parse_page(b"[" + line + b"]")
    stored = event_head(line)
    # Then both read the last value (the standard library's rule), and keep the bytes
    assert (fetched.ts_ns, fetched.event_id) == (TS_NS, "last") == (stored.ts_ns, stored.event_id)
    assert fetched.line == line == stored.line


def test_a_repeated_timestamp_is_refused_in_a_page_and_read_as_json_loads_when_stored() -> None:
    # Given an event whose timestamp appears twice
    line = b'{"id":"a","timestamp":"2020-01-01T00:00:00Z","timestamp":"' + TS.encode() + b'"}'
    # When parsed as a page / Then it is refused, naming the event and the key
    with pytest.raises(RepeatedKeyError, match=r"id='a'.*timestamp"):
        parse_page(b"[" + line + b"]")
    # And a stored line (checked when it was fetched) still reads the last value
    assert event_head(line).ts_ns == TS_NS


def _event(pairs: list[tuple[str, Any]]) -> bytes:
    return (
        b"{"
        + b",".join(json.dumps(k).encode() + b":" + json.dumps(v).encode() for k, v in pairs)
        + b"}"
    )


def _repeats_a_placement_key(pairs: list[tuple[str, Any]]) -> bool:
    names = [name for name, _ in pairs]
    return names.count("timestamp") > 1 or names.count("service") > 1


_EXTRA_KEYS = st.sampled_from(["id", "service", "timestamp", "other", "nested", "x"])
_EXTRA_VALUES = st.one_of(
    st.none(),
    st.sampled_from(["sso", "timestamp", "service", TS, "C:\\unins000.exe"]),
    st.just({"timestamp": TS, "service": "x"}),
)


@given(
    st.lists(
        st.lists(st.tuples(_EXTRA_KEYS, _EXTRA_VALUES), max_size=4).map(
            lambda extra: [("timestamp", TS), *extra]
        ),
        min_size=1,
        max_size=8,
    )
)
@settings(max_examples=300, deadline=None)
def test_a_page_is_refused_exactly_when_an_event_repeats_a_placement_key(
    events: list[list[tuple[str, Any]]],
) -> None:
    # Given events with one good timestamp first, then any keys: some absent, null, nested or
    # repeated services, repeated timestamps, placement names as values
    events = [[(k, TS if k == "timestamp" else v) for k, v in pairs] for pairs in events]
    body = b"[" + b",".join(_event(pairs) for pairs in events) + b"]"
    repeated = [pairs for pairs in events if _repeats_a_placement_key(pairs)]
    # When parsed
    if repeated:
        # Then a page holding such an event is refused, naming the first one
        with pytest.raises(RepeatedKeyError) as caught:
            parse_page(body)
        first_id = dict(repeated[0]).get("id")
        assert caught.value.event_id == first_id
    else:
        # Then every other page is archived whole
        assert len(parse_page(body)) == len(events)


def test_a_service_repeated_on_a_page_where_another_event_sends_none_is_refused() -> None:
    # Given one event without a service and one with two: as many services as events
    body = (
        b'[{"id":"a","timestamp":"' + TS.encode() + b'"},'
        b'{"id":"b","timestamp":"' + TS.encode() + b'","service":"sso","service":"x"}]'
    )
    # When parsed / Then the second event is refused
    with pytest.raises(RepeatedKeyError, match=r"id='b'.*service"):
        parse_page(body)


def test_escaped_keys_are_counted_as_the_keys_they_spell() -> None:
    # Given a timestamp and a service each sent a second time with an escaped letter
    for second in (b'"\\u0074imestamp":"' + TS.encode() + b'"', b'"\\u0073ervice":"x"'):
        body = b'[{"id":"a","timestamp":"' + TS.encode() + b'","service":"sso",' + second + b"}]"
        # When parsed / Then refused
        with pytest.raises(RepeatedKeyError):
            parse_page(body)


def test_a_page_without_repeated_keys_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a page naming the placement keys in values, nested objects and escaped backslashes
    body = (
        b'[{"id":"a","timestamp":"' + TS.encode() + b'","service":"systems",'
        b'"path":"C:\\\\unins000.exe","kind":"timestamp","sub":{"timestamp":"x","service":1}},'
        b'{"id":"b","timestamp":"' + TS.encode() + b'","service":null,"note":"\\u0074"}]'
    )
    monkeypatch.setattr(raw_events.json, "loads", _no_second_parse)
    # When parsed / Then no second parse, and both events are there
    events = parse_page(body)
    assert [(e.event_id, e.service) for e in events] == [("a", "systems"), ("b", None)]


def _no_second_parse(*_args: object, **_kwargs: object) -> object:
    raise AssertionError("the page was parsed a second time")


def test_a_count_another_decode_added_to_only_costs_a_second_parse(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the key counters read as if another thread's pages were decoded meanwhile
    clean = b'[{"id":"a","timestamp":"' + TS.encode() + b'","service":"sso"}]'
    repeated = b'[{"id":"a","timestamp":"' + TS.encode() + b'","service":"sso","service":"x"}]'
    since = raw_events._Occurrences.since
    monkeypatch.setattr(raw_events._Occurrences, "since", lambda self, r: since(self, r) + 5)
    # When parsed / Then the clean page is archived (the exact check clears it) and the
    # repeated key is still refused
    assert [e.event_id for e in parse_page(clean)] == ["a"]
    with pytest.raises(RepeatedKeyError):
        parse_page(repeated)


def test_the_counting_check_takes_the_value_alone_however_python_binds_it() -> None:
    # Given the check as Python 3.14 fetches it (bound through the descriptor protocol, as a
    # bare functools.partial is bound there, and warned about on 3.13)
    occurrences = raw_events._Occurrences()
    meta = type(occurrences.field_type)
    check = inspect.getattr_static(meta, "__instancecheck__")
    bound = check.__get__(occurrences.field_type, meta)
    reading = occurrences.reading()
    # When asked about one value / Then it says yes, and counts one
    assert bound("2026-05-04T09:01:02.5Z")
    assert occurrences.since(reading) == 1


def test_pages_parsed_on_many_threads_at_once_each_count_their_own_keys() -> None:
    # Given pages with and without a repeated key, parsed by four threads at once
    from concurrent.futures import ThreadPoolExecutor

    events = [
        b'{"id":"%d","timestamp":"%s","service":"sso"}' % (n, TS.encode()) for n in range(500)
    ]
    clean = b"[" + b",".join(events) + b"]"
    repeated = b"[" + b",".join([*events, events[0][:-1] + b',"service":null}']) + b"]"

    def outcome(body: bytes) -> str:
        try:
            return f"{len(parse_page(body))} events"
        except RepeatedKeyError:
            return "refused"

    # When each is parsed many times concurrently
    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(outcome, [clean, repeated] * 100))
    # Then no count leaks into another page's verdict
    assert set(outcomes[0::2]) == {"500 events"}
    assert set(outcomes[1::2]) == {"refused"}


@pytest.mark.parametrize(
    ("id_json", "expected"),
    [
        (b'"\\ud800"', "\ud800"),  # a lone surrogate escape: msgspec refuses, stdlib reads it
        (b"1e400", "inf"),
        (b"12", "12"),
        (b"null", "None"),
    ],
)
def test_ids_msgspec_cannot_decode_fall_back_to_the_standard_library(
    id_json: bytes, expected: str
) -> None:
    # Given an event whose id is an unusual JSON value
    line = b'{"id":' + id_json + b',"timestamp":"' + TS.encode() + b'"}'
    # When parsed / Then its id text is str() of what json.loads reads, as before
    (event,) = parse_page(b"[" + line + b"]")
    assert event.event_id == expected == str(json.loads(line)["id"])
    assert event.line == line


@pytest.mark.parametrize(
    ("body", "malformed"),
    [
        (b'[{"id":"a","timestamp":"' + TS.encode() + b'"}', True),  # cut short
        (b'[{"a": NaN}]', True),
        (b'[{"a": "\xff"}]', True),  # not UTF-8
        (b'[{"a": "\xc3\xa9"}, {"b": "\xc3"}, {"c": 1}]', True),  # a later element not UTF-8
        (b'{"not": "an array"}', False),
        (b'[{"id":"a","timestamp":"' + TS.encode() + b'"}, 7]', False),
        (b'["text"]', False),
    ],
)
def test_bodies_that_are_not_arrays_of_objects_are_refused(body: bytes, malformed: bool) -> None:
    # When parsed / Then the body is refused, saying whether asking again could help
    with pytest.raises(PageFormatError) as caught:
        parse_page(body)
    assert caught.value.malformed is malformed


def test_null_and_empty_bodies_are_empty_pages() -> None:
    assert parse_page(b"null") == []
    assert parse_page(b" [ ] ") == []


@pytest.mark.parametrize(
    "line",
    [
        b'{"id":"x"}',
        b'{"id":"x","timestamp":null}',
        b'{"id":"x","timestamp":1700000000}',
        b'{"id":"x","timestamp":"yesterday"}',
    ],
)
def test_an_event_without_a_usable_timestamp_is_named(line: bytes) -> None:
    with pytest.raises(MalformedEventError, match="id='x'"):
        parse_page(b"[" + line + b"]")


_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    extra=st.dictionaries(st.text(max_size=6), _values, max_size=5),
    event_id=st.text(max_size=10) | st.integers(),
    nanos=st.integers(min_value=0, max_value=10**18),
    digits=st.integers(min_value=0, max_value=9),
    indent=st.sampled_from([None, 1, 2]),
    ascii_only=st.booleans(),
)
def test_any_event_keeps_its_bytes_and_places_like_json_loads(
    extra: dict[str, Any],
    event_id: str | int,
    nanos: int,
    digits: int,
    indent: int | None,
    ascii_only: bool,
) -> None:
    # Given any JSON object with a valid timestamp, serialised compactly or pretty-printed
    from di_archiver.timestamps import format_timestamp_ns

    seconds, fraction = divmod(nanos, 10**9)
    text = format_timestamp_ns(seconds * 10**9).removesuffix("Z")
    if digits:
        text += "." + f"{fraction:09d}"[:digits]
    event = {**extra, "timestamp": text + "Z", "id": event_id}
    element = json.dumps(event, ensure_ascii=ascii_only, indent=indent).encode()
    # When a page of it is parsed
    (parsed,) = parse_page(b"[" + element + b"]")
    # Then the line is the element (line breaks as spaces), one line, equal as JSON
    assert parsed.line == element.replace(b"\n", b" ")
    assert json.loads(parsed.line) == json.loads(element)
    # And placement agrees with the standard library's reading of the same bytes
    reference = json.loads(element)
    assert parsed.ts_ns == parse_timestamp_ns(reference["timestamp"])
    assert parsed.event_id == str(reference["id"])
    assert event_head(parsed.line) == parsed


LONE = b'{"id":"\\ud800",' + HEAD + b"}"


@pytest.mark.parametrize(
    ("body", "malformed"),
    [
        (b"[" + LONE + b"] x", True),
        (b"[" + LONE + b",]", True),
        (b"[" + LONE, True),
        (b'{"id":"\\ud800"}', False),
        (b"[" + LONE + b", 7]", False),
    ],
)
def test_the_standard_library_fallback_refuses_what_msgspec_refuses(
    body: bytes, malformed: bool
) -> None:
    # Given bodies only the fallback path can read (a lone surrogate escape), yet broken
    # When parsed / Then they are refused the same way, malformed or of the wrong shape
    with pytest.raises(PageFormatError) as caught:
        parse_page(body)
    assert caught.value.malformed is malformed


def test_the_standard_library_fallback_keeps_every_element_byte_for_byte() -> None:
    # Given a page msgspec refuses (a lone surrogate) holding odd spellings as well
    elements = [LONE, *ODD]
    body = b" [ " + b" ,\n ".join(elements) + b" ] "
    # When parsed / Then every element is archived as sent, in order
    assert [e.line for e in parse_page(body)] == elements
    assert parse_page(b" null ") == []
    assert parse_page(b"[" + LONE + b"]")[0].event_id == "\ud800"


_ELEMENTS = [
    *ODD,
    LONE,
    b'{"id":1e400,' + HEAD + b"}",
    b'{"id":"\\ud800x","timestamp":"' + TS.encode() + b'"}',
    b'{"id":"z","timestamp":"' + TS.encode() + b'","service":{"nested":[1,2]}}',
]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(_ELEMENTS), min_size=1, max_size=12))
def test_a_page_places_each_event_as_its_line_alone_does(elements: list[bytes]) -> None:
    # Given a page mixing plain events with ones only the standard library decodes
    body = b"[" + b",".join(elements) + b"]"
    # When parsed (whole-page head decoding, or element by element when msgspec refuses)
    events = parse_page(body)
    # Then each event is exactly what its line alone gives
    assert events == [event_head(line) for line in elements]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'[{"id":"b"}, 7]', MalformedEventError),
        (b'[{"id":"x","timestamp":"yesterday"}, "\\ud800"]', MalformedEventError),
        (b'[7, {"id":"b"}]', PageFormatError),
        (b'[{"id":"\\ud800","timestamp":"' + TS.encode() + b'"}, 7, {"id":"b"}]', PageFormatError),
    ],
)
def test_the_first_bad_element_decides_the_error(body: bytes, error: type[Exception]) -> None:
    # Given a page with two broken elements / When parsed / Then the first one's error is raised
    with pytest.raises(error):
        parse_page(body)


# msgspec cannot decode these heads (a lone surrogate, a number beyond a double): a page holding
# one is read element by element, where no count is kept and the standard library must look.
_SLOW_PATH_EVENTS = [
    pytest.param(b'{"id":"s","timestamp":"' + TS.encode() + b'","note":"\\ud800"}', id="surrogate"),
    pytest.param(b'{"id":1e400,"timestamp":"' + TS.encode() + b'"}', id="huge-id"),
]


@pytest.mark.parametrize("slow", _SLOW_PATH_EVENTS)
@pytest.mark.parametrize(
    ("repeated", "key"),
    [
        (b'"service":"sso","service":"x"', "service"),
        (b'"timestamp":"2020-01-01T00:00:00Z"', "timestamp"),
    ],
)
def test_a_repeated_key_is_refused_on_a_page_msgspec_cannot_decode_whole(
    slow: bytes, repeated: bytes, key: str
) -> None:
    # Given a page msgspec cannot decode whole, and an event that repeats a placement key
    body = b"[" + slow + b',{"id":"r","timestamp":"' + TS.encode() + b'",' + repeated + b"}]"
    # When parsed / Then the event is refused, though no count was kept for the page
    with pytest.raises(RepeatedKeyError, match=rf"id='r'.*{key}"):
        parse_page(body)


def test_a_service_sent_as_null_does_not_hide_a_service_sent_twice() -> None:
    # Given one event whose service is null, and one that sends its service twice: a null
    # that skipped the count (as it would if the field type admitted None) evens the count out
    body = (
        b'[{"id":"a","timestamp":"' + TS.encode() + b'","service":null},'
        b'{"id":"b","timestamp":"' + TS.encode() + b'","service":"sso","service":"x"}]'
    )
    # When parsed / Then the second event is refused
    with pytest.raises(RepeatedKeyError, match=r"id='b'.*service"):
        parse_page(body)


def test_a_page_read_element_by_element_with_a_long_integer_is_archived() -> None:
    # Given a page msgspec cannot decode whole (an id beyond a double), and in another event
    # an integer longer than Python's int-from-string limit, no key repeated
    body = (
        b'[{"id":1e400,"timestamp":"' + TS.encode() + b'"},'
        b'{"id":"b","timestamp":"' + TS.encode() + b'","n":' + b"9" * 4301 + b"}]"
    )
    # When parsed / Then both events are archived as sent
    assert [e.event_id for e in parse_page(body)] == ["inf", "b"]


def test_a_page_split_by_the_standard_library_with_a_long_integer_is_archived() -> None:
    # Given a page only the standard library decodes (a lone surrogate), and in another event
    # an integer longer than Python's int-from-string limit
    body = (
        b'[{"id":"a","timestamp":"' + TS.encode() + b'","name":"\\ud800"},'
        b'{"id":"b","timestamp":"' + TS.encode() + b'","n":' + b"9" * 4301 + b"}]"
    )
    # When parsed / Then both events are archived as sent, not refused as a malformed body
    assert [e.event_id for e in parse_page(body)] == ["a", "b"]
    assert parse_page(body)[1].line.endswith(b"9" * 4301 + b"}")


_LONG = b"7" * 4_400  # past Python's 4,300-digit limit on int <-> str, which msgspec does not have


@pytest.mark.parametrize(
    ("id_json", "expected"),
    [(_LONG, _LONG.decode()), (b"-" + _LONG, "-" + _LONG.decode())],
)
def test_an_integer_id_past_the_digit_limit_is_its_digits_on_both_paths(
    id_json: bytes, expected: str
) -> None:
    # Given an event whose id is an integer longer than Python converts to text by default
    line = b'{"id":' + id_json + b',"timestamp":"' + TS.encode() + b'","service":"sso"}'
    # When its page is parsed, and its line read back as a stored line is
    (event,) = parse_page(b"[" + line + b"]")
    # Then the id is its digits both times, and the event is archived as sent
    assert event.event_id == expected
    assert event_head(line) == event
    assert event.line == line


def test_a_long_integer_beside_what_only_the_standard_library_reads_keeps_the_page() -> None:
    # Given an event msgspec refuses (a lone surrogate) that also holds a very long integer
    line = b'{"id":"a","timestamp":"' + TS.encode() + b'","n":' + _LONG + b',"s":"\\ud800"}'
    # When parsed / Then the standard library's pass reads it, and the event is archived
    (event,) = parse_page(b"[" + line + b"]")
    assert (event.event_id, event.line) == ("a", line)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (b'{"id":"a","timestamp":' + _LONG + b"}", "event id='a' has no string timestamp"),
        (b'{"id":' + _LONG + b',"timestamp":"x"}', "event id='7777777"),
        (b'{"id":[' + _LONG + b'],"timestamp":"' + TS.encode() + b'"}', "cannot be compared"),
    ],
)
def test_a_long_integer_where_it_cannot_be_used_is_named_not_a_crash(
    event: bytes, message: str
) -> None:
    # When a page holding it is parsed / Then the event is refused with a readable reason
    with pytest.raises(MalformedEventError, match=re.escape(message)):
        parse_page(b"[" + event + b"]")
