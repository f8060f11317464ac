"""Run self-contained per-bucket work units of many organisations on a few threads.

Time buckets are independent (design.md section 3): a unit fetches one (org, bucket) and writes
its objects, and nothing else depends on it except the org's checkpoint. So the API's rate
ceiling, not its latency, can bound a run: ``concurrency`` units are in flight at once (the
shared per-credential rate limiter paces their requests), and memory is bounded by those units,
not by the window.

Rules the scheduler keeps:

* **fair**: orgs take turns (round robin), so with many orgs every org's oldest bucket is
  archived before any org's second one; one big org never starves the others;
* **isolated**: a unit that fails stops only its org (no new units; those in flight finish);
  the other orgs carry on;
* **budget**: no unit starts once ``exhausted()`` says the invocation is ending; running ones
  finish;
* every callback except :meth:`OrgWork.run_unit` runs on the caller's thread, so the engine's
  bookkeeping (checkpoints, observers) needs no locks.

:class:`ContiguousPrefix` is what makes out-of-order completion safe for the checkpoint: it
advances only over a gap-free run of finished buckets from the checkpoint.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Generic, Protocol, TypeVar

from di_archiver.domain.planning import PlannedBucket

T = TypeVar("T")


class OrgWork(Protocol[T]):
    """One organisation's part of a concurrent run, as the scheduler drives it."""

    def next_bucket(self) -> PlannedBucket | None:
        """The next bucket to start (oldest first), or ``None`` when there is none left.

        May raise: the org then fails before any more of its units start."""

    def run_unit(self, planned: PlannedBucket) -> T:
        """Snapshot one bucket (runs on a worker thread; must not touch shared state)."""

    def unit_done(self, planned: PlannedBucket, value: T) -> None:
        """A unit finished (caller's thread)."""

    def unit_failed(self, planned: PlannedBucket | None, exc: BaseException) -> None:
        """A unit (``planned``), or planning the next one (``None``), raised (caller's
        thread); no more units of this org start."""

    def stopped_by_budget(self) -> None:
        """No more units of this org start: the invocation's time is running out."""

    def finished(self) -> None:
        """Nothing of this org is in flight and nothing more will start (caller's thread)."""


class _Org(Generic[T]):
    __slots__ = ("closed", "in_flight", "work")

    def __init__(self, work: OrgWork[T]) -> None:
        self.work = work
        self.in_flight = 0
        self.closed = False  # no more units will start


def run_units(
    orgs: Sequence[OrgWork[T]],
    *,
    concurrency: int,
    exhausted: Callable[[], bool] | None = None,
    thread_name_prefix: str = "di-archiver-bucket",
) -> None:
    """Drive every org's units to completion, ``concurrency`` at a time, orgs in turn.

    Returns when every org's :meth:`OrgWork.finished` was called. A ``BaseException`` that is
    not an ``Exception`` (KeyboardInterrupt, SystemExit) stops starting units, waits for the
    running ones, and propagates.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be >= 1")
    states = [_Org(work) for work in orgs]
    turns: deque[_Org[T]] = deque(states)
    running: dict[Future[T], tuple[_Org[T], PlannedBucket]] = {}
    finished: set[int] = set()

    def close(state: _Org[T]) -> None:
        state.closed = True
        if state.in_flight == 0 and id(state) not in finished:
            finished.add(id(state))
            state.work.finished()

    with ThreadPoolExecutor(concurrency, thread_name_prefix=thread_name_prefix) as pool:
        try:
            while True:
                while len(running) < concurrency and turns:
                    state = turns.popleft()
                    if state.closed:
                        continue
                    if exhausted is not None and exhausted():
                        for waiting in (state, *turns):
                            if not waiting.closed:
                                waiting.work.stopped_by_budget()
                                close(waiting)
                        turns.clear()
                        break
                    try:
                        planned = state.work.next_bucket()
                    except Exception as exc:
                        state.work.unit_failed(None, exc)
                        close(state)
                        continue
                    if planned is None:
                        close(state)
                        continue
                    future = pool.submit(state.work.run_unit, planned)
                    running[future] = (state, planned)
                    state.in_flight += 1
                    turns.append(state)
                if not running:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    state, planned = running.pop(future)
                    state.in_flight -= 1
                    error = future.exception()
                    if error is not None and not isinstance(error, Exception):
                        raise error
                    try:
                        if error is not None:
                            raise error
                        state.work.unit_done(planned, future.result())
                    except Exception as failure:
                        state.work.unit_failed(planned, failure)
                        state.closed = True
                    if state.closed:
                        close(state)
        except BaseException:
            # Interrupted: start nothing more; the pool's exit waits for the running units.
            turns.clear()
            for future in running:
                future.cancel()
            raise


class ContiguousPrefix:
    """The end of the gap-free run of finished buckets from ``start``.

    Units finish in any order; a checkpoint may only move over buckets that are *all* durably
    written, so finished buckets past a gap wait here until the gap is filled.
    """

    def __init__(self, start_ns: int) -> None:
        self._end = start_ns
        self._waiting: dict[int, PlannedBucket] = {}

    @property
    def end_ns(self) -> int:
        return self._end

    @property
    def waiting(self) -> int:
        """Finished buckets held back by a gap."""
        return len(self._waiting)

    def add(self, planned: PlannedBucket) -> list[PlannedBucket]:
        """Record a finished bucket; return the buckets that now join the prefix, in order."""
        if planned.start_ns < self._end or planned.start_ns in self._waiting:
            raise ValueError("a bucket finished twice or before the prefix start")
        self._waiting[planned.start_ns] = planned
        joined = []
        while self._end in self._waiting:
            bucket = self._waiting.pop(self._end)
            joined.append(bucket)
            self._end = bucket.end_ns
        return joined
