"""A controllable clock: real time by default, frozen or shifted when tests need it."""

from __future__ import annotations

import threading
import time

from di_archiver.timestamps import NS_PER_SECOND


class SimulatorClock:
    """The simulator's notion of "now" in epoch nanoseconds.

    Given ``now_ns`` the clock is frozen at that instant and moves only through
    :meth:`advance` / :meth:`set_ns`; without it, it follows real time plus any offset.
    """

    def __init__(self, now_ns: int | None = None) -> None:
        self._lock = threading.Lock()
        self._frozen = now_ns is not None
        self._value = now_ns if now_ns is not None else 0  # frozen value, or offset

    @property
    def frozen(self) -> bool:
        """True when the clock only moves by :meth:`advance` / :meth:`set_ns`."""
        return self._frozen

    def now_ns(self) -> int:
        """Current simulated time in epoch nanoseconds."""
        with self._lock:
            return self._value if self._frozen else time.time_ns() + self._value

    def advance(self, seconds: float) -> int:
        """Move the clock forward (or back, if negative); return the new now."""
        with self._lock:
            self._value += int(seconds * NS_PER_SECOND)
        return self.now_ns()

    def set_ns(self, ns: int) -> None:
        """Jump to ``ns``; a real-time clock keeps ticking from there."""
        with self._lock:
            self._value = ns if self._frozen else ns - time.time_ns()

    def __repr__(self) -> str:
        return f"SimulatorClock(now_ns={self.now_ns()}, frozen={self._frozen})"
