"""Seeded, per-request fault injection with counters."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from di_archiver.simulator.config import FaultConfig


class FaultKind(StrEnum):
    """What can go wrong with one request."""

    THROTTLED = "429"
    THROTTLED_RETRY_AFTER = "429_retry_after"
    SERVER_ERROR = "500"
    UNAVAILABLE = "503"
    SLOW = "slow"
    TRUNCATED = "truncated"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class Fault:
    """A decided fault: its kind and, for slow answers and 429s, a duration in seconds."""

    kind: FaultKind
    seconds: float = 0.0


class FaultInjector:
    """Decides, per request, whether and how to fail; reproducible from ``FaultConfig.seed``.

    Queued faults (``queue``) take precedence over the random rates, so a test can script an
    exact sequence ("503, then reset, then succeed").
    """

    def __init__(self, config: FaultConfig) -> None:
        self._lock = threading.Lock()
        self._queued: deque[FaultKind] = deque()
        self.configure(config)

    def configure(self, config: FaultConfig) -> None:
        """Replace the rates and restart the seeded random stream."""
        with self._lock:
            self.config = config
            self._rng = random.Random(config.seed)

    def queue(self, *kinds: FaultKind | str) -> None:
        """Force the next requests to fail with ``kinds`` in order."""
        with self._lock:
            self._queued.extend(FaultKind(k) for k in kinds)

    def applies_to_token_endpoint(self) -> bool:
        return self.config.include_token_endpoint

    def decide(self) -> Fault | None:
        """The fault for the current request, or ``None``."""
        with self._lock:
            cfg = self.config
            if self._queued:
                kind: FaultKind | None = self._queued.popleft()
            else:
                kind = self._draw(cfg)
                if kind is FaultKind.THROTTLED and self._rng.random() < (
                    cfg.rate_429_retry_after_share
                ):
                    kind = FaultKind.THROTTLED_RETRY_AFTER
            if kind is None:
                return None
        if kind is FaultKind.SLOW:
            return Fault(kind, cfg.slow_ms / 1000)
        if kind is FaultKind.THROTTLED_RETRY_AFTER:
            return Fault(kind, float(cfg.retry_after_seconds))
        return Fault(kind)

    def _draw(self, cfg: FaultConfig) -> FaultKind | None:
        u = self._rng.random()
        for kind, rate in (
            (FaultKind.THROTTLED, cfg.rate_429),
            (FaultKind.SERVER_ERROR, cfg.rate_500),
            (FaultKind.UNAVAILABLE, cfg.rate_503),
            (FaultKind.SLOW, cfg.rate_slow),
            (FaultKind.TRUNCATED, cfg.rate_truncated),
            (FaultKind.RESET, cfg.rate_reset),
        ):
            if u < rate:
                return kind
            u -= rate
        return None
