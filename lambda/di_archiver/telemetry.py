"""Powertools logging and metrics for a run: the engine's RunObserver for Lambda and the CLI.

The observer adds up what the engine reports and emits each metric once per invocation (one
EMF document), so alarms see one data point per run. Org ids are masked in log lines: they are
not secret, but logs travel further than the archive does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from di_archiver.observability import METRICS_NAMESPACE, SERVICE_NAME, Metric

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger, Metrics, Tracer


def mask_org_id(org_id: str) -> str:
    """``64a0c0ffee0000000000a001`` -> ``64a0…a001``: enough to tell orgs apart in a log."""
    if len(org_id) <= 8:
        return "…"
    return f"{org_id[:4]}…{org_id[-4:]}"


@cache
def powertools() -> tuple[Logger, Metrics, Tracer]:
    """The process-wide Logger, Metrics and Tracer (created on first use, not at import)."""
    from aws_lambda_powertools import Logger, Metrics, Tracer  # noqa: PLC0415

    return (
        Logger(service=SERVICE_NAME),
        Metrics(namespace=METRICS_NAMESPACE, service=SERVICE_NAME),
        Tracer(service=SERVICE_NAME),
    )


@dataclass
class RunTotals:
    """What one invocation did, summed over every org and bucket."""

    events: int = 0
    bytes_written: int = 0
    objects_written: int = 0
    buckets_written: int = 0
    buckets_unchanged: int = 0
    unknown_service_events: int = 0
    collisions: int = 0
    freshness_lag_s: float | None = None
    orgs: list[str] = field(default_factory=list)


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
