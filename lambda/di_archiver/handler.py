"""The Lambda entry point: parse the event, call the engine once, return a small summary.

Invocation events:
    {"mode": "archive"}  (also any EventBridge scheduled event, or no mode at all)
    {"mode": "resnapshot", "start": "<RFC 3339>", "end": "<RFC 3339>", "org_id": "<optional>"}

Failures re-raise after logging and a ``RunFailed`` metric, so the asynchronous invocation is
retried, lands in the DLQ, and the Errors alarm fires.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from di_archiver.errors import ArchiverError, DIApiError, SettingsError, UnexpectedError
from di_archiver.observability import Mode
from di_archiver.settings import ArchiverSettings
from di_archiver.telemetry import MetricsObserver, mask_org_id, powertools
from di_archiver.timestamps import parse_timestamp_ns

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from di_archiver.domain.engine import RunReport
    from di_archiver.wiring import Runtime


class Invocation(BaseModel):
    """The invocation event; unknown fields (EventBridge's envelope) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mode: Mode = Mode.ARCHIVE
    start: str | None = Field(default=None, description="Resnapshot window start (RFC 3339).")
    end: str | None = Field(default=None, description="Resnapshot window end (RFC 3339).")
    org_id: str | None = Field(default=None, description="Resnapshot one org (default: all).")
    days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Verify only objects and manifests of the last N UTC days (default: all).",
    )

    @field_validator("start", "end")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timestamp_ns(value)
        return value

    @model_validator(mode="after")
    def _window(self) -> Invocation:
        if self.mode is Mode.RESNAPSHOT:
            if self.start is None or self.end is None:
                raise ValueError("resnapshot needs 'start' and 'end' (RFC 3339)")
            if parse_timestamp_ns(self.start) >= parse_timestamp_ns(self.end):
                raise ValueError("resnapshot 'start' must be before 'end'")
        return self

    @property
    def window_ns(self) -> tuple[int, int]:
        assert self.start is not None
        assert self.end is not None
        return parse_timestamp_ns(self.start), parse_timestamp_ns(self.end)


def parse_invocation(event: Any) -> Invocation:
    """Validate the invocation event into :class:`Invocation` (a SettingsError if invalid)."""
    if not isinstance(event, dict):
        event = {}
    if event.get("source") == "aws.events" and "mode" not in event:
        event = {}  # a scheduled rule with the default input: archive
    try:
        return Invocation.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise SettingsError(f"invalid invocation event: {problems}") from None


# -- cold-start state ------------------------------------------------------------------------

_settings: ArchiverSettings | None = None


def get_settings() -> ArchiverSettings:
    """Settings from the environment, read once per cold start."""
    global _settings  # noqa: PLW0603 (one cache per Lambda container, by design)
    if _settings is None:
        _settings = ArchiverSettings.from_env(os.environ)
    return _settings


def reset_for_tests() -> None:
    """Forget cached settings (tests change the environment between invocations)."""
    global _settings  # noqa: PLW0603
    _settings = None


# Tests replace this to inject moto-free clients or a simulator HTTP client; production wires
# real boto3 clients lazily.
RuntimeFactory = Callable[[ArchiverSettings, MetricsObserver], "Runtime"]


def _default_runtime(settings: ArchiverSettings, observer: MetricsObserver) -> Runtime:
    from di_archiver.wiring import build_runtime  # noqa: PLC0415

    return build_runtime(settings, observer=observer)


runtime_factory: RuntimeFactory = _default_runtime


# -- modes -----------------------------------------------------------------------------------


def _summary(mode: Mode, report: RunReport) -> dict[str, Any]:
    orgs = list(report.orgs)
    lags = [o.freshness_lag_s for o in orgs if o.freshness_lag_s is not None]
    return {
        "mode": mode.value,
        "orgs": len(orgs),
        "events": sum(o.events for o in orgs),
        "buckets": sum(o.buckets for o in orgs),
        "buckets_written": sum(o.buckets_written for o in orgs),
        "bytes_written": sum(o.bytes_written for o in orgs),
        "freshness_lag_s": max(lags) if lags else None,
        "stopped_early": any(o.stopped_early for o in orgs),
    }


def _archive(
    invocation: Invocation,
    runtime: Runtime,
    settings: ArchiverSettings,
    remaining_s: Callable[[], float],
) -> dict[str, Any]:
    report = runtime.engine.run(list(settings.org_ids), remaining_seconds=remaining_s)
    return _summary(Mode.ARCHIVE, report)


def _resnapshot(
    invocation: Invocation,
    runtime: Runtime,
    settings: ArchiverSettings,
    remaining_s: Callable[[], float],
) -> dict[str, Any]:
    if invocation.org_id is not None and invocation.org_id not in settings.org_ids:
        raise SettingsError("resnapshot org_id is not one of the configured DI_ARCHIVER_ORG_IDS")
    start_ns, end_ns = invocation.window_ns
    orgs = [invocation.org_id] if invocation.org_id else list(settings.org_ids)
    results: dict[str, Any] = {"mode": Mode.RESNAPSHOT.value, "orgs": 0, "events": 0}
    for org_id in orgs:
        report = runtime.engine.resnapshot(org_id, start_ns, end_ns, remaining_seconds=remaining_s)
        part = _summary(Mode.RESNAPSHOT, report)
        results["orgs"] += 1
        results["events"] += part["events"]
    return results


def _maintain(
    invocation: Invocation,
    runtime: Runtime,
    settings: ArchiverSettings,
    remaining_s: Callable[[], float],
) -> dict[str, Any]:
    """Seal closed days, then reconcile sealed days with DI (seal/reconcile owner's entry)."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    from di_archiver.domain.maintenance import maintain  # noqa: PLC0415
    from di_archiver.observability import Metric  # noqa: PLC0415
    from di_archiver.wiring import (  # noqa: PLC0415
        object_lock_retention,
    )

    logger, metrics, _ = powertools()
    report = maintain(
        org_ids=list(settings.org_ids),
        store=runtime.store,
        checkpoints=runtime.checkpoints,
        prefix=settings.archive_prefix,
        source=runtime.source,
        snapshotter=runtime.engine,
        lookback_ns=settings.lookback_days * 86_400 * 1_000_000_000,
        remaining_seconds=remaining_s,
        reserve_seconds=float(settings.time_budget_reserve_seconds),
        retention=object_lock_retention(settings),
    )
    metrics.add_metric(name=Metric.DAYS_SEALED, unit=MetricUnit.Count, value=report.days_sealed)
    metrics.add_metric(name=Metric.DAYS_REPAIRED, unit=MetricUnit.Count, value=report.days_repaired)
    metrics.add_metric(
        name=Metric.MAINTENANCE_FAILED, unit=MetricUnit.Count, value=len(report.failures)
    )
    for org in report.orgs:
        for check in org.checks:
            if check.status != "ok":
                logger.info(
                    "day reconciled",
                    extra={
                        "org": mask_org_id(org.org_id),
                        "day": check.day.isoformat(),
                        "status": check.status,
                        "di_count": check.di_count,
                        "archived_before": check.archived_before,
                        "archived_after": check.archived_after,
                    },
                )
    report.raise_for_failures()
    return {
        "mode": Mode.MAINTAIN.value,
        "orgs": len(report.orgs),
        "days_sealed": report.days_sealed,
        "days_repaired": report.days_repaired,
        "stopped_early": report.stopped_early,
    }


def _verify(
    invocation: Invocation,
    runtime: Runtime,
    settings: ArchiverSettings,
    remaining_s: Callable[[], float],
) -> dict[str, Any]:
    """Verify hashes, counts and manifest chains; findings are a metric and an error."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    from di_archiver.domain.verify import verify_archive  # noqa: PLC0415
    from di_archiver.errors import IntegrityError  # noqa: PLC0415
    from di_archiver.observability import Metric  # noqa: PLC0415

    logger, metrics, _ = powertools()
    # A scheduled verify reads a recent window so it fits one invocation on any archive size;
    # the manifest chain inside the window is still walked link by link.
    start_day = None
    if invocation.days is not None:
        start_day = (datetime.now(UTC) - timedelta(days=invocation.days)).date()
    report = verify_archive(
        runtime.store,
        prefix=settings.archive_prefix,
        org_ids=settings.org_ids,
        start_day=start_day,
    )
    metrics.add_metric(
        name=Metric.VERIFY_FINDINGS, unit=MetricUnit.Count, value=len(report.findings)
    )
    for finding in report.findings[:100]:
        logger.warning("verify finding", extra={"kind": finding.kind, "key": finding.key})
    if not report.ok:
        raise IntegrityError(f"verify found {len(report.findings)} problem(s); see the log")
    return {
        "mode": Mode.VERIFY.value,
        "objects": report.objects_checked,
        "events": report.events_checked,
        "manifests": report.manifests_checked,
        "chain_heads": {
            mask_org_id(org): [day.isoformat(), sha]
            for org, (day, sha) in report.chain_heads.items()
        },
    }


ModeHandler = Callable[
    [Invocation, "Runtime", ArchiverSettings, Callable[[], float]], dict[str, Any]
]

# One entry per supported mode; maintain/verify are added by their owners alongside this.
MODE_HANDLERS: dict[Mode, ModeHandler] = {
    Mode.ARCHIVE: _archive,
    Mode.RESNAPSHOT: _resnapshot,
    Mode.MAINTAIN: _maintain,
    Mode.VERIFY: _verify,
}


def handle(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Undecorated handler body (the decorated ``lambda_handler`` wraps this)."""
    logger, _metrics, _tracer = powertools()
    observer = MetricsObserver()
    runtime: Runtime | None = None
    invocation: Invocation | None = None
    try:
        settings = get_settings()
        invocation = parse_invocation(event)
        mode_handler = MODE_HANDLERS.get(invocation.mode)
        if mode_handler is None:
            raise SettingsError(f"mode {invocation.mode.value!r} is not supported by this version")
        runtime = runtime_factory(settings, observer)
        result = mode_handler(
            invocation, runtime, settings, lambda: context.get_remaining_time_in_millis() / 1000.0
        )
    except Exception as exc:
        retries, _absorbed = runtime.api_stats() if runtime is not None else (0, 0)
        observer.finish(
            succeeded=False,
            api_retries=retries,
            api_errors=_api_failures(exc),
            freshness=_reports_freshness(invocation),
        )
        if isinstance(exc, ArchiverError):
            # Our messages are secret-free by contract; no traceback needed for known failures.
            logger.error("run failed", extra={"error": type(exc).__name__, "reason": str(exc)})
            for org_id, failure in getattr(exc, "failures", ()):
                if isinstance(failure, UnexpectedError) and failure.__cause__ is not None:
                    # A surprise is a bug to fix: its traceback is what the fix needs.
                    logger.error(
                        "unexpected failure",
                        extra={"org": mask_org_id(org_id)},
                        exc_info=failure.__cause__,
                    )
        else:
            logger.exception("run failed unexpectedly", extra={"error": type(exc).__name__})
        raise
    finally:
        if runtime is not None:
            runtime.close()
    retries, _absorbed = runtime.api_stats()
    observer.finish(succeeded=True, api_retries=retries, freshness=_reports_freshness(invocation))
    logger.info("run finished", extra={**result, "orgs_masked": observer.totals.orgs})
    return result


def _api_failures(exc: BaseException) -> int:
    """DI errors that ended a run or an org's part of it (retried faults are ApiRetries)."""
    if isinstance(exc, DIApiError):
        return 1
    failures = getattr(exc, "failures", ())
    return sum(1 for _org, error in failures if isinstance(error, DIApiError))


def _reports_freshness(invocation: Invocation | None) -> bool:
    # Only a scheduled pass says how far the archive lags now; a re-snapshot of an old window
    # would look like a huge lag and trip the freshness alarm.
    return invocation is not None and invocation.mode is Mode.ARCHIVE


@cache
def _decorated() -> Callable[[Any, LambdaContext], dict[str, Any]]:
    # Powertools objects read the environment when created, so decorate on first invocation
    # rather than at import time.
    logger, metrics, tracer = powertools()

    @logger.inject_lambda_context(clear_state=True)
    @metrics.log_metrics
    @tracer.capture_lambda_handler(capture_response=False)
    def _handler(event: Any, context: LambdaContext) -> dict[str, Any]:
        return handle(event, context)

    return _handler


def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """AWS Lambda entry point (``di_archiver.handler.lambda_handler``)."""
    return _decorated()(event, context)


__all__ = ["MODE_HANDLERS", "Invocation", "lambda_handler", "mask_org_id", "reset_for_tests"]
