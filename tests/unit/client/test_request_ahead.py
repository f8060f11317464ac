"""The next page is requested from the headers, before the current body is parsed."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
import pytest

from di_archiver.adapters import di_client
from di_archiver.raw_events import RawEvent

from .fakes import END_NS, ORG, START_NS, decoded, make_client, make_events, page_response


class SortedDI:
    """Pages by sort values like DI: cursor = [ms, id] of the last event; later events can be
    indexed between requests (``insert_after``)."""

    def __init__(self, events: list[dict[str, Any]], limit: int) -> None:
        self.events = events
        self.limit = limit
        self.requests: list[dict[str, Any]] = []
        self.damage: set[int] = set()  # request numbers answered with a cut body
        self.insert_after: dict[int, dict[str, Any]] = {}  # request number -> event to index

    @staticmethod
    def _key(event: dict[str, Any]) -> tuple[str, str]:
        return (event["timestamp"], event["id"])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append(body)
        number = len(self.requests)
        after = body.get("search_after")
        ordered = sorted(self.events, key=self._key)
        found = [e for e in ordered if after is None or self._key(e) > tuple(after)]
        page = found[: self.limit]
        cursor = list(self._key(page[-1])) if page else after or []
        response = page_response(page, limit=self.limit, cursor=cursor, request_id=f"r-{number}")
        if number in self.insert_after:
            self.events.append(self.insert_after.pop(number))
        if number in self.damage:
            cut = response.content[: len(response.content) // 2]
            return httpx.Response(200, content=cut, headers=dict(response.headers))
        return response


def test_the_next_request_is_sent_before_the_page_is_parsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a DI with 4 full pages, and a parser that waits until the next request arrived
    di = SortedDI(make_events(40), limit=10)
    arrived = [threading.Event() for _ in range(6)]

    def handler(request: httpx.Request) -> httpx.Response:
        response = di(request)
        arrived[len(di.requests) - 1].set()
        return response

    parsed: list[bool] = []
    real_parse = di_client.parse_page

    def parse(body: bytes) -> list[RawEvent]:
        page = len(parsed)
        # Full page k (0-based) is parsed only once the request for page k+1 has arrived
        parsed.append(arrived[page + 1].wait(timeout=10) if page < 4 else True)
        return real_parse(body)

    monkeypatch.setattr(di_client, "parse_page", parse)
    # When every page is read
    got = decoded(
        e for p in make_client(handler, page_limit=10).iter_pages(ORG, START_NS, END_NS) for e in p
    )
    # Then each page's successor was already requested while it was parsed, nothing lost
    assert got == di.events
    assert parsed == [True] * 5
    assert len(di.requests) == 5


def test_a_damaged_body_is_asked_again_and_the_page_asked_ahead_is_kept() -> None:
    # Given a DI that cuts the body of the first answer (its headers are intact)
    events = make_events(25)
    di = SortedDI(list(events), limit=10)
    di.damage = {1}
    client = make_client(di, page_limit=10)
    # When read
    got = decoded(e for p in client.iter_pages(ORG, START_NS, END_NS) for e in p)
    # Then the page was asked again, the request sent ahead was used, nothing lost or doubled
    assert got == events
    assert client.stats.truncated == 1
    assert [r.get("search_after") for r in di.requests] == [
        None,
        [events[9]["timestamp"], events[9]["id"]],
        None,
        [events[19]["timestamp"], events[19]["id"]],
    ]


def test_a_page_that_ends_elsewhere_when_asked_again_drops_what_was_asked_ahead() -> None:
    # Given a DI that cuts the first answer, then indexes an event inside the first page before
    # that page is asked again (the page now ends one event earlier)
    events = make_events(25)
    late = dict(events[3], id="0" * 23 + "z", event_type="late")
    di = SortedDI(list(events), limit=10)
    di.damage = {1}
    di.insert_after = {2: late}  # indexed after the request sent ahead
    client = make_client(di, page_limit=10)
    # When read
    got = decoded(e for p in client.iter_pages(ORG, START_NS, END_NS) for e in p)
    # Then every event, the late one included, arrived exactly once, in order
    expected = sorted([*events, late], key=SortedDI._key)
    assert got == expected
    # And the page asked ahead (after the old end) was dropped for one after the new end
    cursors = [r.get("search_after") for r in di.requests]
    assert cursors[1] == [events[9]["timestamp"], events[9]["id"]]
    assert cursors[3] == [events[8]["timestamp"], events[8]["id"]]


def test_a_last_page_sends_nothing_ahead() -> None:
    # Given 15 events in pages of 10
    di = SortedDI(make_events(15), limit=10)
    # When read / Then two requests were made: no request follows a short page
    assert len(list(make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS))) == 2
    assert len(di.requests) == 2


def test_closing_mid_window_waits_for_the_request_in_flight() -> None:
    # Given many pages and a consumer that stops after the first
    di = SortedDI(make_events(100), limit=10)
    pages = make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS)
    next(pages)
    # When it closes the iterator
    pages.close()  # type: ignore[attr-defined]
    # Then no request thread outlives it, and at most one page was asked ahead
    assert not any(t.name == "di-client-request-ahead" for t in threading.enumerate())
    assert len(di.requests) == 2


class CountingLimiter:
    """Counts the turns taken (a stand-in for the shared rate limiter)."""

    def __init__(self) -> None:
        self.acquired = 0

    def acquire(self, max_wait: float | None = None) -> bool:
        self.acquired += 1
        return True

    def release(self) -> None:
        return None

    def succeeded(self) -> None:
        return None

    def throttled(self, retry_after: float | None) -> None:
        return None


def test_a_page_costs_one_turn_of_the_rate_limit() -> None:
    # Given a rate-limited client and 3 pages, the first answer's body cut once
    di = SortedDI(make_events(25), limit=10)
    di.damage = {1}
    limiter = CountingLimiter()
    client = make_client(di, page_limit=10, rate_limiter=limiter)
    # When read
    list(client.iter_pages(ORG, START_NS, END_NS))
    # Then every request sent took one turn, and judging an answer in hand took none
    assert limiter.acquired == len(di.requests) == client.stats.requests == 4
