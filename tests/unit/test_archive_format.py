import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from di_archiver.archive_format import (
    META_COUNT,
    META_FIRST_TS,
    META_LAST_TS,
    META_SHA256,
    decode_lines,
    encode_events,
)
from di_archiver.raw_events import MalformedEventError

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "di-sample-events.jsonl"


def _samples() -> list[dict[str, object]]:
    return [json.loads(line) for line in SAMPLES.read_text().splitlines() if line.strip()]


def test_encoding_is_faithful_sorted_and_hashed_over_uncompressed_content() -> None:
    # Given the sample events in file order
    events = _samples()
    # When encoded
    encoded = encode_events(reversed(events))
    # Then every event comes back as the same JSON value, in (timestamp, id) order
    lines = decode_lines(encoded.body)
    decoded = [json.loads(line) for line in lines]
    assert sorted(map(json.dumps, decoded)) == sorted(map(json.dumps, events))
    assert encoded.count == len(events)
    raw = gzip.decompress(encoded.body)
    assert encoded.sha256 == hashlib.sha256(raw).hexdigest()
    from di_archiver.timestamps import parse_timestamp_ns

    stamps = [parse_timestamp_ns(str(e["timestamp"])) for e in decoded]
    assert stamps == sorted(stamps)


def test_same_content_gives_identical_bytes_whatever_the_input_order() -> None:
    events = _samples()
    assert encode_events(events).body == encode_events(list(reversed(events))).body


def test_exact_duplicates_collapse_but_differing_events_with_same_id_are_both_kept() -> None:
    # Given one event twice, and a variant with the same id and timestamp but other content
    event = _samples()[0]
    variant = {**event, "success": not event["success"]}
    # When encoded together
    encoded = encode_events([event, event, variant])
    # Then the duplicate is dropped, the variant kept and counted as a collision
    assert encoded.count == 2
    assert encoded.collisions == 1


def test_unicode_and_floats_survive_unchanged() -> None:
    event = {"id": "a", "timestamp": "2026-05-04T09:15:02Z", "name": "Zoë 東京", "lat": 39.7392}
    (line,) = decode_lines(encode_events([event]).body)
    assert "Zoë 東京".encode() in line
    assert json.loads(line) == event


def test_metadata_describes_the_object() -> None:
    encoded = encode_events(_samples())
    meta = encoded.metadata(fetched_at_ns=0)
    assert meta[META_COUNT] == str(encoded.count)
    assert meta[META_SHA256] == encoded.sha256
    assert meta[META_FIRST_TS] <= meta[META_LAST_TS]


@pytest.mark.parametrize("timestamp", [None, "", "yesterday", 1714814102])
def test_event_without_usable_timestamp_is_refused_not_dropped(timestamp: object) -> None:
    with pytest.raises(MalformedEventError):
        encode_events([{"id": "x", "timestamp": timestamp}])


def test_empty_object_round_trips() -> None:
    encoded = encode_events([])
    assert decode_lines(encoded.body) == []
    assert encoded.count == 0


def test_integers_beyond_64_bits_are_written_exactly() -> None:
    # Given an event with an integer no 64-bit type holds (the fast encoder refuses it)
    event = {"id": "big", "timestamp": "2026-05-04T09:15:02Z", "counter": 2**70}
    # Then the line still carries the exact value
    (line,) = decode_lines(encode_events([event]).body)
    assert json.loads(line)["counter"] == 2**70


def test_lines_are_compact_utf8_in_the_apis_key_order() -> None:
    event = {"z": 1, "id": "a", "timestamp": "2026-05-04T09:15:02Z", "name": "Zoë", "a": [1.5]}
    (line,) = decode_lines(encode_events([event]).body)
    assert (
        line
        == '{"z":1,"id":"a","timestamp":"2026-05-04T09:15:02Z","name":"Zoë","a":[1.5]}'.encode()
    )


def test_held_lines_cost_about_their_size_in_memory() -> None:
    # Given a fresh interpreter that keeps 50,000 serialised ~900-byte events (a busy bucket)
    script = (
        "import resource\n"
        "from di_archiver.raw_events import serialise_event\n"
        "event = {'id': 'x' * 24, 'timestamp': '2026-05-04T09:15:02Z', 'payload': 'a' * 850}\n"
        "def rss(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "before = rss()\n"
        "lines = [serialise_event(event) for _ in range(50_000)]\n"
        "print(rss() - before, sum(map(len, lines)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    grown, raw = map(int, out.split())
    # Then memory grows by about the lines' own size, not by an encoder buffer per line
    assert grown < 3 * raw, (grown, raw)
