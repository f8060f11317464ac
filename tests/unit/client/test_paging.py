"""Paging: the documented stop rule, cursors, header spellings and malformed pages."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from di_archiver.adapters.di_client import COUNT_PATH, EVENTS_PATH, make_base_url
from di_archiver.errors import DIResponseError
from di_archiver.settings import Region

from .fakes import (
    API_KEY,
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


def test_request_carries_the_documented_body_and_headers() -> None:
    # Given a DI with a few events
    di = PagingDI(make_events(3))
    client = make_client(di, page_limit=500, user_agent="di-archiver/test")
    # When one window is read for two organisations
    pages = list(client.iter_pages([ORG, "6a" * 12], START_NS + 5, END_NS))
    # Then the request is a POST to /events with the documented JSON body
    (request,) = di.requests
    assert request.method == "POST"
    assert request.url.path == EVENTS_PATH
    assert json.loads(request.content) == {
        "service": ["all"],
        "start_time": "2023-11-14T22:13:20.000000005Z",
        "end_time": "2023-11-14T23:13:20Z",
        "sort": "ASC",
        "limit": 500,
    }
    # And the key, one x-org-id header per org, JSON content type and our user agent are sent
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers.get_list("x-org-id") == [ORG, "6a" * 12]
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "di-archiver/test"
    assert [len(p) for p in pages] == [3]


def test_no_org_header_when_the_key_reads_its_own_org() -> None:
    # Given an API key client / When no org is given / Then no x-org-id header is sent
    di = PagingDI(make_events(1))
    list(make_client(di).iter_pages(None, START_NS, END_NS))
    assert "x-org-id" not in di.requests[0].headers


@pytest.mark.parametrize(
    ("cursor_header", "count_header", "limit_header"),
    [
        ("X-Search_after", "X-Result-Count", "X-Limit"),
        ("x-search_after", "x-result-count", "x-limit"),
        ("X-Search_After", "X-RESULT-COUNT", "X-LIMIT"),
        ("X-SEARCH_AFTER", "x-Result-count", "x-Limit"),
    ],
)
def test_headers_are_read_case_insensitively(
    cursor_header: str, count_header: str, limit_header: str
) -> None:
    # Given a DI that spells its paging headers differently
    events = make_events(25)
    di = PagingDI(
        events,
        max_limit=10,
        cursor_header=cursor_header,
        count_header=count_header,
        limit_header=limit_header,
    )
    # When every page is read
    got = decoded(
        e for page in make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS) for e in page
    )
    # Then the cursor was followed and every event came exactly once
    assert got == events
    assert [b.get("search_after") for b in di.bodies()] == [
        None,
        [9, f"{9:020d}"],
        [19, f"{19:020d}"],
    ]


def test_stops_when_result_count_is_below_the_returned_limit() -> None:
    # Given 2.5 pages of events
    events = make_events(25)
    di = PagingDI(events, max_limit=10)
    # When read with a page limit of 10
    pages = list(make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS))
    # Then the short third page ends paging without another request
    assert [len(p) for p in pages] == [10, 10, 5]
    assert len(di.requests) == 3


def test_compares_with_the_returned_limit_not_the_requested_one() -> None:
    # Given a DI that caps pages at 7 rows although we ask for 10,000
    events = make_events(20)
    di = PagingDI(events, max_limit=7)
    # When read with the default (maximum) page limit
    pages = list(make_client(di).iter_pages(ORG, START_NS, END_NS))
    # Then 7-row pages are recognised as full and paging continues to the end
    assert [len(p) for p in pages] == [7, 7, 6]
    assert decoded(e for p in pages for e in p) == events


def test_last_full_page_is_followed_by_an_empty_page() -> None:
    # Given exactly two full pages of events
    events = make_events(20)
    di = PagingDI(events, max_limit=10)
    # When read
    pages = list(make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS))
    # Then a third request returns [] and ends paging; no empty page is yielded
    assert [len(p) for p in pages] == [10, 10]
    assert len(di.requests) == 3
    assert decoded(e for p in pages for e in p) == events


def test_empty_window_yields_no_pages() -> None:
    # Given a DI with no events / When read / Then nothing is yielded after one request
    di = PagingDI([])
    assert list(make_client(di).iter_pages(ORG, START_NS, END_NS)) == []
    assert len(di.requests) == 1


def test_null_body_is_an_empty_page() -> None:
    # Given a DI that answers `null` with a count of 0
    di = Scripted(
        [httpx.Response(200, content=b"null", headers={"X-Result-Count": "0", "X-Limit": "10"})]
    )
    # When read / Then no pages and no error
    assert list(make_client(di).iter_pages(ORG, START_NS, END_NS)) == []


def test_missing_limit_header_reads_on_until_an_empty_page() -> None:
    # Given a DI that never sends X-Limit
    events = make_events(15)
    di = PagingDI(events, max_limit=10, limit_header="")
    # When read / Then the short page cannot be trusted as last: an empty page ends paging
    got = decoded(
        e for p in make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS) for e in p
    )
    assert got == events
    assert len(di.requests) == 3


def test_repeated_cursor_on_a_full_page_is_an_error_not_a_loop() -> None:
    # Given a DI that ignores search_after and returns the same full page forever
    events = make_events(10)
    di = Scripted([page_response(events, limit=10, cursor=[1, "abc"])] * 5)
    pages = make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS)
    # When read / Then the first page comes, the repeat raises, and the duplicate is not yielded
    assert decoded(next(pages)) == events
    with pytest.raises(DIResponseError, match="again with a full page"):
        next(pages)
    assert len(di.requests) == 2


def test_full_page_without_cursor_is_an_error() -> None:
    # Given a full page with no X-Search_after
    response = httpx.Response(
        200, json=make_events(10), headers={"X-Result-Count": "10", "X-Limit": "10"}
    )
    client = make_client(Scripted([response]), page_limit=10)
    # When read / Then the client refuses to guess a cursor
    with pytest.raises(DIResponseError, match="without X-Search_after"):
        list(client.iter_pages(ORG, START_NS, END_NS))


def test_unparseable_cursor_is_an_error() -> None:
    # Given a full page whose cursor header is not JSON
    response = httpx.Response(
        200,
        json=make_events(10),
        headers={"X-Result-Count": "10", "X-Limit": "10", "X-Search_after": "[17, oops"},
    )
    # When read / Then a DIResponseError names the header
    with pytest.raises(DIResponseError, match="X-Search_after is not a JSON array"):
        list(make_client(Scripted([response]), page_limit=10).iter_pages(ORG, START_NS, END_NS))


def test_count_mismatch_is_retried_as_a_truncated_body() -> None:
    # Given a page whose X-Result-Count disagrees with its body, then a good answer
    events = make_events(3)
    bad = httpx.Response(
        200,
        json=events[:2],
        headers={"X-Result-Count": "3", "X-Limit": "10", "X-Search_after": "[]"},
    )
    good = page_response(events, limit=10, cursor=[2, "x"])
    client = make_client(Scripted([bad, good]))
    # When read / Then the retry delivers the whole page
    assert decoded(e for p in client.iter_pages(ORG, START_NS, END_NS) for e in p) == events
    assert client.stats.truncated == 1
    assert client.stats.retries == 1


def test_persistent_count_mismatch_ends_in_a_response_error() -> None:
    # Given a DI whose count never matches its body
    bad = httpx.Response(200, json=[], headers={"X-Result-Count": "3", "X-Limit": "10"})
    di = Scripted([bad] * 4)
    # When read / Then every attempt is spent and DIResponseError says what was wrong
    with pytest.raises(DIResponseError, match=r"after 4 attempts.*X-Result-Count 3 but 0"):
        list(make_client(di).iter_pages(ORG, START_NS, END_NS))
    assert len(di.requests) == 4


def test_non_json_200_is_retried_then_reported() -> None:
    # Given a 200 whose body was cut mid-array every time
    cut = httpx.Response(200, content=b'[{"id": "a"', headers={"X-Request-Id": "r-9"})
    di = Scripted([cut] * 4)
    # When read / Then it is retried and finally a DIResponseError carries the request id
    with pytest.raises(DIResponseError, match=r"after 4 attempts.*not valid JSON.*r-9") as info:
        list(make_client(di).iter_pages(ORG, START_NS, END_NS))
    assert info.value.request_id == "r-9"
    assert len(di.requests) == 4


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_malformed_not_archived(constant: bytes) -> None:
    # Given a 200 whose event holds a number JSON does not allow (Python's parser would accept
    # it, and the archive encoder would have to rewrite it)
    body = b'[{"id": "a", "timestamp": "2026-05-04T09:15:02Z", "latitude": ' + constant + b"}]"
    di = Scripted([httpx.Response(200, content=body, headers={"X-Request-Id": "r-7"})] * 4)
    # When read / Then it is treated like a malformed body: retried, then reported
    with pytest.raises(DIResponseError, match=r"after 4 attempts.*not valid JSON"):
        list(make_client(di).iter_pages(ORG, START_NS, END_NS))


@pytest.mark.parametrize("body", [b'{"events": []}', b"[1, 2]", b'"text"'])
def test_body_that_is_not_an_array_of_objects_is_not_retried(body: bytes) -> None:
    # Given a well-formed JSON answer of the wrong shape
    di = Scripted([httpx.Response(200, content=body)])
    # When read / Then DIResponseError at once (retrying cannot change the shape)
    with pytest.raises(DIResponseError, match="not a JSON array of objects"):
        list(make_client(di).iter_pages(ORG, START_NS, END_NS))
    assert len(di.requests) == 1


def test_events_are_passed_through_unmodified() -> None:
    # Given events with unknown fields, nulls, floats and nesting
    odd = [
        {
            "id": "x",
            "timestamp": "2023-11-14T22:13:20Z",
            "@version": "1",
            "provider": None,
            "geoip": {"latitude": 51.5072, "longitude": -0.1276},
            "new_field": [True, {"a": 1}],
        }
    ]
    di = Scripted([page_response(odd, limit=10, cursor=[1, "z"])])
    # When read / Then the dicts equal what was sent
    assert decoded(make_client(di).iter_events(ORG, START_NS, END_NS)) == odd


def test_prefetch_yields_the_same_pages_in_order() -> None:
    # Given many pages
    events = make_events(95)
    di = PagingDI(events, max_limit=10)
    # When read with the background prefetch
    client = make_client(di, page_limit=10, prefetch=True)
    got = decoded(client.iter_events(ORG, START_NS, END_NS))
    # Then the result is identical to sequential paging
    assert got == events
    assert client.stats.pages == 10
    assert client.stats.events == 95


def test_prefetch_propagates_errors_to_the_caller() -> None:
    # Given a DI whose second page is malformed
    first = page_response(make_events(10), limit=10, cursor=[9, "a"])
    di = Scripted([first, httpx.Response(200, content=b'{"no": "array"}')])
    pages = make_client(di, page_limit=10, prefetch=True).iter_pages(ORG, START_NS, END_NS)
    # When read / Then the first page arrives and the error surfaces at the second
    assert len(next(pages)) == 10
    with pytest.raises(DIResponseError):
        next(pages)


def test_closing_a_prefetching_iterator_stops_the_thread() -> None:
    # Given a DI with 50 pages
    di = PagingDI(make_events(500), max_limit=10)
    pages = make_client(di, page_limit=10, prefetch=True).iter_pages(ORG, START_NS, END_NS)
    # When the caller takes one page and closes the iterator
    next(pages)
    pages.close()  # type: ignore[attr-defined]
    for thread in threading.enumerate():
        if thread.name == "di-client-prefetch":
            thread.join(10)
    # Then the worker has stopped, having read at most one page ahead of its queue (and asked
    # for one more: the request sent ahead while that page was parsed)
    assert not any(t.name == "di-client-prefetch" for t in threading.enumerate())
    assert len(di.requests) <= 4


def test_count_posts_the_same_query_and_returns_the_number() -> None:
    # Given a DI count endpoint
    di = Scripted([httpx.Response(200, json={"count": 1234})])
    client = make_client(di)
    # When counted / Then the number is returned and the body has no paging fields
    assert client.count(ORG, START_NS, END_NS) == 1234
    request = di.requests[0]
    assert request.url.path == COUNT_PATH
    assert set(json.loads(request.content)) == {"service", "start_time", "end_time"}


@pytest.mark.parametrize("body", [{"count": "12"}, {"total": 3}, {"count": True}, [1]])
def test_count_rejects_a_malformed_answer(body: object) -> None:
    # Given a count answer of the wrong shape / When counted / Then DIResponseError
    with pytest.raises(DIResponseError, match="count"):
        make_client(Scripted([httpx.Response(200, json=body)])).count(ORG, START_NS, END_NS)


def test_make_base_url_prefers_an_explicit_url() -> None:
    # Given regions and an override / Then the override wins and trailing slashes go
    assert make_base_url(Region.EU, None) == "https://api.eu.jumpcloud.com"
    assert make_base_url("in", None) == "https://api.in.jumpcloud.com"
    assert make_base_url(Region.STANDARD, "http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
