"""Powertools logging and metrics for a run: the engine's RunObserver for Lambda and the CLI.

The observer adds up what the engine reports and emits each metric once per invocation (one
EMF document), so alarms see one data point per run. Org ids are masked in log lines: they are
not secret, but logs travel further than the archive does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec
from msgspec import Struct

from di_archiver.errors import ArchiverError, DIApiError, UnexpectedError
from di_archiver.observability import METRICS_NAMESPACE, SERVICE_NAME, Metric
from di_archiver.redaction import RedactingOutput, install_log_redaction

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer
    from aws_lambda_powertools.utilities.typing import LambdaContext

Result = TypeVar("Result")


def mask_org_id(org_id: str) -> str:
    """``64a0c0ffee0000000000a001`` -> ``64a0…a001``: enough to tell orgs apart in a log."""
    if len(org_id) <= 8:
        return "…"
    return f"{org_id[:4]}…{org_id[-4:]}"


def tracing_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the function traces: Lambda sets the X-Ray daemon's address only when the
    function's tracing is active (``POWERTOOLS_TRACE_DISABLED`` still switches it off)."""
    env = os.environ if environ is None else environ
    if env.get("POWERTOOLS_TRACE_DISABLED", "").strip().lower() in {"1", "true", "yes"}:
        return False
    return bool(env.get("AWS_XRAY_DAEMON_ADDRESS"))


def _redacting_formatter() -> Any:
    """Powertools' JSON formatter with its whole output scrubbed: it renders tracebacks and
    ``extra`` fields itself, after the record factory's scrub of the message."""
    from aws_lambda_powertools.logging.formatter import (  # noqa: PLC0415
        LambdaPowertoolsFormatter,
    )

    class RedactingPowertoolsFormatter(RedactingOutput, LambdaPowertoolsFormatter):
        pass

    return RedactingPowertoolsFormatter()


@cache
def powertools() -> tuple[Logger, Metrics, Tracer | None]:
    """The process-wide Logger, Metrics and Tracer (created on first use, not at import).

    The Tracer is ``None`` unless tracing is on: importing the X-Ray SDK costs ~0.25 s of CPU
    on a cold start, for nothing when no trace is sent.
    """
    from aws_lambda_powertools import Logger, Metrics  # noqa: PLC0415

    tracer = None
    if tracing_enabled():
        from aws_lambda_powertools import Tracer  # noqa: PLC0415

        tracer = Tracer(service=SERVICE_NAME)
    return (
        Logger(service=SERVICE_NAME, logger_formatter=_redacting_formatter()),
        Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME),
        tracer,
    )


class RunTotals(Struct):
    """What one invocation did, summed over every org and bucket."""

    events: int = 0
    bytes_written: int = 0
    objects_written: int = 0
    buckets_written: int = 0
    buckets_unchanged: int = 0
    unknown_service_events: int = 0
    collisions: int = 0
    freshness_lag_s: float | None = None
    orgs: list[str] = msgspec.field(default_factory=list)


class MetricsObserver:
    """A ``RunObserver`` that logs per org and emits the run's metrics on :meth:`finish`."""

    def __init__(self, *, logger: Logger | None = None, metrics: Metrics | None = None) -> None:
        if logger is None or metrics is None:
            default_logger, default_metrics, _ = powertools()
            logger = logger or default_logger
            metrics = metrics or default_metrics
        self.logger = logger
        self.metrics = metrics
        self.totals = RunTotals()

    def on_bucket(self, result: Any) -> None:
        """Count one snapshotted bucket (objects are counted here, buckets per org)."""
        self.totals.objects_written += int(result.objects_written)
        self.totals.unknown_service_events += int(result.unknown_service_events)
        self.totals.collisions += int(result.collisions)

    def on_org(self, result: Any) -> None:
        """Count one org's pass and log it with the org id masked."""
        totals = self.totals
        totals.events += int(result.events)
        totals.bytes_written += int(result.bytes_written)
        totals.buckets_written += int(result.buckets_written)
        totals.buckets_unchanged += int(result.buckets_unchanged)
        totals.orgs.append(mask_org_id(result.org_id))
        lag = result.freshness_lag_s
        if lag is not None:
            totals.freshness_lag_s = max(totals.freshness_lag_s or 0.0, float(lag))
        self.logger.info(
            "org archived",
            extra={
                "org": mask_org_id(result.org_id),
                "buckets": int(result.buckets),
                "buckets_written": int(result.buckets_written),
                "buckets_unchanged": int(result.buckets_unchanged),
                "events": int(result.events),
                "bytes_written": int(result.bytes_written),
                "freshness_lag_s": lag,
                "stopped_early": bool(result.stopped_early),
            },
        )

    def on_warning(self, message: str, **fields: Any) -> None:
        """Log an engine warning; any ``org_id`` field is masked."""
        safe = {
            k: (mask_org_id(v) if k == "org_id" and isinstance(v, str) else v)
            for k, v in fields.items()
        }
        self.logger.warning(message, extra=safe)

    def succeeded(self, summary: dict[str, Any], *, api_retries: int, freshness: bool) -> None:
        """Metrics and the closing log line of a run that succeeded."""
        self.finish(succeeded=True, api_retries=api_retries, freshness=freshness)
        self.logger.info("run finished", extra={**summary, "orgs_masked": self.totals.orgs})

    def failed(self, exc: BaseException, *, api_retries: int, freshness: bool) -> None:
        """Metrics and log lines of a run that failed with ``exc`` (the caller re-raises)."""
        self.finish(
            succeeded=False,
            api_retries=api_retries,
            api_errors=api_failures(exc),
            freshness=freshness,
        )
        log_failure(exc, self.logger)

    def finish(
        self,
        *,
        succeeded: bool,
        api_retries: int = 0,
        api_errors: int = 0,
        freshness: bool = True,
    ) -> None:
        """Add this run's metrics (Powertools flushes them when the handler returns)."""
        from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

        totals = self.totals
        add = self.metrics.add_metric
        add(name=Metric.EVENTS_WRITTEN, unit=MetricUnit.Count, value=totals.events)
        add(name=Metric.BYTES_WRITTEN, unit=MetricUnit.Bytes, value=totals.bytes_written)
        add(name=Metric.OBJECTS_WRITTEN, unit=MetricUnit.Count, value=totals.objects_written)
        add(name=Metric.BUCKETS_WRITTEN, unit=MetricUnit.Count, value=totals.buckets_written)
        add(name=Metric.BUCKETS_UNCHANGED, unit=MetricUnit.Count, value=totals.buckets_unchanged)
        add(
            name=Metric.UNKNOWN_SERVICE_EVENTS,
            unit=MetricUnit.Count,
            value=totals.unknown_service_events,
        )
        add(name=Metric.ID_COLLISIONS, unit=MetricUnit.Count, value=totals.collisions)
        add(name=Metric.API_RETRIES, unit=MetricUnit.Count, value=api_retries)
        add(name=Metric.API_ERRORS, unit=MetricUnit.Count, value=api_errors)
        if freshness and totals.freshness_lag_s is not None:
            add(
                name=Metric.FRESHNESS_LAG_SECONDS,
                unit=MetricUnit.Seconds,
                value=totals.freshness_lag_s,
            )
        add(name=Metric.RUN_SUCCEEDED, unit=MetricUnit.Count, value=1 if succeeded else 0)
        add(name=Metric.RUN_FAILED, unit=MetricUnit.Count, value=0 if succeeded else 1)


def emit_maintenance(report: Any) -> None:
    """Metrics of a maintain run, and one log line per day reconcile did not find matching."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    logger, metrics, _ = powertools()
    metrics.add_metric(name=Metric.DAYS_SEALED, unit=MetricUnit.Count, value=report.days_sealed)
    metrics.add_metric(name=Metric.DAYS_REPAIRED, unit=MetricUnit.Count, value=report.days_repaired)
    metrics.add_metric(
        name=Metric.MAINTENANCE_FAILED, unit=MetricUnit.Count, value=len(report.failures)
    )
    metrics.add_metric(
        name=Metric.RECONCILE_FINDINGS, unit=MetricUnit.Count, value=len(report.findings)
    )
    for org in report.orgs:
        for check in org.checks:
            if check.status != "ok":
                log = logger.warning if check.finding else logger.info
                log(
                    "reconcile finding" if check.finding else "day reconciled",
                    extra={"org": mask_org_id(org.org_id), **check.counts()},
                )


def emit_verify(report: Any) -> None:
    """The VerifyFindings metric and the first hundred findings as log lines."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    logger, metrics, _ = powertools()
    metrics.add_metric(
        name=Metric.VERIFY_FINDINGS, unit=MetricUnit.Count, value=len(report.findings)
    )
    for finding in report.findings[:100]:
        logger.warning("verify finding", extra={"kind": finding.kind, "key": finding.key})


def emit_dispatch(report: Any) -> None:
    """The OrgsDispatched metric of a fan-out dispatch run."""
    from aws_lambda_powertools.metrics import MetricUnit  # noqa: PLC0415

    logger, metrics, _ = powertools()
    metrics.add_metric(name=Metric.ORGS_DISPATCHED, unit=MetricUnit.Count, value=len(report.orgs))
    logger.info("dispatched one archive message per org", extra={"orgs": len(report.orgs)})


def log_failure(exc: BaseException, logger: Logger) -> None:
    """Log why a run failed: our errors without a traceback, surprises with theirs."""
    if not isinstance(exc, ArchiverError):
        logger.exception("run failed unexpectedly", extra={"error": type(exc).__name__})
        return
    # Our messages are secret-free by contract; no traceback needed for known failures.
    logger.error("run failed", extra={"error": type(exc).__name__, "reason": str(exc)})
    for org_id, failure in getattr(exc, "failures", ()):
        if isinstance(failure, UnexpectedError) and failure.__cause__ is not None:
            # A surprise is a bug to fix: its traceback is what the fix needs.
            logger.error(
                "unexpected failure", extra={"org": mask_org_id(org_id)}, exc_info=failure.__cause__
            )


def api_failures(exc: BaseException) -> int:
    """DI errors that ended a run or an org's part of it (retried faults are ApiRetries)."""
    if isinstance(exc, DIApiError):
        return 1
    return sum(1 for _org, error in getattr(exc, "failures", ()) if isinstance(error, DIApiError))


def lambda_entry(
    handle: Callable[[Any, LambdaContext], Result],
) -> Callable[[Any, LambdaContext], Result]:
    """``handle`` wrapped in Powertools' context logging, metrics flush and tracing.

    Powertools objects read the environment when created, so the wrapping happens on the first
    invocation rather than at import time.
    """

    @cache
    def decorated() -> Callable[[Any, LambdaContext], Result]:
        install_log_redaction()
        logger, metrics, tracer = powertools()
        traced = (
            handle
            if tracer is None
            else tracer.capture_lambda_handler(capture_response=False)(handle)
        )

        @logger.inject_lambda_context(clear_state=True)
        @metrics.log_metrics
        def wrapped(event: Any, context: LambdaContext) -> Result:
            return traced(event, context)

        return wrapped

    def entry(event: Any, context: LambdaContext) -> Result:
        return decorated()(event, context)

    return entry
