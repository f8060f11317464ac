"""A deadline bounds every DI request: no sleep or timeout past it, "out of time" before it."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from di_archiver.adapters.retry import RetryPolicy
from di_archiver.errors import DITransientError

from .fakes import END_NS, ORG, START_NS, Scripted, make_client, make_events, page_response


def ok(n: int = 2) -> httpx.Response:
    return page_response(make_events(n), limit=10, cursor=[n - 1, "c"])


@dataclass
class FakeTime:
    """A budget that only the injected sleep spends: ``remaining`` is the deadline callable."""

    left: float
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.left -= seconds

    def remaining(self) -> float:
        return self.left


def test_a_retry_after_longer_than_the_time_left_fails_at_once_instead_of_sleeping() -> None:
    # Given DI throttling with Retry-After 30 s and only 20 s left before the deadline
    clock = FakeTime(20.0)
    di = Scripted([httpx.Response(429, headers={"Retry-After": "30"}), ok()])
    client = make_client(di, sleeps=clock.sleep, deadline=clock.remaining)  # type: ignore[arg-type]
    # When read: then it is out of time without sleeping, after the one request
    with pytest.raises(DITransientError, match="out of time") as caught:
        list(client.iter_pages(ORG, START_NS, END_NS))
    assert clock.sleeps == []
    assert len(di.requests) == 1
    assert caught.value.status == 429


def test_retries_stop_before_the_deadline_and_never_sleep_past_it() -> None:
    # Given a DI that keeps answering 503 and a 10 s deadline, with up to 20 attempts allowed
    clock = FakeTime(10.0)
    di = Scripted([httpx.Response(503)] * 20)
    retry = RetryPolicy(max_attempts=20, base_delay=1.0, max_delay=4.0)
    client = make_client(
        di,
        sleeps=clock.sleep,  # type: ignore[arg-type]
        retry=retry,
        deadline=clock.remaining,
        min_attempt_seconds=2.0,
    )
    # When read: then it gives up "out of time" well before max_attempts
    with pytest.raises(DITransientError, match="out of time"):
        list(client.iter_pages(ORG, START_NS, END_NS))
    # And the sleeps (1, 2, 4 = 7 s) left at least min_attempt_seconds for every attempt
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert clock.left >= 2.0
    assert len(di.requests) == 4


def test_no_request_is_sent_when_less_than_one_attempt_remains() -> None:
    # Given 1.5 s left and attempts needing at least 2 s
    clock = FakeTime(1.5)
    di = Scripted([ok()])
    client = make_client(di, deadline=clock.remaining, min_attempt_seconds=2.0)
    # When read: then nothing is sent and the error says why
    with pytest.raises(DITransientError, match="out of time"):
        list(client.iter_pages(ORG, START_NS, END_NS))
    assert di.requests == []


def test_request_timeouts_are_cut_to_the_time_left() -> None:
    # Given a client with 10 s connect / 60 s read timeouts and 25 s left
    clock = FakeTime(25.0)
    di = Scripted([ok()])
    client = make_client(di, deadline=clock.remaining)
    client.http.timeout = httpx.Timeout(60.0, connect=10.0)
    # When read
    list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the request carried connect 10 s (already shorter) and read/write/pool 25 s
    sent = di.requests[0].extensions["timeout"]
    assert sent == {"connect": 10.0, "read": 25.0, "write": 25.0, "pool": 25.0}


def test_set_deadline_binds_later_requests_and_none_lifts_it() -> None:
    # Given a client without a deadline, then given one with no time left
    clock = FakeTime(0.0)
    di = Scripted([ok(), ok()])
    client = make_client(di)
    client.set_deadline(clock.remaining)
    # When read: then it is out of time
    with pytest.raises(DITransientError, match="out of time"):
        list(client.iter_pages(ORG, START_NS, END_NS))
    # When the deadline is lifted: then reading works again with the client's own timeouts
    client.set_deadline(None)
    assert [len(p) for p in client.iter_pages(ORG, START_NS, END_NS)] == [2]
    assert di.requests[0].extensions["timeout"]["read"] == client.http.timeout.read
