"""Use cases ``archive`` (one pass over every configured org) and ``resnapshot`` (a window)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec import Struct

from di_archiver.application.runtime import Runtime
from di_archiver.domain.engine import EngineRunError, OrgRunResult, RunReport
from di_archiver.errors import ArchiverError, SettingsError
from di_archiver.observability import Mode
from di_archiver.settings import ArchiverSettings
from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns


class ArchiveReport(Struct, frozen=True):
    """One archive or resnapshot pass: the engine's reports and the DI retries it absorbed."""

    mode: Mode
    runs: tuple[RunReport, ...]
    api_retries: int = 0
    api_errors_absorbed: int = 0

    @property
    def orgs(self) -> tuple[OrgRunResult, ...]:
        return tuple(org for run in self.runs for org in run.orgs)

    @property
    def events(self) -> int:
        return sum(run.events for run in self.runs)

    def summary(self) -> dict[str, Any]:
        """The small JSON summary the Lambda returns and logs."""
        orgs = self.orgs
        if self.mode is Mode.RESNAPSHOT:
            return {"mode": self.mode.value, "orgs": len(orgs), "events": self.events}
        lags = [o.freshness_lag_s for o in orgs if o.freshness_lag_s is not None]
        return {
            "mode": self.mode.value,
            "orgs": len(orgs),
            "events": sum(o.events for o in orgs),
            "buckets": sum(o.buckets for o in orgs),
            "buckets_written": sum(o.buckets_written for o in orgs),
            "bytes_written": sum(o.bytes_written for o in orgs),
            "freshness_lag_s": max(lags) if lags else None,
            "stopped_early": any(o.stopped_early for o in orgs),
        }


def archive(
    settings: ArchiverSettings,
    runtime: Runtime,
    *,
    remaining_seconds: Callable[[], float] | None = None,
) -> ArchiveReport:
    """Snapshot every open bucket of every configured org and advance the checkpoints.

    Raises ``EngineRunError`` (carrying the per-org report) when any org failed.
    """
    check_time_budget(settings, remaining_seconds)
    run = runtime.engine.run(list(settings.org_ids), remaining_seconds=remaining_seconds)
    return ArchiveReport(Mode.ARCHIVE, (run,), *runtime.api_stats())


def resnapshot(
    settings: ArchiverSettings,
    runtime: Runtime,
    *,
    start_ns: int,
    end_ns: int,
    org_id: str | None = None,
    remaining_seconds: Callable[[], float] | None = None,
) -> ArchiveReport:
    """Re-read ``[start, end)`` from DI for one configured org (or all) and merge it in."""
    if org_id is not None and org_id not in settings.org_ids:
        raise SettingsError("resnapshot org_id is not one of the configured DI_ARCHIVER_ORG_IDS")
    check_time_budget(settings, remaining_seconds)
    orgs = [org_id] if org_id else list(settings.org_ids)
    results: list[OrgRunResult] = []
    failures: list[tuple[str, ArchiverError]] = []
    for org in orgs:
        # One org's failure must not keep the others from their re-snapshot.
        try:
            run = runtime.engine.resnapshot(
                org, start_ns, end_ns, remaining_seconds=remaining_seconds
            )
        except EngineRunError as exc:
            run = exc.report
            failures.extend(exc.failures)
        results.extend(run.orgs)
        # A re-snapshot has no checkpoint to continue from: stopping for time is a failure
        # that says where to pick up, never a success summary that silently covers less.
        failures.extend(
            (o.org_id, _incomplete(o, start_ns, end_ns)) for o in run.orgs if _stopped(o)
        )
    combined = RunReport(tuple(results))
    if failures:
        raise EngineRunError(combined, failures) from failures[0][1]
    return ArchiveReport(Mode.RESNAPSHOT, (combined,), *runtime.api_stats())


class IncompleteResnapshotError(ArchiverError):
    """A re-snapshot ran out of time before the end of its window; the message says where to
    continue (what was written stays written)."""


def _stopped(result: OrgRunResult) -> bool:
    return result.stopped_early and result.error is None


def _incomplete(result: OrgRunResult, start_ns: int, end_ns: int) -> IncompleteResnapshotError:
    resume = result.covered_through_ns if result.covered_through_ns is not None else start_ns
    resume = max(resume, start_ns)
    return IncompleteResnapshotError(
        f"re-snapshot of org {result.org_id} is incomplete: it ran out of time after "
        f"{format_timestamp_ns(resume)} ({result.buckets} bucket(s) done); run it again with "
        f"start {format_timestamp_ns(resume)} and end {format_timestamp_ns(end_ns)} to finish"
    )


def check_time_budget(
    settings: ArchiverSettings, remaining_seconds: Callable[[], float] | None
) -> None:
    """SettingsError when the reserve leaves the invocation no time at all: every run would
    stop before its first bucket and report success."""
    if remaining_seconds is None:
        return
    reserve = settings.time_budget_reserve_seconds
    available = remaining_seconds()
    if reserve >= available:
        raise SettingsError(
            f"DI_ARCHIVER_TIME_BUDGET_RESERVE_SECONDS ({reserve} s) is not below the time this "
            f"invocation has ({available:.0f} s): every run would stop before its first "
            "bucket; set it well below the function timeout (default 60 of 900 s)"
        )


def planned_buckets(
    settings: ArchiverSettings, runtime: Runtime, *, window: tuple[int, int] | None = None
) -> int:
    """How many buckets a pass (or a re-snapshot of ``window``) will snapshot: for progress."""
    if window is not None:
        width = settings.bucket_minutes * 60 * NS_PER_SECOND
        start = window[0] - window[0] % width
        return len(settings.org_ids) * max(1, -(-(window[1] - start) // width))
    return sum(status.open_buckets for status in runtime.engine.status(list(settings.org_ids)))
