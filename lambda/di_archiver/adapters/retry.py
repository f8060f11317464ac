"""Back-off policy for the DI API: exponential with full jitter, ``Retry-After`` wins when sent."""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Callable
from enum import StrEnum

from msgspec import Struct

# Statuses worth another attempt: throttling and the gateway/server hiccups DI clients retry.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class Jitter(StrEnum):
    FULL = "full"  # uniform in [0, cap]: spreads many clients best (AWS architecture blog)
    NONE = "none"  # deterministic cap; only for tools that want predictable waits


class RetryPolicy(Struct, frozen=True):
    """How often and how patiently a DI request is retried."""

    max_attempts: int = 8
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: Jitter = Jitter.FULL

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")

    def backoff(self, attempt: int, random: Callable[[], float]) -> float:
        """Delay before attempt ``attempt + 1`` (``attempt`` counts from 1) without a hint."""
        cap = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        if self.jitter is Jitter.FULL:
            return cap * random()
        return cap

    def delay(self, attempt: int, retry_after: float | None, random: Callable[[], float]) -> float:
        """The server's ``Retry-After`` (capped at ``max_delay``) if given, else the back-off."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        return self.backoff(attempt, random)


def parse_retry_after(value: str | None, *, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP date), else None."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive parse means the zone was omitted
        return None
    return max(when.timestamp() - now(), 0.0)
