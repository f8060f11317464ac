"""The shared per-credential rate limiter: pacing, in-flight cap, 429 adaptation, budgets."""

from __future__ import annotations

import itertools
import threading
import time

import httpx
import pytest

from di_archiver.adapters.rate_limit import RateLimiter
from di_archiver.errors import DITransientError, SettingsError

from .fakes import END_NS, ORG, START_NS, Scripted, make_client, make_events, page_response


class FakeTime:
    """A monotonic clock whose ``sleep`` advances it (no real waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(t: FakeTime, **kwargs: float) -> RateLimiter:
    return RateLimiter(monotonic=t.monotonic, sleep=t.sleep, **kwargs)  # type: ignore[arg-type]


def starts(lim: RateLimiter, t: FakeTime, n: int) -> list[float]:
    out = []
    for _ in range(n):
        assert lim.acquire()
        out.append(t.now)
        lim.release()
    return out


def test_requests_are_spaced_evenly_at_the_rate() -> None:
    # Given 10 requests/s
    t = FakeTime()
    lim = limiter(t, rate_per_s=10.0)
    # When five requests go out back to back
    times = starts(lim, t, 5)
    # Then they start 100 ms apart, the first at once
    assert [round(b - a, 9) for a, b in itertools.pairwise(times)] == [0.1] * 4
    assert times[0] == 1000.0


def test_a_429_halves_the_rate_and_pauses_every_worker_for_retry_after() -> None:
    # Given a limiter at 10/s that was just told "429, Retry-After: 2"
    t = FakeTime()
    lim = limiter(t, rate_per_s=10.0)
    starts(lim, t, 1)
    lim.throttled(2.0)
    # When the next requests start
    times = starts(lim, t, 3)
    # Then none starts before the pause ends, and they are spaced at the halved rate
    assert times[0] >= 1002.0
    assert [round(b - a, 9) for a, b in itertools.pairwise(times)] == [0.2, 0.2]
    assert lim.stats().throttled == 1
    assert lim.rate_per_s == pytest.approx(5.0)


def test_rate_recovers_after_successes_but_never_exceeds_the_limit() -> None:
    # Given a limiter halved twice by 429s without Retry-After
    t = FakeTime()
    lim = limiter(t, rate_per_s=10.0)
    lim.throttled()
    lim.throttled()
    assert lim.rate_per_s == pytest.approx(2.5)
    # When many requests succeed
    for _ in range(200):
        lim.succeeded()
    # Then the rate is back at, and not above, the configured one
    assert lim.rate_per_s == 10.0


def test_the_rate_never_falls_below_the_floor() -> None:
    t = FakeTime()
    lim = limiter(t, rate_per_s=8.0, min_rate_per_s=1.0)
    for _ in range(20):
        lim.throttled()
    assert lim.rate_per_s == 1.0


def test_acquire_gives_up_within_its_budget_and_holds_nothing() -> None:
    # Given a limiter with one in-flight slot, paused for 30 s by a 429
    t = FakeTime()
    lim = limiter(t, rate_per_s=10.0, max_in_flight=1)
    lim.throttled(30.0)
    # When a request may wait only 5 s
    # Then it is refused without sleeping past its budget
    assert lim.acquire(max_wait=5.0) is False
    assert sum(t.slept) <= 5.0
    # And the slot was not kept: after the pause a request gets it
    assert lim.acquire() is True
    lim.release()


def test_in_flight_requests_never_exceed_the_cap() -> None:
    # Given a fast rate but at most 2 requests in flight, and 6 threads that hold their slot
    lim = RateLimiter(rate_per_s=1000.0, max_in_flight=2)
    lock = threading.Lock()
    active = peak = 0

    def work() -> None:
        nonlocal active, peak
        with lim.request() as granted:
            assert granted
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then never more than two were in flight, and all six ran
    assert peak == 2
    assert lim.stats().requests == 6


def test_a_waiting_thread_gives_up_on_the_in_flight_cap_within_its_budget() -> None:
    lim = RateLimiter(rate_per_s=1000.0, max_in_flight=1)
    assert lim.acquire()
    began = time.monotonic()
    assert lim.acquire(max_wait=0.05) is False
    assert time.monotonic() - began < 1.0
    lim.release()


def test_bad_settings_are_refused() -> None:
    with pytest.raises(SettingsError, match="rate limit"):
        RateLimiter(rate_per_s=0)
    with pytest.raises(SettingsError, match="max_in_flight"):
        RateLimiter(max_in_flight=0)


# -- the DI client uses it ------------------------------------------------------------------


def _ok() -> httpx.Response:
    return page_response(make_events(2), limit=10, cursor=[1, "c"])


def test_the_client_reports_429s_to_the_shared_limiter() -> None:
    # Given a client whose limiter is shared, and DI that throttles once with Retry-After
    t = FakeTime()
    lim = limiter(t, rate_per_s=10.0)
    di = Scripted([httpx.Response(429, headers={"Retry-After": "3"}), _ok()])
    client = make_client(di, rate_limiter=lim)
    # When a bucket is read
    pages = list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the limiter saw both requests and the throttle, and slowed down for everyone
    assert len(pages) == 1
    stats = lim.stats()
    assert (stats.requests, stats.throttled) == (2, 1)
    assert lim.rate_per_s < 10.0
    assert client.rate_limiter is lim


def test_the_client_runs_out_of_time_instead_of_waiting_past_its_deadline() -> None:
    # Given a limiter paused for a minute and a client with 10 s left
    t = FakeTime()
    lim = limiter(t, rate_per_s=10.0)
    lim.throttled(60.0)
    di = Scripted([_ok()])
    client = make_client(di, rate_limiter=lim, deadline=lambda: 10.0)
    # When it reads, Then it stops with a transient "out of time" and sent nothing
    with pytest.raises(DITransientError, match="out of time"):
        list(client.iter_pages(ORG, START_NS, END_NS))
    assert di.requests == []
