"""Metric names and Lambda modes shared by the runtime (emits) and the CDK stack (alarms on)."""

from enum import StrEnum

METRICS_NAMESPACE = "DIArchiver"
SERVICE_NAME = "di-archiver"


class Metric(StrEnum):
    EVENTS_WRITTEN = "EventsWritten"
    BYTES_WRITTEN = "BytesWritten"
    OBJECTS_WRITTEN = "ObjectsWritten"
    BUCKETS_WRITTEN = "BucketsWritten"
    BUCKETS_UNCHANGED = "BucketsUnchanged"
    FRESHNESS_LAG_SECONDS = "FreshnessLagSeconds"
    API_RETRIES = "ApiRetries"
    API_ERRORS = "ApiErrors"
    RUN_SUCCEEDED = "RunSucceeded"
    RUN_FAILED = "RunFailed"
    UNKNOWN_SERVICE_EVENTS = "UnknownServiceEvents"
    ID_COLLISIONS = "IdCollisions"
    DAYS_SEALED = "DaysSealed"
    DAYS_REPAIRED = "DaysRepaired"
    MAINTENANCE_FAILED = "MaintenanceFailed"
    VERIFY_FINDINGS = "VerifyFindings"
    ORGS_DISPATCHED = "OrgsDispatched"
    RECONCILE_FINDINGS = "ReconcileFindings"


class Mode(StrEnum):
    """What one Lambda invocation does; the event is ``{"mode": ..., ...}``."""

    ARCHIVE = "archive"  # scheduled: snapshot open buckets, advance checkpoints
    RESNAPSHOT = "resnapshot"  # manual: {"mode": "resnapshot", "start": ..., "end": ..., "org_id"?}
    MAINTAIN = "maintain"  # scheduled daily: seal closed days, then reconcile retention window
    VERIFY = "verify"  # manual or scheduled: verify hashes, counts and the manifest chain
    DISPATCH = "dispatch"  # scheduled (fan-out): enqueue one archive message per org
    RECONCILE = "reconcile"  # scheduled daily on the DI-facing function: reconcile, never seal
