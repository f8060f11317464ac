"""The archiving engine: idempotent time-bucket snapshots with a forward-only checkpoint.

One run, per organisation (design.md section 3):

1. Load and validate the checkpoint (``closed_through``). The first run pins the backfill start,
   ``floor(now - lookback)`` aligned to the bucket width, as its checkpoint.
2. Plan the buckets from the checkpoint up to ``now - lag``. The newest bucket usually reaches
   past ``now - lag``: it is snapshotted partially (fetched up to ``now - lag``) and stays open,
   which keeps freshness at about the lag instead of lag + one bucket width.
3. Snapshot each bucket (fetch, split by service, one object per service; see
   :mod:`di_archiver.domain.snapshot`). While a bucket is open each event is read once: a
   bucket an earlier run archived up to a high-water mark (kept in the checkpoint) is first
   counted there (one ``/events/count`` request); when DI's count has not moved, only the
   events past the mark are read and merged into the stored objects, otherwise (late events)
   the whole bucket is read again. The run that closes a bucket reads it whole once more, so
   a closed bucket is DI's complete answer whatever a count cannot see (an event DI moved or
   dropped while another arrived, a lost object, racing runs). With ``pipeline`` on, bucket N is
   written on another thread while bucket N+1 is collected and, with more than one CPU
   (``prefetch``), pages are fetched and parsed one ahead on a thread across bucket
   boundaries: at most two buckets (plus one page) are in memory.
4. A bucket is closed when ``end <= now - lag`` and ``end + settle <= now``. The checkpoint
   advances to the end of the newest closed bucket only after its objects (and all earlier
   ones) were written. It is saved every ``checkpoint_every`` closed buckets or
   ``checkpoint_interval_s`` seconds (whichever comes first), at the end, and on the way out
   of a failure.
5. Stop starting buckets when ``remaining_seconds() < reserve``; the next run continues. A
   source with ``set_deadline`` (the DI client) is also bounded to ``remaining - reserve / 2``,
   so one slow or retried request cannot outlive the invocation; running out of time that way
   ends the org's run early (like the budget check) instead of failing it.

Organisations are independent: a failing org (401/402/403, a bucket too large, a broken
checkpoint) is recorded in the report and the others still run; the run then raises
:class:`EngineRunError` carrying the full report, so the Lambda invocation fails and alarms.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec
from msgspec import Struct
from msgspec.structs import replace

from di_archiver.domain.checkpoint import (
    MAX_OPEN_BUCKETS,
    Checkpoint,
    OpenBucket,
    load_checkpoint,
    save_checkpoint,
)
from di_archiver.domain.counting import ExactCounter
from di_archiver.domain.pipeline import run_ahead
from di_archiver.domain.planning import (
    NS_PER_MINUTE,
    PlannedBucket,
    align_down,
    align_up,
    count_buckets,
    horizon_of,
    is_closed,
    plan_buckets,
    validate_bucket_width,
)
from di_archiver.domain.ports import ArchiveStore, CheckpointStore, EventSource
from di_archiver.domain.scheduler import ContiguousPrefix, run_units
from di_archiver.domain.snapshot import (
    CollectedBucket,
    WriteOutcome,
    add_page,
    check_bucket_bytes,
    close_pages,
    collect_bucket,
    day_may_be_sealed,
    malformed_in_bucket,
    write_bucket,
)
from di_archiver.errors import (
    ArchiverError,
    DIBadRequestError,
    DIResponseError,
    DITransientError,
    SettingsError,
    UnexpectedError,
    describe_failure,
)
from di_archiver.layout import LayoutError, validate_org_id
from di_archiver.raw_events import MalformedEventError, RawEvent
from di_archiver.settings import ArchiverSettings
from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns

NS_PER_DAY = 86_400 * NS_PER_SECOND


@dataclass(frozen=True)
class EngineConfig:
    """Engine knobs in integer nanoseconds (built from :class:`ArchiverSettings`)."""

    prefix: str
    bucket_ns: int
    lag_ns: int
    settle_ns: int
    lookback_ns: int
    max_events_per_bucket: int
    time_budget_reserve_s: float
    checkpoint_every: int = 24
    pipeline: bool = True
    # With ``pipeline``, also fetch and parse the next page on a thread while this one is
    # encoded. That is parallel only where another CPU runs what releases the GIL (deflate,
    # hashing, the socket) beside the parse; on one CPU the two threads only trade the GIL and
    # each other's cache (measured: about 5 % more CPU for 200k events). DI's latency is
    # hidden either way: the client asks for the next page on this one's headers.
    prefetch: bool = field(default_factory=lambda: usable_cpus() > 1)
    max_bucket_bytes: int = 96 * 1024 * 1024
    checkpoint_interval_s: float = 60.0
    # Which archive the checkpoints belong to ("s3://bucket/prefix", "file:///dir/prefix");
    # None (tests, tools) neither records nor checks it.
    archive_id: str | None = None
    # DI keeps events this long; a checkpoint older than that would replay empty windows.
    retention_ns: int = 90 * NS_PER_DAY
    # Buckets (of any orgs) snapshotted at once; 1 keeps the single pipelined cursor.
    concurrency: int = 1

    def __post_init__(self) -> None:
        try:
            validate_bucket_width(self.bucket_ns)
        except LayoutError as exc:
            raise SettingsError(str(exc)) from None
        if min(self.lag_ns, self.settle_ns, self.lookback_ns) < 0:
            raise SettingsError("lag, settle and lookback must not be negative")
        if self.max_events_per_bucket < 1 or self.checkpoint_every < 1:
            raise SettingsError("max_events_per_bucket and checkpoint_every must be >= 1")
        if self.concurrency < 1:
            raise SettingsError("concurrency must be >= 1")
        if self.max_bucket_bytes < 1 or self.checkpoint_interval_s < 0:
            raise SettingsError("max_bucket_bytes must be >= 1, checkpoint_interval_s >= 0")

    @property
    def bucket_minutes(self) -> int:
        return self.bucket_ns // NS_PER_MINUTE

    @classmethod
    def from_settings(
        cls, settings: ArchiverSettings, *, archive_id: str | None = None
    ) -> EngineConfig:
        """Engine knobs from settings; ``archive_id`` defaults to :func:`archive_id_of`."""
        return cls(
            archive_id=archive_id if archive_id is not None else archive_id_of(settings),
            max_bucket_bytes=settings.max_bucket_bytes,
            prefix=settings.archive_prefix,
            bucket_ns=settings.bucket_minutes * NS_PER_MINUTE,
            lag_ns=settings.lag_seconds * NS_PER_SECOND,
            settle_ns=settings.settle_seconds * NS_PER_SECOND,
            lookback_ns=settings.lookback_days * NS_PER_DAY,
            max_events_per_bucket=settings.max_events_per_bucket,
            time_budget_reserve_s=float(settings.time_budget_reserve_seconds),
            concurrency=settings.concurrency,
        )


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, where the platform tells)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def archive_id_of(settings: ArchiverSettings) -> str:
    """Where the settings archive to, as recorded in checkpoints: ``s3://bucket/prefix`` or
    ``file:///absolute/dir/prefix``."""
    prefix = settings.archive_prefix.strip("/")
    if settings.archive_bucket is not None:
        return f"s3://{settings.archive_bucket}/{prefix}"
    assert settings.archive_dir is not None  # the settings model guarantees one of the two
    return Path(os.path.abspath(settings.archive_dir)).joinpath(prefix).as_uri()


class BucketResult(Struct, frozen=True):
    """What snapshotting one bucket did. ``events`` counts distinct in-range events fetched."""

    org_id: str
    start_ns: int
    end_ns: int
    events: int
    objects_written: int
    objects_unchanged: int
    bytes_written: int
    services: tuple[str, ...]
    unknown_service_events: int
    collisions: int
    closed: bool = False
    revised: int = 0  # archived events DI now returns changed; the new version replaced them


class OrgRunResult(Struct, frozen=True):
    """One organisation's part of a run; ``error`` is set when it failed (others still ran).

    ``checkpoint_after_ns`` is ``None`` only when the org has no checkpoint at all (a failure
    before its first run could pin one, or a re-snapshot of a never-archived org).
    """

    org_id: str
    checkpoint_before_ns: int | None
    checkpoint_after_ns: int | None
    buckets: int
    buckets_written: int
    buckets_unchanged: int
    events: int
    bytes_written: int
    freshness_lag_s: float
    stopped_early: bool
    error: str | None = None
    # End of the newest bucket this run finished (where a stopped re-snapshot resumes).
    covered_through_ns: int | None = None


class RunReport(Struct, frozen=True):
    orgs: tuple[OrgRunResult, ...]

    @property
    def buckets(self) -> int:
        return sum(o.buckets for o in self.orgs)

    @property
    def buckets_written(self) -> int:
        return sum(o.buckets_written for o in self.orgs)

    @property
    def buckets_unchanged(self) -> int:
        return sum(o.buckets_unchanged for o in self.orgs)

    @property
    def events(self) -> int:
        return sum(o.events for o in self.orgs)

    @property
    def bytes_written(self) -> int:
        return sum(o.bytes_written for o in self.orgs)

    @property
    def stopped_early(self) -> bool:
        return any(o.stopped_early for o in self.orgs)

    @property
    def freshness_lag_s(self) -> float:
        """The worst (largest) freshness lag over the orgs, 0.0 for an empty report."""
        return max((o.freshness_lag_s for o in self.orgs), default=0.0)

    @property
    def failed(self) -> tuple[OrgRunResult, ...]:
        return tuple(o for o in self.orgs if o.error is not None)


class OrgStatus(Struct, frozen=True):
    org_id: str
    checkpoint_ns: int | None
    lag_s: float | None
    open_buckets: int
    bucket_minutes: int


class EngineRunError(ArchiverError):
    """One or more organisations failed; ``report`` still describes every org of the run."""

    def __init__(self, report: RunReport, failures: Sequence[tuple[str, ArchiverError]]) -> None:
        details = "; ".join(f"org {org}: {type(exc).__name__}: {exc}" for org, exc in failures)
        super().__init__(f"{len(failures)} of {len(report.orgs)} organisation(s) failed: {details}")
        self.report = report
        self.failures = tuple(failures)


class RunObserver(Protocol):
    """Receives progress; the Lambda handler adapts it to Powertools metrics and logs."""

    def on_bucket(self, result: BucketResult) -> None: ...

    def on_org(self, result: OrgRunResult) -> None: ...

    def on_warning(self, message: str, **fields: object) -> None: ...


class NullObserver:
    """An observer that ignores everything."""

    def on_bucket(self, result: BucketResult) -> None:
        return None

    def on_org(self, result: OrgRunResult) -> None:
        return None

    def on_warning(self, message: str, **fields: object) -> None:
        return None


class _Progress(Struct):
    org_id: str
    now_ns: int = 0
    before_ns: int | None = None
    saved_ns: int | None = None
    saved_at_ns: int = 0  # engine clock when the checkpoint was last saved (or the run began)
    closed_through_ns: int | None = None
    covered_ns: int | None = None
    buckets: int = 0
    written: int = 0
    unchanged: int = 0
    events: int = 0
    bytes: int = 0
    stopped_early: bool = False
    error: str | None = None
    # Open buckets' high-water marks, loaded from the checkpoint and updated as buckets are
    # written; saved with the checkpoint.
    open_buckets: dict[int, OpenBucket] = msgspec.field(default_factory=dict)
    open_changed: bool = False

    def archived(self, collected: CollectedBucket) -> None:
        """Record a written bucket's high-water mark, so the next run reads on from there."""
        start = collected.start_ns
        self.open_buckets[start] = OpenBucket(start, collected.fetch_end_ns, collected.di_events)
        self.open_changed = True

    def count(self, result: BucketResult) -> None:
        """Add one finished bucket to the org's totals."""
        self.buckets += 1
        self.events += result.events
        self.bytes += result.bytes_written
        if result.objects_written:
            self.written += 1
        else:
            self.unchanged += 1

    def fail(self, exc: BaseException) -> ArchiverError:
        """Record why the org failed; a surprise is wrapped so every failure is an ArchiverError."""
        if isinstance(exc, ArchiverError):
            self.error = f"{type(exc).__name__}: {exc}"
            return exc
        _kind, text = describe_failure(exc)
        wrapped = UnexpectedError(f"org {self.org_id}: {text}")
        wrapped.__cause__ = exc
        self.error = f"UnexpectedError: {text}"
        return wrapped

    def result(self) -> OrgRunResult:
        covered = self.covered_ns if self.covered_ns is not None else self.closed_through_ns
        lag = 0.0 if covered is None else max(0, self.now_ns - covered) / NS_PER_SECOND
        return OrgRunResult(
            org_id=self.org_id,
            checkpoint_before_ns=self.before_ns,
            checkpoint_after_ns=self.saved_ns,
            buckets=self.buckets,
            buckets_written=self.written,
            buckets_unchanged=self.unchanged,
            events=self.events,
            bytes_written=self.bytes,
            freshness_lag_s=lag,
            stopped_early=self.stopped_early,
            error=self.error,
            covered_through_ns=self.covered_ns,
        )


class _Budget(Struct):
    remaining_seconds: Callable[[], float] | None
    reserve_s: float

    def exhausted(self) -> bool:
        return self.remaining_seconds is not None and self.remaining_seconds() < self.reserve_s

    def source_deadline(self) -> Callable[[], float] | None:
        """Seconds a source may still spend: half the reserve is kept to write and save."""
        remaining = self.remaining_seconds
        if remaining is None:
            return None
        keep = self.reserve_s / 2
        return lambda: remaining() - keep

    @contextlib.contextmanager
    def bounding(self, source: object) -> Iterator[None]:
        """Bound ``source``'s requests by the budget while the block runs, if it supports it."""
        set_deadline = getattr(source, "set_deadline", None)
        deadline = self.source_deadline()
        if set_deadline is None or deadline is None:
            yield
            return
        set_deadline(deadline)
        try:
            yield
        finally:
            set_deadline(None)


class _Writer:
    """Runs bucket writes inline, or on one worker thread so writing overlaps the next fetch."""

    def __init__(self, pipeline: bool) -> None:
        self.pipeline = pipeline
        self._executor: ThreadPoolExecutor | None = None

    def submit(self, fn: Callable[[], WriteOutcome]) -> Future[WriteOutcome]:
        if self.pipeline:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="di-archiver-write")
            return self._executor.submit(fn)
        future: Future[WriteOutcome] = Future()
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None


class ArchiveEngine:
    """Archives DI events of one or more organisations into an :class:`ArchiveStore`."""

    def __init__(
        self,
        *,
        source: EventSource,
        store: ArchiveStore,
        checkpoints: CheckpointStore,
        config: EngineConfig,
        clock: Callable[[], int] = time.time_ns,
        observer: RunObserver | None = None,
    ) -> None:
        self._source = source
        self._store = store
        self._checkpoints = checkpoints
        self._config = config
        self._clock = clock
        self._observer: RunObserver = observer or NullObserver()
        self._counter = ExactCounter(source)

    @property
    def config(self) -> EngineConfig:
        return self._config

    # -- public API -----------------------------------------------------------------------

    def run(
        self, org_ids: Sequence[str], *, remaining_seconds: Callable[[], float] | None = None
    ) -> RunReport:
        """Snapshot every open bucket of each org and advance its checkpoint.

        Raises :class:`EngineRunError` (with the full report) after all orgs ran if any failed.
        """
        for org_id in org_ids:
            validate_org_id(org_id)
        budget = _Budget(remaining_seconds, self._config.time_budget_reserve_s)
        with budget.bounding(self._source):
            if self._config.concurrency > 1:
                return self._run_concurrently(org_ids, budget)
            return self._for_each_org(
                org_ids, lambda org, p, w: self._archive_org(org, budget, p, w)
            )

    def resnapshot(
        self,
        org_id: str,
        start_ns: int,
        end_ns: int,
        *,
        remaining_seconds: Callable[[], float] | None = None,
    ) -> RunReport:
        """Re-snapshot every bucket overlapping ``[start, end)`` (closed or not).

        Buckets are aligned outward; buckets past ``now - lag`` are skipped or cut like in a
        run. The checkpoint is validated but never moved. Archived events are never removed.
        """
        validate_org_id(org_id)
        if end_ns <= start_ns:
            raise LayoutError("resnapshot needs start < end")
        budget = _Budget(remaining_seconds, self._config.time_budget_reserve_s)

        def work(org: str, progress: _Progress, writer: _Writer) -> None:
            now = progress.now_ns = self._clock()
            checkpoint = self._load(org, now)
            progress.before_ns = progress.saved_ns = (
                None if checkpoint is None else checkpoint.closed_through_ns
            )
            width, horizon = self._config.bucket_ns, horizon_of(now, self._config.lag_ns)
            first = align_down(start_ns, width)
            last = min(align_up(end_ns, width), align_up(horizon, width))
            buckets = (
                PlannedBucket(s, s + width, min(s + width, horizon), closed=False)
                for s in range(first, last, width)
            )
            self._archive_buckets(org, buckets, budget, progress, writer, advance=False)

        with budget.bounding(self._source):
            return self._for_each_org((org_id,), work)

    def snapshot_bucket(self, org_id: str, start_ns: int, end_ns: int) -> BucketResult:
        """Snapshot exactly one configured bucket now (for reconcile); checkpoint untouched."""
        validate_org_id(org_id)
        width = self._config.bucket_ns
        if start_ns % width or end_ns - start_ns != width:
            raise LayoutError(
                f"[{start_ns}, {end_ns}) is not one {self._config.bucket_minutes}-minute bucket"
            )
        now = self._clock()
        fetch_end = min(end_ns, horizon_of(now, self._config.lag_ns))
        closed = is_closed(
            end_ns, now_ns=now, lag_ns=self._config.lag_ns, settle_ns=self._config.settle_ns
        )
        if fetch_end <= start_ns:
            result = BucketResult(org_id, start_ns, end_ns, 0, 0, 0, 0, (), 0, 0, closed)
        else:
            collected = self._collect(org_id, PlannedBucket(start_ns, end_ns, fetch_end, closed))
            result = self._result(collected, self._write(collected, now))
        self._observer.on_bucket(result)
        return result

    def status(self, org_ids: Sequence[str]) -> list[OrgStatus]:
        """Checkpoint, lag and open buckets per org (reads checkpoints only)."""
        now = self._clock()
        statuses = []
        for org_id in org_ids:
            validate_org_id(org_id)
            checkpoint = self._load(org_id, now)
            if checkpoint is None:
                start = align_down(now - self._config.lookback_ns, self._config.bucket_ns)
                checkpoint_ns: int | None = None
                lag_s: float | None = None
            else:
                start = checkpoint_ns = checkpoint.closed_through_ns
                lag_s = max(0, now - start) / NS_PER_SECOND
            open_buckets = count_buckets(
                start_ns=start,
                now_ns=now,
                bucket_ns=self._config.bucket_ns,
                lag_ns=self._config.lag_ns,
            )
            statuses.append(
                OrgStatus(org_id, checkpoint_ns, lag_s, open_buckets, self._config.bucket_minutes)
            )
        return statuses

    # -- per org --------------------------------------------------------------------------

    def _for_each_org(
        self, org_ids: Iterable[str], work: Callable[[str, _Progress, _Writer], None]
    ) -> RunReport:
        results: list[OrgRunResult] = []
        failures: list[tuple[str, ArchiverError]] = []
        writer = _Writer(self._config.pipeline)
        try:
            for org_id in org_ids:
                progress = _Progress(org_id)
                try:
                    work(org_id, progress, writer)
                except Exception as exc:
                    # A surprise in one org must not starve the orgs after it on every run;
                    # what this org had checkpointed is durable, so carrying on is safe.
                    failures.append((org_id, progress.fail(exc)))
                result = progress.result()
                results.append(result)
                self._observer.on_org(result)
        finally:
            writer.close()
        report = RunReport(tuple(results))
        if failures:
            raise EngineRunError(report, failures) from failures[0][1]
        return report

    def _run_concurrently(self, org_ids: Sequence[str], budget: _Budget) -> RunReport:
        """Every org's buckets as independent units, ``concurrency`` at once, orgs in turn."""
        orgs = [_ConcurrentOrg(self, org_id, budget) for org_id in org_ids]
        run_units(orgs, concurrency=self._config.concurrency, exhausted=budget.exhausted)
        report = RunReport(tuple(org.progress.result() for org in orgs))
        failures = [(org.org_id, org.error) for org in orgs if org.error is not None]
        if failures:
            raise EngineRunError(report, failures) from failures[0][1]
        return report

    def _snapshot_unit(self, org_id: str, planned: PlannedBucket, now_ns: int) -> _UnitDone:
        """Fetch and write one bucket on a worker thread; only a small summary comes back,
        so the bucket's lines are freed as soon as its objects are written."""
        collected = self._collect(org_id, planned)
        outcome = self._write(collected, now_ns)
        return _UnitDone(self._summarise(collected, outcome), collected)

    def _stopped_for_time(self, org_id: str, progress: _Progress, exc: DITransientError) -> None:
        # The source gave up because the invocation is ending (its deadline), not because DI
        # failed for good: what is written stays, and the next run continues from there.
        progress.stopped_early = True
        self._observer.on_warning(
            "ran out of time inside a bucket; it is left for the next run",
            org_id=org_id,
            reason=str(exc),
        )

    def _load(self, org_id: str, now: int) -> Checkpoint | None:
        return load_checkpoint(
            self._checkpoints,
            org_id,
            bucket_ns=self._config.bucket_ns,
            now_ns=now,
            archive_id=self._config.archive_id,
        )

    def _checkpoint(self, closed_through_ns: int) -> Checkpoint:
        config = self._config
        return Checkpoint(
            closed_through_ns, config.bucket_minutes, self._clock(), archive=config.archive_id
        )

    def _start_org(self, org_id: str, progress: _Progress) -> Iterator[PlannedBucket]:
        """Load (or pin) the org's checkpoint and plan its buckets from there."""
        config = self._config
        now = progress.now_ns = self._clock()
        checkpoint = self._load(org_id, now)
        if checkpoint is None:
            # Pin the backfill start so a first run that stops early resumes exactly there; it
            # is also where the archive begins (sealing vouches only for days from there on).
            start = align_down(now - config.lookback_ns, config.bucket_ns)
            pinned = replace(self._checkpoint(start), archived_from_ns=start)
            save_checkpoint(self._checkpoints, org_id, pinned)
        else:
            start = progress.before_ns = checkpoint.closed_through_ns
            edge = align_down(now - config.retention_ns, config.bucket_ns)
            if start < edge and not self._holds_events(org_id, start, edge):
                self._observer.on_warning(
                    f"the checkpoint ({format_timestamp_ns(start)}) is older than DI's "
                    f"retention ({config.retention_ns // NS_PER_DAY} days): DI no longer holds "
                    f"events before {format_timestamp_ns(edge)}, so the run starts there "
                    "instead of replaying empty windows; if the archive should hold that "
                    "period, it was not archived in time",
                    org_id=org_id,
                    checkpoint=format_timestamp_ns(start),
                    retention_edge=format_timestamp_ns(edge),
                )
                start = edge
        progress.saved_ns = progress.closed_through_ns = progress.covered_ns = start
        progress.saved_at_ns = self._clock()
        if checkpoint is not None:
            # Marks past what this run plans would never be replaced: drop them.
            horizon = horizon_of(now, config.lag_ns)
            progress.open_buckets = {
                b.start_ns: b for b in checkpoint.open_buckets if start <= b.start_ns < horizon
            }
        planned = plan_buckets(
            start_ns=start,
            now_ns=now,
            bucket_ns=config.bucket_ns,
            lag_ns=config.lag_ns,
            settle_ns=config.settle_ns,
        )
        return (self._with_archived_part(bucket, progress.open_buckets) for bucket in planned)

    @staticmethod
    def _with_archived_part(
        planned: PlannedBucket, open_buckets: dict[int, OpenBucket]
    ) -> PlannedBucket:
        known = open_buckets.get(planned.start_ns)
        if planned.closed or known is None or known.through_ns > planned.fetch_end_ns:
            # Closing, unknown, or archived past what this run may read: read it whole.
            return planned
        return replace(planned, archived_through_ns=known.through_ns, archived_events=known.events)

    def _read_plan(self, org_id: str, planned: PlannedBucket) -> PlannedBucket:
        """``planned`` if DI still counts the archived part's events (read only what follows
        it), else the bucket to be read whole: late events arrived in the archived part.

        One request with ``end_time = through``: whichever way DI reads ``end_time`` that
        counts at least the archived part, so an equal count means nothing arrived there. Only
        a different count pays for the exact two-request count (it may be the events of the
        mark's own millisecond, counted by an inclusive ``end_time``).
        """
        through = planned.archived_through_ns
        if through is None:
            return planned
        expected = planned.archived_events
        counted: int | None
        try:
            counted = self._source.count(org_id, planned.start_ns, through)
            if counted != expected:
                counted = self._counter.count_either(org_id, planned.start_ns, through)
        except (DIResponseError, DIBadRequestError) as exc:
            # Counting only saves reads; a count DI refuses or garbles must not stop archiving.
            self._observer.on_warning(
                "DI did not count an open bucket's archived part; the bucket is read whole",
                org_id=org_id,
                bucket_start_ns=planned.start_ns,
                reason=str(exc),
            )
            counted = None
        if counted == expected:
            return planned
        return replace(planned, archived_through_ns=None, archived_events=0)

    def _holds_events(self, org_id: str, start_ns: int, end_ns: int) -> bool:
        """Whether DI still returns events before its retention edge (retention is DI's to
        apply: a constant is no proof that they are gone). A query DI refuses outright there
        holds nothing it would serve either; a transient failure fails the org for this run."""
        try:
            return self._source.count(org_id, start_ns, end_ns) > 0
        except DIBadRequestError:
            return False

    def _archive_org(
        self, org_id: str, budget: _Budget, progress: _Progress, writer: _Writer
    ) -> None:
        buckets = self._start_org(org_id, progress)
        try:
            self._archive_buckets(org_id, buckets, budget, progress, writer, advance=True)
        except BaseException:
            # Keep what is durably done; the original error matters more than a failed save.
            with contextlib.suppress(ArchiverError):
                self._save_progress(org_id, progress)
            raise
        self._save_progress(org_id, progress)

    def _archive_buckets(
        self,
        org_id: str,
        buckets: Iterator[PlannedBucket],
        budget: _Budget,
        progress: _Progress,
        writer: _Writer,
        *,
        advance: bool,
    ) -> None:
        pending: tuple[CollectedBucket, Future[WriteOutcome]] | None = None
        stream = self._page_stream(org_id, buckets, budget)
        if self._config.pipeline and self._config.prefetch:
            stream = run_ahead(stream, name="di-archiver-fetch")
        collected: CollectedBucket | None = None
        try:
            for planned, page in stream:
                if planned is None:
                    progress.stopped_early = True
                    break
                if collected is None:
                    collected = CollectedBucket.of(org_id, planned)
                if page is not None:
                    add_page(collected, page, max_events=self._config.max_events_per_bucket)
                    # Free this page's objects before the next one is waited for.
                    del page
                    check_bucket_bytes(collected, self._config.max_bucket_bytes)
                    continue
                # End of the bucket: write it while the next one is already being fetched.
                if pending is not None:
                    done, pending = pending, None
                    self._finish(*done, progress, advance=advance)
                write = functools.partial(self._write, collected, progress.now_ns)
                pending, collected = (collected, writer.submit(write)), None
        except DITransientError as exc:
            if not budget.exhausted():
                if pending is not None:
                    with contextlib.suppress(Exception):
                        self._finish(*pending, progress, advance=advance)
                raise
            self._stopped_for_time(org_id, progress, exc)
        except BaseException:
            if pending is not None:
                # Record a write that did succeed so the checkpoint may still cover it.
                with contextlib.suppress(Exception):
                    self._finish(*pending, progress, advance=advance)
            raise
        finally:
            close_pages(stream)
        if pending is not None:
            done, pending = pending, None
            self._finish(*done, progress, advance=advance)

    def _page_stream(
        self, org_id: str, buckets: Iterator[PlannedBucket], budget: _Budget
    ) -> Iterator[tuple[PlannedBucket | None, Sequence[RawEvent] | None]]:
        """``(bucket, page)`` for every page, ``(bucket, None)`` at each bucket's end, and
        ``(None, None)`` when the time budget forbids starting the next bucket.

        One stream across buckets, so with ``run_ahead`` the next bucket's first page is
        requested while the current bucket's last page is still being processed.
        """
        for planned in buckets:
            if budget.exhausted():
                yield None, None
                return
            plan = self._read_plan(org_id, planned)
            if plan.reads_from_ns >= plan.fetch_end_ns:
                yield plan, None  # archived through what this run may read
                continue
            pages = self._source.iter_pages(org_id, plan.reads_from_ns, plan.fetch_end_ns)
            try:
                for page in pages:
                    yield plan, page
                    del page  # not kept alive while the next page is fetched
            except MalformedEventError as exc:
                raise malformed_in_bucket(
                    exc, org_id, planned.start_ns, planned.end_ns
                ) from exc.__cause__
            finally:
                close_pages(pages)
            yield plan, None

    def _collect(self, org_id: str, planned: PlannedBucket) -> CollectedBucket:
        return collect_bucket(
            self._source,
            org_id,
            self._read_plan(org_id, planned),
            max_events=self._config.max_events_per_bucket,
            max_bytes=self._config.max_bucket_bytes,
        )

    def _write(self, collected: CollectedBucket, now: int) -> WriteOutcome:
        config = self._config
        return write_bucket(
            self._store,
            collected,
            prefix=config.prefix,
            fetched_at_ns=self._clock(),
            consult_sealed_day=day_may_be_sealed(
                collected.start_ns, now_ns=now, lag_ns=config.lag_ns, settle_ns=config.settle_ns
            ),
        )

    def _result(self, collected: CollectedBucket, outcome: WriteOutcome) -> BucketResult:
        unknown = collected.unknown_services
        self._warn_bucket(collected.org_id, collected.start_ns, unknown, outcome.revised)
        return self._summarise(collected, outcome)

    def _warn_bucket(
        self, org_id: str, start_ns: int, unknown: dict[str, int], revised: int
    ) -> None:
        for service, count in sorted(unknown.items()):
            self._observer.on_warning(
                "archived events of a service this di-archiver version does not know; "
                "they are kept under their own partition (upgrade to have Athena see them)",
                org_id=org_id,
                service=service,
                events=count,
                bucket_start_ns=start_ns,
            )
        if revised:
            self._observer.on_warning(
                f"DI revised {revised} archived event(s): the same (timestamp, id) came "
                "back with different content; DI's current version replaced the archived one",
                org_id=org_id,
                events=revised,
                bucket_start_ns=start_ns,
            )

    @staticmethod
    def _summarise(collected: CollectedBucket, outcome: WriteOutcome) -> BucketResult:
        unknown = collected.unknown_services
        return BucketResult(
            org_id=collected.org_id,
            start_ns=collected.start_ns,
            end_ns=collected.end_ns,
            events=outcome.events,
            objects_written=outcome.objects_written,
            objects_unchanged=outcome.objects_unchanged,
            bytes_written=outcome.bytes_written,
            services=tuple(sorted(collected.by_service)),
            unknown_service_events=sum(unknown.values()),
            collisions=outcome.collisions,
            closed=collected.closed,
            revised=outcome.revised,
        )

    def _finish(
        self,
        collected: CollectedBucket,
        future: Future[WriteOutcome],
        progress: _Progress,
        *,
        advance: bool,
    ) -> None:
        outcome = future.result()
        result = self._result(collected, outcome)
        progress.count(result)
        if advance:
            progress.archived(collected)
        progress.covered_ns = collected.fetch_end_ns
        self._observer.on_bucket(result)
        if advance and collected.closed and collected.start_ns == progress.closed_through_ns:
            progress.closed_through_ns = collected.end_ns
            self._save_if_due(collected.org_id, progress)

    def _save_if_due(self, org_id: str, progress: _Progress) -> None:
        config = self._config
        saved = progress.saved_ns
        target = progress.closed_through_ns
        if target is None:
            return
        due_by_count = saved is None or target - saved >= config.checkpoint_every * config.bucket_ns
        # Slow buckets (big ones, a throttling API) would otherwise leave up to
        # checkpoint_every buckets to redo after a crash or a killed invocation.
        elapsed_s = (self._clock() - progress.saved_at_ns) / NS_PER_SECOND
        if due_by_count or elapsed_s >= config.checkpoint_interval_s:
            self._save_progress(org_id, progress)

    def _save_progress(self, org_id: str, progress: _Progress) -> None:
        target = progress.closed_through_ns
        if target is None:
            return
        moved = progress.saved_ns is None or target > progress.saved_ns
        if not moved and not progress.open_changed:
            return
        open_buckets = sorted(
            (b for b in progress.open_buckets.values() if b.start_ns >= target),
            key=lambda b: b.start_ns,
        )[-MAX_OPEN_BUCKETS:]
        checkpoint = replace(self._checkpoint(target), open_buckets=tuple(open_buckets))
        save_checkpoint(self._checkpoints, org_id, checkpoint)
        progress.saved_ns = target
        progress.saved_at_ns = self._clock()
        progress.open_changed = False


class _ConcurrentOrg:
    """One org of a concurrent run: plans lazily, keeps the checkpoint on a gap-free prefix.

    Every method except :meth:`run_unit` runs on the scheduler's (caller's) thread.
    """

    def __init__(self, engine: ArchiveEngine, org_id: str, budget: _Budget) -> None:
        self.engine = engine
        self.org_id = org_id
        self.budget = budget
        self.progress = _Progress(org_id)
        self.error: ArchiverError | None = None
        self._buckets: Iterator[PlannedBucket] | None = None
        self._prefix: ContiguousPrefix | None = None

    def next_bucket(self) -> PlannedBucket | None:
        if self._buckets is None:
            # The checkpoint is read when the org's turn first comes, not for all orgs up front.
            self._buckets = self.engine._start_org(self.org_id, self.progress)
            assert self.progress.closed_through_ns is not None
            self._prefix = ContiguousPrefix(self.progress.closed_through_ns)
        return next(self._buckets, None)

    def run_unit(self, planned: PlannedBucket) -> _UnitDone:
        return self.engine._snapshot_unit(self.org_id, planned, self.progress.now_ns)

    def unit_done(self, planned: PlannedBucket, value: _UnitDone) -> None:
        result, collected = value.result, value.collected
        engine, progress = self.engine, self.progress
        engine._warn_bucket(
            self.org_id, planned.start_ns, collected.unknown_services, result.revised
        )
        progress.count(result)
        progress.archived(collected)
        engine._observer.on_bucket(result)
        assert self._prefix is not None
        advanced = False
        for bucket in self._prefix.add(planned):
            progress.covered_ns = bucket.fetch_end_ns
            # Closed buckets are a prefix of the plan, so the first open one ends the advance.
            if bucket.closed:
                progress.closed_through_ns = bucket.end_ns
                advanced = True
        if advanced:
            engine._save_if_due(self.org_id, progress)

    def unit_failed(self, planned: PlannedBucket | None, exc: BaseException) -> None:
        if isinstance(exc, DITransientError) and self.budget.exhausted():
            self.engine._stopped_for_time(self.org_id, self.progress, exc)
            return
        if self.error is not None:
            return  # the first failure is the one reported; others are its echoes
        self.error = self.progress.fail(exc)

    def stopped_by_budget(self) -> None:
        self.progress.stopped_early = True

    def finished(self) -> None:
        try:
            self.engine._save_progress(self.org_id, self.progress)
        except ArchiverError as exc:
            # Keep the original failure when there is one; it matters more than the save.
            if self.error is None:
                self.unit_failed(None, exc)
        self.engine._observer.on_org(self.progress.result())


class _UnitDone(Struct, frozen=True):
    """A bucket written on a worker thread; ``collected`` keeps its counts, its lines freed."""

    result: BucketResult
    collected: CollectedBucket
