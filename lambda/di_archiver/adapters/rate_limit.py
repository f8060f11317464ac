"""One request budget per JumpCloud credential, shared by every thread that uses it.

DI publishes no rate limit; about 10 requests/s per key is the polite ceiling other
integrations keep (see the DI API notes). Parallel buckets would blow through it at once, so
every request of a credential passes one :class:`RateLimiter`:

* **pacing**: requests start at most ``rate_per_s`` a second, evenly spaced (no bursts that a
  gateway's token bucket could refuse);
* **in flight**: at most ``max_in_flight`` requests are outstanding at once, whatever the rate;
* **429 adapts for everyone**: a throttled answer halves the rate (down to ``min_rate_per_s``)
  and, with ``Retry-After``, pauses *every* worker until then, because the server meters the
  key, not the thread; successes then raise the rate back by ``recovery_per_s`` each second.

Waits respect a caller's budget: :meth:`acquire` gives up (returns ``False``, holding nothing)
when it could not start the request within ``max_wait`` seconds.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator

from msgspec import Struct

from di_archiver.errors import SettingsError

DEFAULT_RATE_PER_SECOND = 10.0
DEFAULT_MAX_IN_FLIGHT = 16


class LimiterStats(Struct, frozen=True):
    """What the limiter did, for metrics and the benchmark."""

    requests: int
    throttled: int
    waited_s: float
    rate_per_s: float


class RateLimiter:
    """Paces and caps the requests of one credential across threads (thread-safe)."""

    def __init__(
        self,
        *,
        rate_per_s: float = DEFAULT_RATE_PER_SECOND,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        min_rate_per_s: float | None = None,
        recovery_per_s: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not (math.isfinite(rate_per_s) and rate_per_s > 0):
            raise SettingsError(
                f"rate limit must be a positive number of requests/s; got {rate_per_s}"
            )
        if max_in_flight < 1:
            raise SettingsError(f"max_in_flight must be >= 1; got {max_in_flight}")
        self._max_rate = float(rate_per_s)
        self._min_rate = min(self._max_rate, min_rate_per_s or self._max_rate / 16)
        # Back to full speed about ten seconds after a throttle, unless throttled again.
        self._recovery = recovery_per_s if recovery_per_s is not None else self._max_rate / 10
        self._max_in_flight = max_in_flight
        self._monotonic = monotonic
        self._sleep = sleep
        self._cond = threading.Condition()
        self._rate = self._max_rate
        self._next_start = 0.0  # earliest start of the next request (monotonic seconds)
        self._paused_until = 0.0
        self._in_flight = 0
        self._requests = 0
        self._throttled = 0
        self._waited = 0.0

    def __repr__(self) -> str:
        return (
            f"RateLimiter(rate_per_s={self._rate:.3g}/{self._max_rate:.3g}, "
            f"max_in_flight={self._max_in_flight})"
        )

    @property
    def rate_per_s(self) -> float:
        """The current (possibly reduced) rate."""
        with self._cond:
            return self._rate

    @property
    def max_in_flight(self) -> int:
        return self._max_in_flight

    def stats(self) -> LimiterStats:
        with self._cond:
            return LimiterStats(self._requests, self._throttled, self._waited, self._rate)

    def acquire(self, max_wait: float | None = None) -> bool:
        """Wait for an in-flight slot and this request's turn; ``False`` (and nothing held)
        when that would take longer than ``max_wait`` seconds. Pair with :meth:`release`."""
        began = self._monotonic()
        give_up = None if max_wait is None else began + max(max_wait, 0.0)
        with self._cond:
            while self._in_flight >= self._max_in_flight:
                if give_up is None:
                    self._cond.wait()
                    continue
                left = give_up - self._monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            self._in_flight += 1
        try:
            while True:
                with self._cond:
                    now = self._monotonic()
                    start = max(now, self._next_start, self._paused_until)
                    if give_up is not None and start > give_up:
                        self._release_slot()
                        return False
                    self._next_start = start + 1.0 / self._rate
                if start > now:
                    self._sleep(start - now)
                with self._cond:
                    # A 429 that arrived while we slept pauses this request too.
                    if self._paused_until <= self._monotonic():
                        self._requests += 1
                        self._waited += self._monotonic() - began
                        return True
        except BaseException:
            with self._cond:
                self._release_slot()
            raise

    def release(self) -> None:
        """The request acquired earlier has finished (whatever its outcome)."""
        with self._cond:
            self._release_slot()

    @contextlib.contextmanager
    def request(self, max_wait: float | None = None) -> Iterator[bool]:
        """``with limiter.request() as granted:``; the slot is held only when ``granted``."""
        granted = self.acquire(max_wait)
        try:
            yield granted
        finally:
            if granted:
                self.release()

    def throttled(self, retry_after: float | None = None) -> None:
        """The server answered 429: slow every worker down, and pause them for ``retry_after``."""
        with self._cond:
            now = self._monotonic()
            self._throttled += 1
            self._rate = max(self._min_rate, self._rate / 2)
            if retry_after is not None and retry_after > 0:
                self._paused_until = max(self._paused_until, now + retry_after)
            self._next_start = max(self._next_start, now + 1.0 / self._rate)

    def succeeded(self) -> None:
        """A request was answered without throttling: creep back towards the full rate."""
        with self._cond:
            if self._rate < self._max_rate:
                # One success per 1/rate seconds, so this adds ``recovery`` per second.
                self._rate = min(self._max_rate, self._rate + self._recovery / self._rate)

    def _release_slot(self) -> None:
        self._in_flight -= 1
        self._cond.notify()
