"""Retries: back-off with full jitter, Retry-After, giving up, and what is never retried."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import httpx
import pytest

from di_archiver.adapters.retry import Jitter, RetryPolicy, parse_retry_after
from di_archiver.errors import DIApiError, DITransientError

from .fakes import (
    END_NS,
    ORG,
    START_NS,
    Scripted,
    Sleeps,
    decoded,
    make_client,
    make_events,
    page_response,
)


def ok(n: int = 2) -> httpx.Response:
    return page_response(make_events(n), limit=10, cursor=[n - 1, "c"])


def test_retry_after_seconds_is_honoured() -> None:
    # Given a 429 asking for 7 s, then success
    sleeps = Sleeps()
    client = make_client(
        Scripted([httpx.Response(429, headers={"Retry-After": "7"}), ok()]), sleeps=sleeps
    )
    # When read
    pages = list(client.iter_pages(ORG, START_NS, END_NS))
    # Then exactly the requested wait was slept, once
    assert sleeps == [7.0]
    assert len(pages) == 1
    assert client.stats.throttles == 1
    assert client.stats.retries == 1


def test_retry_after_is_capped_at_max_delay() -> None:
    # Given a 503 asking for an hour (as an HTTP date) while max_delay is 30 s
    later = format_datetime(datetime(2999, 1, 1, tzinfo=UTC), usegmt=True)
    sleeps = Sleeps()
    di = Scripted([httpx.Response(503, headers={"Retry-After": later}), ok()])
    # When read / Then the wait is cut to max_delay
    list(make_client(di, sleeps=sleeps).iter_pages(ORG, START_NS, END_NS))
    assert sleeps == [30.0]


def test_backoff_is_exponential_with_full_jitter() -> None:
    # Given four server errors without Retry-After and a jitter draw of 0.5
    sleeps = Sleeps()
    di = Scripted(
        [httpx.Response(500), httpx.Response(502), httpx.Response(503), httpx.Response(504), ok()]
    )
    retry = RetryPolicy(max_attempts=5, base_delay=0.5, max_delay=3.0)
    client = make_client(di, sleeps=sleeps, random=lambda: 0.5, retry=retry)
    # When read
    list(client.iter_pages(ORG, START_NS, END_NS))
    # Then each wait is random() x min(max_delay, base x 2^(n-1))
    assert sleeps == [0.25, 0.5, 1.0, 1.5]
    assert client.stats.server_errors == 4


def test_transport_errors_are_retried() -> None:
    # Given a reset, a timeout and a body cut mid-stream before a good answer
    request = httpx.Request("POST", "https://di.test/")
    di = Scripted(
        [
            httpx.ReadError("connection reset by peer", request=request),
            httpx.ReadTimeout("timed out", request=request),
            httpx.RemoteProtocolError("peer closed connection without sending complete body"),
            ok(3),
        ]
    )
    client = make_client(di, retry=RetryPolicy(max_attempts=4))
    # When read / Then the events arrive and the failures are counted
    assert [len(p) for p in client.iter_pages(ORG, START_NS, END_NS)] == [3]
    assert client.stats.transport_errors == 3
    assert client.stats.truncated == 1
    assert client.stats.requests == 4


def test_gives_up_after_max_attempts_with_a_useful_message() -> None:
    # Given a DI that is always unavailable
    sleeps = Sleeps()
    di = Scripted([httpx.Response(503, headers={"X-Request-Id": "rid-42"})] * 4)
    client = make_client(di, sleeps=sleeps)
    # When read
    with pytest.raises(DITransientError) as info:
        list(client.iter_pages(ORG, START_NS, END_NS))
    # Then exactly max_attempts requests were made, with a wait between each
    assert len(di.requests) == 4
    assert len(sleeps) == 3
    # And the message says what failed, how often, and the request id
    assert (
        str(info.value) == "DI /events failed after 4 attempts; last: HTTP 503 (request id rid-42)"
    )
    assert info.value.status == 503
    assert info.value.request_id == "rid-42"


def test_gives_up_on_persistent_transport_errors() -> None:
    # Given connections that always fail
    di = Scripted([httpx.ConnectError("refused")] * 4)
    # When read / Then DITransientError names the failure by type, and does not chain the
    # library's exception (its text may quote what was sent, the credential included)
    with pytest.raises(
        DITransientError, match=r"after 4 attempts; last: transport error \(ConnectError: refused\)"
    ) as info:
        list(make_client(di).iter_pages(ORG, START_NS, END_NS))
    assert info.value.__cause__ is None


@pytest.mark.parametrize("status", [400, 401, 402, 403, 404])
def test_permanent_statuses_are_not_retried(status: int) -> None:
    # Given a permanent error / When read / Then one request and no sleep
    sleeps = Sleeps()
    di = Scripted([httpx.Response(status, json={"message": "no"})])
    with pytest.raises(DIApiError):
        list(make_client(di, sleeps=sleeps).iter_pages(ORG, START_NS, END_NS))
    assert len(di.requests) == 1
    assert sleeps == []


def test_retries_resume_from_the_same_cursor() -> None:
    # Given a good first page, then a 429 on the second request
    events = make_events(15)
    first = page_response(events[:10], limit=10, cursor=[9, "c9"])
    second = page_response(events[10:], limit=10, cursor=[14, "c14"])
    di = Scripted([first, httpx.Response(429), second])
    # When read
    got = decoded(
        e for p in make_client(di, page_limit=10).iter_pages(ORG, START_NS, END_NS) for e in p
    )
    # Then the retried request repeats the same search_after and nothing is lost or doubled
    assert got == events
    assert di.requests[1].content == di.requests[2].content


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", 5.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        ("", None),
        (None, None),
        ("soon", None),
        ("nan", None),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    # Given delta-seconds or an HTTP date relative to a fixed now / Then seconds to wait
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(value, now=lambda: now) == expected


def test_policy_without_jitter_is_the_cap() -> None:
    # Given no jitter / Then the delay is the capped exponential
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=Jitter.NONE)
    assert [policy.backoff(n, lambda: 0.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_policy_rejects_nonsense() -> None:
    # Given zero attempts / Then the policy refuses
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
