"""Use cases ``archive`` (one pass over every configured org) and ``resnapshot`` (a window)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from di_archiver.application.runtime import Runtime
from di_archiver.domain.engine import OrgRunResult, RunReport
from di_archiver.errors import SettingsError
from di_archiver.observability import Mode
from di_archiver.settings import ArchiverSettings


@dataclass(frozen=True)
class ArchiveReport:
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
    orgs = [org_id] if org_id else list(settings.org_ids)
    runs = tuple(
        runtime.engine.resnapshot(org, start_ns, end_ns, remaining_seconds=remaining_seconds)
        for org in orgs
    )
    return ArchiveReport(Mode.RESNAPSHOT, runs, *runtime.api_stats())
