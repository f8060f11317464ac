"""From DI's response body to the archive object: every line is the bytes DI sent for it.

The real DI client (over an in-memory transport) feeds the real engine; only the store is a fake.
"""

from __future__ import annotations

import gzip
import hashlib
import json

import httpx

from di_archiver.adapters.di_auth import ApiKeyCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.archive_format import META_COUNT, META_SHA256
from di_archiver.domain.engine import ArchiveEngine
from di_archiver.layout import bucket_object_key
from tests.unit.engine.fakes import ORG, MemoryCheckpoints, MemoryStore
from tests.unit.engine.helpers import CONFIG, HOUR, Clock, at


def _event(ts: str, event_id: str, tail: bytes, service: bytes = b"sso") -> bytes:
    return (
        b'{"id":"'
        + event_id.encode()
        + b'","timestamp":"'
        + ts.encode()
        + b'","service":"'
        + service
        + b'"'
        + tail
        + b"}"
    )


ODD_TAILS = [
    b',"n":1E2',
    b',"n":1.10',
    b',"n":-0',
    b',"name":"Ren\\u00e9e \\/ \\ud83d\\ude00"',
    b',"k":1,"k":2',
    b',"n":1e400',
    b',"n":123456789012345678901234567890',
    b',"name":"\\ud800"',  # a lone surrogate escape: valid JSON that msgspec refuses
]


def _serve(body: bytes) -> DIClient:
    def handler(request: httpx.Request) -> httpx.Response:
        headers = {"X-Result-Count": str(body.count(b'"id"')), "X-Limit": "10000"}
        headers["X-Search_after"] = '[1, "z"]'
        return httpx.Response(200, content=body, headers=headers)

    return DIClient(
        base_url="https://di.test",
        credentials=ApiKeyCredentials(api_key="k"),
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        retry=RetryPolicy(max_attempts=1),
    )


def test_archived_lines_are_the_bytes_di_sent_sorted_and_deduplicated() -> None:
    # Given a DI page whose events use spellings a re-encoder would change, out of order, one
    # of them sent twice identically and one pretty-printed across lines
    odd = [
        _event(f"2026-05-04T06:{10 + i:02d}:00.5Z", f"odd-{i}", tail)
        for i, tail in enumerate(ODD_TAILS)
    ]
    pretty = b'{\n  "id": "pretty",\n  "timestamp": "2026-05-04T06:05:00Z",\n  "service": "sso"\n}'
    body = b"[" + b",".join([*reversed(odd), odd[0], pretty]) + b"]"
    # Its body holds the same (id, timestamp) twice: that one page is exactly what DI sent
    assert body.count(b'"odd-0"') == 2
    store = MemoryStore()
    engine = ArchiveEngine(
        source=_serve(body),
        store=store,
        checkpoints=MemoryCheckpoints(),
        config=CONFIG,
        clock=Clock(),
    )
    # When the engine archives the 06:00 bucket
    start = at("2026-05-04T06:00")
    engine.snapshot_bucket(ORG, start, start + HOUR)
    # Then the object holds each odd event's bytes exactly, once, sorted by timestamp
    key = bucket_object_key("di", ORG, "sso", start, start + HOUR)
    raw = gzip.decompress(store.objects[key][0])
    lines = raw.split(b"\n")[:-1]
    assert lines[0] == pretty.replace(b"\n", b" ")
    assert json.loads(lines[0]) == json.loads(pretty)
    assert lines[1:] == odd
    # And the metadata describes exactly the stored lines
    metadata = store.objects[key][1]
    assert metadata[META_SHA256] == hashlib.sha256(raw).hexdigest()
    assert metadata[META_COUNT] == str(len(odd) + 1)
