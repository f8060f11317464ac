"""A page's body is received after the next page was asked for, and only with a turn: the
readers of one client hold at most ``max_pages_held`` pages at once, however many windows are
read at the same time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from di_archiver.errors import SettingsError

from .fakes import END_NS, ORG, START_NS, decoded, make_client, make_events, page_response

# Long enough never to pass on a working machine; only a broken client waits it out.
_NEVER = 10.0


class _Body(httpx.SyncByteStream):
    """A body that records when it is read, optionally once ``gate`` is set."""

    def __init__(self, content: bytes, read: threading.Event, gate: threading.Event | None):
        self._content = content
        self._read = read
        self._gate = gate
        self.waited_in_vain = False

    def __iter__(self) -> Iterator[bytes]:
        if self._gate is not None and not self._gate.wait(_NEVER):
            self.waited_in_vain = True
        self._read.set()
        yield self._content


class StreamingDI:
    """Pages one corpus per org by position; every body is a :class:`_Body`."""

    def __init__(self, corpora: dict[str, list[dict[str, Any]]], limit: int) -> None:
        self.corpora = corpora
        self.limit = limit
        self.lock = threading.Lock()
        self.arrived: list[threading.Event] = [threading.Event() for _ in range(64)]
        self.requests: list[tuple[str, Any]] = []
        self.bodies: list[_Body] = []
        self.read: dict[str, list[threading.Event]] = {org: [] for org in corpora}
        self.gate_on_next_request = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        org = request.headers["x-org-id"]
        after = json.loads(request.content).get("search_after")
        with self.lock:
            number = len(self.requests)
            self.requests.append((org, after))
            self.arrived[number].set()
            read = threading.Event()
            self.read[org].append(read)
        start = 0 if after is None else int(after[0]) + 1
        page = self.corpora[org][start : start + self.limit]
        cursor = [start + len(page) - 1, "x"] if page else after or []
        answer = page_response(page, limit=self.limit, cursor=cursor)
        gate = self.arrived[number + 1] if self.gate_on_next_request else None
        body = _Body(answer.content, read, gate)
        self.bodies.append(body)
        return httpx.Response(200, headers=answer.headers, stream=body)


def test_the_next_page_is_asked_for_before_this_body_is_received() -> None:
    # Given 3 full pages and a last one, each body readable only once the next request arrived
    events = make_events(35)
    di = StreamingDI({ORG: events}, limit=10)
    di.gate_on_next_request = True
    client = make_client(di, page_limit=10)
    # When the window is read up to its last full page
    pages = client.iter_pages(ORG, START_NS, END_NS)
    got = [next(pages) for _ in range(3)]
    # Then no full page's body waited for the request that follows it
    assert [b.waited_in_vain for b in di.bodies[:3]] == [False] * 3
    assert decoded(e for p in got for e in p) == events[:30]
    pages.close()  # type: ignore[attr-defined]


def _first_page_on_a_thread(client: Any, org: str) -> tuple[threading.Thread, list[Any]]:
    pages = client.iter_pages(org, START_NS, END_NS)
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append((pages, next(pages))), daemon=True)
    thread.start()
    return thread, got


def test_pages_held_across_windows_are_bounded_by_the_shared_turns() -> None:
    # Given three windows (orgs) read at once through one client that holds 2 pages at most
    orgs = ["5f0c1a2b3c4d5e6f7a8b9c01", "5f0c1a2b3c4d5e6f7a8b9c02", "5f0c1a2b3c4d5e6f7a8b9c03"]
    corpora = {orgs[0]: make_events(5), orgs[1]: make_events(25), orgs[2]: make_events(25)}
    di = StreamingDI(corpora, limit=10)
    client = make_client(di, page_limit=10, max_pages_held=2)
    first, got_first = _first_page_on_a_thread(client, orgs[0])
    first.join(_NEVER)
    second, got_second = _first_page_on_a_thread(client, orgs[1])
    second.join(_NEVER)
    # When a third window's first answer (and the request ahead of it) arrived while the first
    # two windows' consumers still hold their pages
    third, got_third = _first_page_on_a_thread(client, orgs[2])
    assert di.arrived[4].wait(_NEVER)
    third.join(0.2)
    # Then its body stays on the connection: no third page is received, however long it waits
    assert third.is_alive()
    assert not got_third
    assert not di.read[orgs[2]][0].is_set()
    # And once the first window's consumer asks for more (its only page is done), the third
    # window's page is read
    pages, _page = got_first[0]
    del _page
    assert next(pages, None) is None
    third.join(_NEVER)
    assert not third.is_alive()
    assert len(got_third[0][1]) == 10
    for holder in (got_first, got_second, got_third):
        holder[0][0].close()


def test_closing_a_window_mid_way_gives_its_turn_back() -> None:
    # Given one turn, held by a window whose consumer stops after the first page
    orgs = ["5f0c1a2b3c4d5e6f7a8b9c01", "5f0c1a2b3c4d5e6f7a8b9c02"]
    di = StreamingDI({org: make_events(25) for org in orgs}, limit=10)
    client = make_client(di, page_limit=10, max_pages_held=1)
    abandoned = client.iter_pages(orgs[0], START_NS, END_NS)
    next(abandoned)
    abandoned.close()  # type: ignore[attr-defined]
    # When another window is read / Then it gets every page
    got = decoded(e for p in client.iter_pages(orgs[1], START_NS, END_NS) for e in p)
    assert got == di.corpora[orgs[1]]


def test_one_turn_is_enough_for_one_reader() -> None:
    # Given a single turn and a window of several pages, each asked for ahead
    events = make_events(45)
    di = StreamingDI({ORG: events}, limit=10)
    client = make_client(di, page_limit=10, max_pages_held=1)
    # When read / Then it never waits for itself
    assert decoded(e for p in client.iter_pages(ORG, START_NS, END_NS) for e in p) == events


def test_max_pages_held_must_be_positive() -> None:
    with pytest.raises(SettingsError, match="max_pages_held"):
        make_client(StreamingDI({ORG: []}, limit=10), max_pages_held=0)
