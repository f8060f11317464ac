"""Finding 4: events DI should not have sent stop the run loudly; nothing is dropped silently.

What counts as an error and what as a kept event (documented in the README, "Hostile input"):

* an event within a millisecond of its window's edges: DI filters at whole milliseconds with an
  end of unknown inclusivity, so it is expected; it belongs to the adjacent bucket, skipped here;
* an event further outside the window it was asked for (2099, before 1970, another day): an
  error; the org's run fails, its checkpoint stays before the bucket, the alarm fires;
* an event repeating ``timestamp`` or ``service``: an error (its place would be a guess);
* an event without a parseable timestamp: an error (as before).
"""

from __future__ import annotations

import json
from dataclasses import replace

import httpx
import pytest

from di_archiver.domain.engine import ArchiveEngine, EngineRunError
from di_archiver.timestamps import parse_timestamp_ns
from tests.unit.client.fakes import make_client
from tests.unit.engine.fakes import MemoryCheckpoints, MemoryStore
from tests.unit.engine.helpers import CONFIG, Clock

ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"
NOW = parse_timestamp_ns("2026-05-04T12:10:00Z")


def ev(ts: str, event_id: str) -> bytes:
    return json.dumps({"id": event_id, "service": "directory", "timestamp": ts}).encode()


class OneWindowDI:
    """Answers the window containing ``at`` with ``raw`` events (JSON texts); others empty."""

    def __init__(self, at: str, *raw: bytes) -> None:
        self.at = parse_timestamp_ns(at)
        self.raw = raw
        self.requests = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        body = json.loads(request.content)
        start = parse_timestamp_ns(body["start_time"])
        end = parse_timestamp_ns(body["end_time"])
        items = list(self.raw) if start <= self.at < end and "search_after" not in body else []
        headers = {
            "X-Result-Count": str(len(items)),
            "X-Limit": str(body.get("limit", 0)),
            "X-Search_after": '[1, "x"]',
        }
        return httpx.Response(200, content=b"[" + b",".join(items) + b"]", headers=headers)


def run(di: OneWindowDI) -> tuple[MemoryStore, MemoryCheckpoints, EngineRunError | None]:
    store, checkpoints = MemoryStore(), MemoryCheckpoints()
    config = replace(CONFIG, lookback_ns=CONFIG.bucket_ns * 6, pipeline=False)
    engine = ArchiveEngine(
        source=make_client(di),
        store=store,
        checkpoints=checkpoints,
        config=config,
        clock=Clock(NOW),
    )
    try:
        engine.run([ORG])
    except EngineRunError as exc:
        return store, checkpoints, exc
    return store, checkpoints, None


@pytest.mark.parametrize(
    "stray",
    [
        ev("2099-01-01T00:00:00Z", "f" * 24),
        ev("1969-12-31T23:59:59Z", "f" * 24),
        ev("1970-01-01T00:00:00Z", "f" * 24),
        ev("2026-05-04T07:30:00Z", "f" * 24),  # another bucket of the same run
    ],
)
def test_an_event_outside_the_requested_window_fails_the_run_and_keeps_the_checkpoint(
    stray: bytes,
) -> None:
    # Given DI answering the 09:00 window with one good event and one from elsewhere
    good = ev("2026-05-04T09:10:00Z", "a" * 24)
    di = OneWindowDI("2026-05-04T09:10:00Z", good, stray)
    # When archived
    _store, checkpoints, error = run(di)
    # Then the run fails, naming the event and the window
    assert error is not None
    assert "outside the window" in str(error)
    assert "f" * 24 in str(error)
    # And the checkpoint stayed at or before the bucket (the next run tries it again)
    saved = checkpoints.load(ORG)
    assert saved is not None
    assert saved["closed_through"] <= "2026-05-04T09:00:00Z"


def test_events_at_the_millisecond_edges_are_left_to_their_own_bucket() -> None:
    # Given DI answering the 09:00 window with an event of 10:00:00.0005 (same ms as the end)
    inside = ev("2026-05-04T09:10:00Z", "a" * 24)
    edge = ev("2026-05-04T10:00:00.0005Z", "e" * 24)
    di = OneWindowDI("2026-05-04T09:10:00Z", inside, edge)
    # When archived / Then no error, and the edge event is not in the 09:00 object
    store, _checkpoints, error = run(di)
    assert error is None
    (key,) = [k for k in store.objects if "0900-1000" in k]
    assert len(store.lines(key)) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b'{"id":"aaaaaaaaaaaaaaaaaaaaaaaa","service":"directory",'
        b'"timestamp":"2026-05-04T09:10:00Z","timestamp":"2099-01-01T00:00:00Z"}',
        b'{"id":"aaaaaaaaaaaaaaaaaaaaaaaa","service":"directory",'
        b'"timestamp":"2026-05-04T09:10:00Z","\\u0074imestamp":"2026-05-04T09:20:00Z"}',
        b'{"id":"aaaaaaaaaaaaaaaaaaaaaaaa","service":"directory","path":"C:\\\\unins0",'
        b'"timestamp":"2026-05-04T09:10:00Z","\\u0074imestamp":"2026-05-04T09:20:00Z"}',
        b'{"id":"aaaaaaaaaaaaaaaaaaaaaaaa","service":"directory","service":"sso",'
        b'"timestamp":"2026-05-04T09:10:00Z"}',
    ],
)
def test_an_event_with_a_repeated_placement_key_fails_the_run(raw: bytes) -> None:
    # Given an event whose timestamp (or service) is sent twice
    di = OneWindowDI("2026-05-04T09:10:00Z", raw)
    # When archived / Then the run fails and says which key is repeated
    store, checkpoints, error = run(di)
    assert error is not None
    assert "more than once" in str(error)
    assert not any("0900-1000" in k for k in store.objects)
    saved = checkpoints.load(ORG)
    assert saved is not None
    assert saved["closed_through"] <= "2026-05-04T09:00:00Z"
