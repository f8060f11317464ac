"""Exact counts from DI's count endpoint under both readings of ``end_time``."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from di_archiver.archive_format import event_timestamp_ns
from di_archiver.domain.counting import ExactCounter
from di_archiver.errors import ArchiverError
from di_archiver.timestamps import NS_PER_MS
from tests.unit.integrity.fakes import DAY0, ORG, FakeSource, day_ns, make_event

BASE = day_ns(DAY0)


def source_with(offsets_ns: list[int], *, inclusive: bool) -> FakeSource:
    source = FakeSource(now=BASE + 10**15, end_inclusive=inclusive)
    for index, offset in enumerate(offsets_ns):
        source.add(make_event(index, BASE + offset, "directory"))
    return source


def truth(source: FakeSource, start_ns: int, end_ns: int) -> int:
    return sum(1 for _, e in source.events if start_ns <= event_timestamp_ns(e) < end_ns)


# Events cluster on a few milliseconds (ties), including window edges.
offsets = st.lists(
    st.integers(min_value=0, max_value=40).map(lambda ms: ms * NS_PER_MS)
    | st.integers(min_value=0, max_value=40 * NS_PER_MS),
    max_size=60,
)
window = st.tuples(st.integers(0, 40), st.integers(1, 41)).filter(lambda w: w[0] < w[1])


@settings(max_examples=150, deadline=None)
@given(offsets, window, st.booleans())
def test_counts_are_exact_under_either_reading_learnt_or_not(
    events: list[int], bounds: tuple[int, int], inclusive: bool
) -> None:
    # Given a DI with either end_time reading and events piled on window edges
    source = source_with(events, inclusive=inclusive)
    counter = ExactCounter(source)
    start, end = (BASE + b * NS_PER_MS for b in bounds)

    # When the window is counted before the reading is known, then after learning it
    before = counter.count(ORG, start, end)
    anchor = next((BASE + e for e in events), None)
    learnt = counter.learn(ORG, anchor) if anchor is not None else None
    after = counter.count(ORG, start, end)

    # Then both counts are the exact number of events with start <= ts < end, and a learnt
    # reading is always the true one
    assert before == after == truth(source, start, end)
    assert learnt in (None, "inclusive" if inclusive else "exclusive")
    if anchor is not None:
        assert learnt is not None  # the anchor holds an event DI returns: always decisive


@pytest.mark.parametrize("inclusive", [True, False])
def test_a_shortfall_hidden_by_the_last_millisecond_is_counted(inclusive: bool) -> None:
    # Given a day whose last millisecond holds five events and which lacks two others
    day_end = 86_400_000 * NS_PER_MS
    source = source_with([day_end - 1 for _ in range(5)] + [7, 9], inclusive=inclusive)
    counter = ExactCounter(source)
    archived = 5  # the two events at 7 ns and 9 ns are missing from the archive

    # When DI's count of the whole day is asked, with and without a learnt reading
    unknown = counter.count(ORG, BASE, BASE + day_end)
    counter.learn(ORG, BASE + day_end - 1)
    known = counter.count(ORG, BASE, BASE + day_end)

    # Then both say 7, so the two missing events are visible as a difference
    assert unknown == known == archived + 2


def test_a_known_reading_costs_one_call_and_an_unknown_one_two() -> None:
    # Given a DI with an event to anchor on
    source = source_with([5 * NS_PER_MS], inclusive=False)
    counter = ExactCounter(source)

    # When counting before and after learning
    counter.count(ORG, BASE, BASE + 10 * NS_PER_MS)
    unknown_calls = counter.calls
    assert counter.learn(ORG, BASE + 5 * NS_PER_MS) == "exclusive"
    learnt_calls = counter.calls
    counter.count(ORG, BASE, BASE + 10 * NS_PER_MS)

    # Then two calls without the reading, three to learn it, one with it
    assert (unknown_calls, learnt_calls - unknown_calls, counter.calls - learnt_calls) == (2, 3, 1)


def test_an_empty_anchor_is_inconclusive_and_a_recount_drops_a_wrong_reading() -> None:
    # Given an inclusive DI, a probe at an empty millisecond, and a wrongly cached reading
    source = source_with([3 * NS_PER_MS, 4 * NS_PER_MS], inclusive=True)
    counter = ExactCounter(source)
    assert counter.learn(ORG, BASE + 20 * NS_PER_MS) is None
    counter.learn(ORG, BASE + 3 * NS_PER_MS)
    counter._readings[ORG] = "exclusive"  # as if DI had changed behaviour since

    # When a window ending on an event is counted with the wrong reading, then recounted
    wrong = counter.count(ORG, BASE, BASE + 4 * NS_PER_MS)
    exact = counter.recount(ORG, BASE, BASE + 4 * NS_PER_MS, wrong)

    # Then the recount is exact and the cache is gone (the next count trusts nothing)
    assert (wrong, exact) == (2, 1)
    assert counter.reading(ORG) is None
    assert counter.count(ORG, BASE, BASE + 4 * NS_PER_MS) == 1


def test_a_window_that_is_not_whole_milliseconds_is_refused() -> None:
    counter = ExactCounter(source_with([], inclusive=True))
    with pytest.raises(ArchiverError, match="whole milliseconds"):
        counter.count(ORG, BASE + 1, BASE + NS_PER_MS)
    with pytest.raises(ArchiverError, match="start < end"):
        counter.count(ORG, BASE, BASE)


class _CountsThatDoNotAddUp:
    """A DI whose two-millisecond window counts fewer events than one of its halves."""

    def __init__(self) -> None:
        self.answers = {(-1, 0): 0, (0, 1): 5, (-1, 1): 3}

    def count(self, org_id: str, start_ns: int, end_ns: int) -> int:
        return self.answers[((start_ns - BASE) // NS_PER_MS, (end_ns - BASE) // NS_PER_MS)]


def test_counts_that_shrink_as_the_window_grows_teach_no_reading() -> None:
    # Given a DI whose counts around the anchor are not monotonic (an overlap of 2 on their face)
    counter = ExactCounter(_CountsThatDoNotAddUp())  # type: ignore[arg-type]
    # When the end_time reading is probed there
    learnt = counter.learn(ORG, BASE)
    # Then nothing is learnt, so later counts keep the two-request form exact under both
    assert learnt is None
    assert counter.reading(ORG) is None
