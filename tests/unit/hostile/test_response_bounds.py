"""Finding 3 and 4 (paging): a response is bounded in size, and paging cannot be ended early
or kept going forever by a server that breaks its own contract."""

from __future__ import annotations

import json

import httpx
import pytest

from di_archiver.adapters.di_client import DEFAULT_MAX_BODY_BYTES
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.errors import DIResponseError
from tests.unit.client.fakes import (
    END_NS,
    ORG,
    START_NS,
    PagingDI,
    Scripted,
    decoded,
    make_client,
    make_events,
    page_response,
)

from .bombs import gzip_bomb


def streamed(body: bytes, **headers: str) -> httpx.Response:
    # ``stream=`` keeps httpx from decoding the body when the response is built.
    return httpx.Response(200, headers=headers, stream=httpx.ByteStream(body))


def test_a_gzip_bomb_page_fails_clearly_without_expanding_it() -> None:
    # Given a DI page of 1 MB gzip that expands to 1 GiB
    bomb = gzip_bomb(1024)
    assert len(bomb) < 2 * 1024 * 1024
    di = Scripted([streamed(bomb, **{"Content-Encoding": "gzip", "X-Request-Id": "r-bomb"})])
    client = make_client(di)
    # When read / Then the run fails with a clear, non-retried error naming the limit
    with pytest.raises(DIResponseError, match=f"larger than {DEFAULT_MAX_BODY_BYTES} bytes"):
        list(client.iter_pages(ORG, START_NS, END_NS))
    assert len(di.requests) == 1


def test_the_size_cap_is_configurable_and_applies_to_plain_bodies_too() -> None:
    events = make_events(50)
    body = json.dumps(events).encode()
    di = Scripted([streamed(body, **{"X-Result-Count": "50", "X-Limit": "100"})])
    client = make_client(di, max_body_bytes=len(body) - 1)
    with pytest.raises(DIResponseError, match="larger than"):
        list(client.iter_pages(ORG, START_NS, END_NS))


def test_gzip_pages_within_the_cap_are_read_exactly() -> None:
    # Given a page sent gzip-compressed in two concatenated members
    import gzip

    events = make_events(30)
    raw = json.dumps(events).encode()
    body = gzip.compress(raw[:100]) + gzip.compress(raw[100:])
    headers = {"Content-Encoding": "gzip", "X-Result-Count": "30", "X-Limit": "100"}
    client = make_client(Scripted([streamed(body, **headers)]))
    # When read / Then the events are exactly those sent
    pages = list(client.iter_pages(ORG, START_NS, END_NS))
    assert [decoded(page) for page in pages] == [events]


def test_a_cut_gzip_body_is_retried_then_reported() -> None:
    import gzip

    body = gzip.compress(json.dumps(make_events(30)).encode())[:-20]
    headers = {"Content-Encoding": "gzip", "X-Result-Count": "30", "X-Limit": "100"}
    di = Scripted([streamed(body, **headers) for _ in range(2)])
    client = make_client(di, retry=RetryPolicy(max_attempts=2, base_delay=0.0))
    with pytest.raises(DIResponseError, match="ends inside its compressed stream"):
        list(client.iter_pages(ORG, START_NS, END_NS))
    assert len(di.requests) == 2


def test_an_unknown_content_encoding_is_not_guessed_at() -> None:
    di = Scripted([streamed(b"xx", **{"Content-Encoding": "br"}) for _ in range(4)])
    with pytest.raises(DIResponseError, match="unsupported Content-Encoding 'br'"):
        list(make_client(di).iter_pages(ORG, START_NS, END_NS))


def test_an_x_limit_above_the_requested_limit_does_not_end_paging_early() -> None:
    # Given a DI that serves 10-event pages but claims X-Limit 20 (we asked for 10)
    events = make_events(35)

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        after = body.get("search_after")
        start = 0 if after is None else int(after[0]) + 1
        page = events[start : start + 10]
        return page_response(page, limit=20, cursor=[start + len(page) - 1, "c"])

    client = make_client(answer, page_limit=10)
    # When read / Then every event arrives (the documented rule alone would stop after 10)
    pages = list(client.iter_pages(ORG, START_NS, END_NS))
    assert decoded(e for p in pages for e in p) == events


def test_fresh_cursors_forever_are_stopped_with_a_clear_error() -> None:
    # Given a DI that answers every request with a full page and a new cursor
    calls = 0

    def forever(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return page_response(make_events(5), limit=5, cursor=[calls, f"c{calls}"])

    client = make_client(forever, page_limit=5, max_pages_per_window=40)
    # When read / Then it stops at the page bound with an error saying what happened
    with pytest.raises(DIResponseError, match="40 full pages for one window"):
        for _ in client.iter_pages(ORG, START_NS, END_NS):
            pass
    assert calls == 40


def test_error_bodies_are_read_only_up_to_a_small_cap() -> None:
    # Given a 400 whose body is a gzip bomb
    headers = {"Content-Encoding": "gzip"}
    bomb = httpx.Response(400, headers=headers, stream=httpx.ByteStream(gzip_bomb(256)))
    # When read / Then the error is reported promptly with a bounded message
    with pytest.raises(Exception, match="HTTP 400") as caught:
        list(make_client(Scripted([bomb])).iter_pages(ORG, START_NS, END_NS))
    assert len(str(caught.value)) < 1000


def test_well_behaved_paging_is_unchanged() -> None:
    events = make_events(25)
    pages = list(make_client(PagingDI(events, max_limit=10)).iter_pages(ORG, START_NS, END_NS))
    assert [len(p) for p in pages] == [10, 10, 5]
