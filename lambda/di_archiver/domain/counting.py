"""Exact event counts from DI's ``/events/count``, whatever the API does with ``end_time``.

DI filters at millisecond resolution and does not document whether ``end_time`` is inclusive.
Asking for ``[start, end - 1 ms]`` and accepting "either reading" (what we did first) hides a
shortfall behind the events of the window's last millisecond: a day missing 993 events whose
last millisecond held 1,333 looked like "DI counts fewer" and was never repaired. So every count
here is exact for the half-open window ``[start, end)``:

* once an org's ``end_time`` reading is known, one call: ``count(start, end)`` (exclusive) or
  ``count(start, end - 1 ms)`` (inclusive);
* before that, two calls whose difference is exact under both readings:
  ``count(start, end + 1 ms) - count(end, end + 1 ms)`` (inclusive: ``N[start, end + 2 ms) -
  N[end, end + 2 ms)``; exclusive: ``N[start, end + 1 ms) - N[end, end + 1 ms)``).

The reading is learnt from the API itself (:meth:`ExactCounter.learn`) at a millisecond ``t``
known to hold events: ``count(t-1ms, t) + count(t, t+1ms) - count(t-1ms, t+1ms)`` is the number
of events at ``t`` (at least one) when ``end_time`` is inclusive and exactly 0 when it is
exclusive. The answer is cached per org; a caller that sees a disagreement recounts with
:meth:`ExactCounter.recount`, which does not trust the cache and drops it when the two differ.
"""

from __future__ import annotations

from typing import Literal

from di_archiver.domain.ports import EventSource
from di_archiver.errors import ArchiverError
from di_archiver.timestamps import NS_PER_MS

EndTimeReading = Literal["inclusive", "exclusive"]


class ExactCounter:
    """Counts DI events in ``[start, end)`` exactly; learns each org's ``end_time`` reading."""

    def __init__(self, source: EventSource) -> None:
        self.source = source
        self._readings: dict[str, EndTimeReading] = {}
        self.calls = 0  # count requests sent (a figure for tests and reports)

    def reading(self, org_id: str) -> EndTimeReading | None:
        """The cached ``end_time`` reading of ``org_id`` (``None`` until learnt)."""
        return self._readings.get(org_id)

    def forget(self, org_id: str) -> None:
        self._readings.pop(org_id, None)

    def _count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        self.calls += 1
        return self.source.count(org_id, start_ns, end_ns)

    def learn(self, org_id: str, anchor_ns: int) -> EndTimeReading | None:
        """Probe the reading at the millisecond of ``anchor_ns``, which must hold an event DI
        still returns (e.g. an archived event of a recent day); ``None`` when inconclusive.

        The wider window is counted last: an event indexed during the probe can only make the
        overlap smaller, so a race never turns an exclusive API into an "inclusive" answer.
        """
        t = anchor_ns - anchor_ns % NS_PER_MS
        before = self._count(org_id, t - NS_PER_MS, t)
        after = self._count(org_id, t, t + NS_PER_MS)
        both = self._count(org_id, t - NS_PER_MS, t + NS_PER_MS)
        overlap = before + after - both
        reading: EndTimeReading | None
        if both < max(before, after):
            # The wider window counted fewer than a part of it: no reading explains that (an
            # event indexed meanwhile only adds), so learning from it would be a guess.
            reading = None
        elif overlap > 0:
            reading = "inclusive"  # the millisecond t was counted by both narrow windows
        elif overlap == 0 and after > 0:
            reading = "exclusive"  # t counted once, in [t, t+1ms) only
        else:
            reading = None  # the anchor holds no event any more, or counts moved meanwhile
        if reading is not None:
            self._readings[org_id] = reading
        return reading

    def learn_if_unknown(self, org_id: str, anchor_ns: int) -> EndTimeReading | None:
        known = self._readings.get(org_id)
        return known if known is not None else self.learn(org_id, anchor_ns)

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        """DI's exact number of events with ``start <= ts < end``."""
        _check_window(start_ns, end_ns)
        reading = self._readings.get(org_id)
        if reading == "exclusive":
            return self._count(org_id, start_ns, end_ns)
        if reading == "inclusive" and end_ns - start_ns > NS_PER_MS:
            return self._count(org_id, start_ns, end_ns - NS_PER_MS)
        return self.count_either(org_id, start_ns, end_ns)

    def count_either(self, org_id: str, start_ns: int, end_ns: int) -> int:
        """Exact under both readings of ``end_time`` (two calls); trusts no cache."""
        _check_window(start_ns, end_ns)
        whole = self._count(org_id, start_ns, end_ns + NS_PER_MS)
        tail = self._count(org_id, end_ns, end_ns + NS_PER_MS)
        return whole - tail

    def recount(self, org_id: str, start_ns: int, end_ns: int, previous: int) -> int:
        """Recount a window whose count disagreed with the archive, trusting no cache.

        When the result differs from ``previous`` (a count made with the cached reading), the
        cache is dropped: either the reading was wrong or DI changed meanwhile, and the next
        count must not rely on it.
        """
        exact = self.count_either(org_id, start_ns, end_ns)
        if exact != previous:
            self.forget(org_id)
        return exact


def _check_window(start_ns: int, end_ns: int) -> None:
    if start_ns % NS_PER_MS or end_ns % NS_PER_MS or end_ns <= start_ns:
        # DI filters at milliseconds: a window inside one cannot be counted exactly.
        raise ArchiverError(
            f"cannot count [{start_ns}, {end_ns}) exactly: bounds must be whole milliseconds "
            "with start < end"
        )
