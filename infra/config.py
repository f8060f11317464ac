"""The deployment configuration: one validated model of the CDK context (``cdk.json`` / ``-c``).

Every key is camelCase, has a default except ``orgIds``, and is checked before any construct is
built, so a mistake fails ``cdk synth`` with a message naming the context key and the fix
instead of failing half-way through a CloudFormation deployment.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    AliasGenerator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from di_archiver.errors import SettingsError
from di_archiver.services import ALL_SERVICES, SERVICE_NAME_PATTERN
from di_archiver.settings import ENV_PREFIX, ArchiverSettings, AuthKind, ObjectLockMode, Region
from infra.cron import cron_problem

DAY_SECONDS = 86_400

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip

_RATE = re.compile(r"^rate\((?P<value>[1-9]\d*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PARAMETER_PATH = re.compile(r"^(/[A-Za-z0-9_.-]+)+$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": DAY_SECONDS}


class ConfigError(SettingsError):
    """The CDK context is invalid; the message names each context key and its fix."""


class Encryption(StrEnum):
    KMS = "kms"
    S3 = "s3"


class StorageClass(StrEnum):
    """Lifecycle transition targets, in the order S3's transition waterfall allows."""

    STANDARD_IA = "STANDARD_IA"
    INTELLIGENT_TIERING = "INTELLIGENT_TIERING"
    ONEZONE_IA = "ONEZONE_IA"
    GLACIER_IR = "GLACIER_IR"
    GLACIER = "GLACIER"
    DEEP_ARCHIVE = "DEEP_ARCHIVE"


_WATERFALL = list(StorageClass)
_INFREQUENT = {StorageClass.STANDARD_IA, StorageClass.ONEZONE_IA}
# Athena cannot read these classes without a restore: say so in a synth warning.
NOT_QUERYABLE = {StorageClass.GLACIER, StorageClass.DEEP_ARCHIVE}
# S3 rejects IA transitions earlier than 30 days after creation (and 30 days after an IA step).
IA_MINIMUM_DAYS = 30


def rate_seconds(expression: str) -> int:
    """Seconds between runs of a ``rate(...)`` schedule expression."""
    match = _RATE.match(expression)
    if match is None:
        raise ValueError(expression)
    return int(match["value"]) * _UNIT_SECONDS[match["unit"].removesuffix("s")]


def _json_or_value(value: Any) -> Any:
    """``-c key=value`` arrives as a string; accept JSON there for objects, lists and null."""
    if (isinstance(value, str) and value.strip()[:1] in ("{", "[")) or value in ("null", "none"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


class ObjectLock(BaseModel):
    """Object Lock retention the archiver sets on sealed day objects and manifests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: ObjectLockMode = Field(description="GOVERNANCE (admins may override) or COMPLIANCE.")
    days: int = Field(ge=1, le=36_500, description="Retention from sealing, in days.")


class FanOutConfig(BaseModel):
    """``fanOut``: archive each org in its own invocation from an SQS FIFO work queue."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=AliasGenerator(validation_alias=to_camel),
        populate_by_name=True,
    )

    max_concurrency: int = Field(
        default=5,
        ge=2,
        le=100,
        description="Worker invocations at once (the event source's MaximumConcurrency).",
    )


DEFAULT_LOCK_DAYS = 2_557  # 7 years, the default retention
OBJECT_LOCK_OFF = "off"
LOCK_OFF_REASON_MIN = 20


class DeploymentConfig(BaseModel):
    """Everything ``cdk deploy`` needs to know; field aliases are the CDK context keys."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=AliasGenerator(validation_alias=to_camel),
        populate_by_name=True,
    )

    stack_name: str = Field(
        default="DiArchiver", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,127}$", description="Stack name."
    )
    org_ids: tuple[str, ...] = Field(
        min_length=1, description="JumpCloud organisation ids (24 hex), list or comma-separated."
    )
    services: tuple[str, ...] = Field(
        default=(ALL_SERVICES,), description="DI services; 'all' also collects future services."
    )
    extra_services: tuple[str, ...] = Field(
        default=(),
        description="Services JumpCloud added after this release, to make visible to Athena.",
    )
    region: Region = Field(default=Region.STANDARD, description="JumpCloud data centre.")
    base_url: str | None = Field(default=None, description="DI API base URL override.")
    auth_kind: AuthKind = Field(default=AuthKind.API_KEY, description="Credential type.")
    schedule: str = Field(default="rate(15 minutes)", description="Archive run schedule.")
    maintain_schedule: str = Field(
        default="cron(30 2 * * ? *)", description="Daily seal run of the seal function (UTC)."
    )
    reconcile_schedule: str = Field(
        default="cron(0 2 * * ? *)",
        description="Daily reconcile run of the archive function (UTC; before the seal run, "
        "which merges and signs what it re-read).",
    )
    verify_schedule: str = Field(
        default="cron(0 4 ? * SUN *)", description="Weekly verification run (UTC)."
    )
    verify_days: int = Field(
        default=35, ge=1, le=36_500, description="Days of archive each scheduled verify reads."
    )
    bucket_minutes: int = Field(default=60, description="Time-bucket width; divides 1440.")
    lag_seconds: int = Field(default=300, ge=0, description="Buckets end before now - lag.")
    settle_seconds: int = Field(default=7_200, ge=0, description="How long buckets stay open.")
    lookback_days: int = Field(default=90, ge=1, le=90, description="First-run backfill.")
    archive_prefix: str = Field(default="di", description="Key prefix inside the bucket.")
    checkpoint_parameter_prefix: str | None = Field(
        default=None,
        description="SSM path of per-org checkpoints (default: one path per stack name).",
    )
    encryption: Encryption = Field(default=Encryption.KMS, description="kms (CMK) or s3.")
    versioning: bool = Field(default=True, description="S3 versioning on the archive bucket.")
    retention_days: int | None = Field(
        default=2_557, ge=1, description="Expire archive objects after this many days, or 'never'."
    )
    transitions: dict[StorageClass, int] = Field(
        default_factory=lambda: {StorageClass.STANDARD_IA: 30, StorageClass.GLACIER_IR: 90},
        description="Storage class -> days after creation.",
    )
    noncurrent_days: int | None = Field(
        default=None,
        ge=1,
        description="Expire overwritten/deleted versions after this many days (default: as long "
        "as sealed objects are locked, so no sealed version leaves before its retention).",
    )
    object_lock: ObjectLock | Literal["off"] | None = Field(
        default=None,
        description="Object Lock of sealed objects, manifests and certificates; default "
        "GOVERNANCE for the retention period; 'off' needs objectLockOffReason.",
    )
    object_lock_off_reason: str | None = Field(
        default=None,
        description="Why this deployment runs without Object Lock (required with objectLock=off).",
    )
    access_logging: bool = Field(default=True, description="S3 server access logging.")
    access_log_retention_days: int = Field(default=365, ge=1, description="Access log expiry.")
    alarm_email: str | None = Field(default=None, description="Alarm notification address.")
    freshness_alarm_seconds: int | None = Field(
        default=None, ge=60, description="Alarm when the archive lags more; default derived."
    )
    missed_runs_alarm_periods: int = Field(
        default=4, ge=1, description="Alarm after this many schedule periods without success."
    )
    log_retention_days: int = Field(default=90, description="Lambda log retention.")
    memory_size: int = Field(default=512, ge=256, le=10_240, description="Lambda memory (MB).")
    rate_limit_per_second: float = Field(
        default=10.0,
        gt=0,
        le=1000,
        description="DI requests/s the key may take, all runs together.",
    )
    concurrency: int = Field(
        default=4, ge=1, le=64, description="Time buckets one run archives at once."
    )
    fan_out: FanOutConfig | None = Field(
        default=None, description="Per-org workers on an SQS FIFO queue (MSPs), or null."
    )
    athena_bytes_scanned_cutoff: int = Field(
        default=10 * 1024**3, ge=10 * 1024**2, description="Athena per-query scan limit (bytes)."
    )

    @field_validator("*", mode="before")
    @classmethod
    def _from_cli_string(cls, value: Any) -> Any:
        return _json_or_value(value)

    @field_validator("retention_days", mode="before")
    @classmethod
    def _never(cls, value: Any) -> Any:
        # CDK drops null context values, so "keep forever" needs a word of its own.
        return None if value == "never" else value

    @field_validator("extra_services")
    @classmethod
    def _extra_services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [name for name in value if not SERVICE_NAME_PATTERN.match(name)]
        if bad:
            raise ValueError(
                f"service names are lower-case identifiers like 'workflows'; got {bad}"
            )
        return value

    @field_validator("org_ids", "services", "extra_services", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("schedule")
    @classmethod
    def _rate(cls, value: str) -> str:
        match = _RATE.match(value)
        if match is None:
            raise ValueError(
                f"must be a rate expression such as 'rate(15 minutes)' or 'rate(1 hour)'; "
                f"got {value!r}"
            )
        if (match["value"] == "1") == match["unit"].endswith("s"):
            raise ValueError("use a singular unit for 1 ('rate(1 hour)') and plural otherwise")
        return value

    @field_validator("maintain_schedule", "verify_schedule", "reconcile_schedule")
    @classmethod
    def _cron_or_rate(cls, value: str) -> str:
        if _RATE.match(value):
            return value
        if not value.startswith("cron("):
            raise ValueError(f"must be 'cron(m h dom mon dow year)' or 'rate(...)'; got {value!r}")
        problem = cron_problem(value)
        if problem:
            raise ValueError(f"{value}: {problem}")
        return value

    @field_validator("archive_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.match(value):
            raise ValueError("must be a key prefix such as 'di' (no leading or trailing '/')")
        return value

    @field_validator("checkpoint_parameter_prefix")
    @classmethod
    def _parameter_path(cls, value: str | None) -> str | None:
        if value is not None and not _PARAMETER_PATH.match(value):
            raise ValueError("must be an SSM path such as '/di-archiver/checkpoints'")
        return value

    @property
    def checkpoint_path(self) -> str:
        """Per-stack by default, so two deployments in one account never share checkpoints."""
        return self.checkpoint_parameter_prefix or f"/di-archiver/{self.stack_name}/checkpoints"

    @field_validator("alarm_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is not None and not _EMAIL.match(value):
            raise ValueError("must be an e-mail address such as 'security@example.com', or null")
        return value

    @field_validator("log_retention_days")
    @classmethod
    def _log_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(
                f"CloudWatch Logs accepts only {', '.join(map(str, LOG_RETENTION_DAYS))}"
            )
        return value

    @field_validator("transitions")
    @classmethod
    def _transitions(cls, value: dict[StorageClass, int]) -> dict[StorageClass, int]:
        previous: tuple[StorageClass, int] | None = None
        for storage_class in sorted(value, key=_WATERFALL.index):
            days = value[storage_class]
            if days < 0:
                raise ValueError(f"{storage_class}: days must not be negative")
            if storage_class in _INFREQUENT and days < IA_MINIMUM_DAYS:
                raise ValueError(
                    f"{storage_class} needs at least {IA_MINIMUM_DAYS} days (S3 minimum)"
                )
            if previous is not None:
                prev_class, prev_days = previous
                if days <= prev_days:
                    raise ValueError(
                        f"{storage_class} ({days} d) must come after {prev_class} ({prev_days} d):"
                        f" S3 moves objects down {' -> '.join(_WATERFALL)} with growing days"
                    )
                if prev_class in _INFREQUENT and days - prev_days < IA_MINIMUM_DAYS:
                    raise ValueError(
                        f"{storage_class} must be at least {IA_MINIMUM_DAYS} days after "
                        f"{prev_class} (S3 minimum); use {prev_days + IA_MINIMUM_DAYS} or more"
                    )
            previous = (storage_class, days)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeploymentConfig:
        last = max(self.transitions.values(), default=0)
        if self.retention_days is not None and self.transitions and self.retention_days <= last:
            raise ValueError(
                f"retentionDays ({self.retention_days}) must be greater than the last transition "
                f"({last} d): raise retentionDays or remove the transition"
            )
        if self.object_lock == OBJECT_LOCK_OFF:
            reason = (self.object_lock_off_reason or "").strip()
            if len(reason) < LOCK_OFF_REASON_MIN:
                raise ValueError(
                    "objectLock=off leaves sealed days deletable by anyone with s3:DeleteObject: "
                    "acknowledge it with objectLockOffReason='<why, at least "
                    f"{LOCK_OFF_REASON_MIN} characters>' (see README, Object Lock)"
                )
        elif self.object_lock_off_reason is not None:
            raise ValueError("objectLockOffReason is only for objectLock=off: remove it")
        lock = self.lock
        if lock is not None:
            if not self.versioning:
                raise ValueError(
                    "Object Lock (on by default) requires versioning: set versioning=true, or "
                    "objectLock=off with objectLockOffReason"
                )
            if self.retention_days is not None and self.retention_days < lock.days:
                raise ValueError(
                    f"retentionDays ({self.retention_days}) is shorter than objectLock.days "
                    f"({lock.days}): locked objects cannot expire earlier; raise "
                    "retentionDays or lower objectLock.days"
                )
        if self.freshness_alarm_seconds is not None:
            floor = self.expected_lag_seconds
            if self.freshness_alarm_seconds <= floor:
                raise ValueError(
                    f"freshnessAlarmSeconds ({self.freshness_alarm_seconds}) would alarm in normal "
                    f"operation: the archive lags up to {floor} s by design (settle + lag + bucket "
                    "+ schedule); set it higher or leave it unset for a derived default"
                )
        # The runtime's own model checks org ids, services and bucket width: reuse it.
        self.runtime_settings(
            archive_bucket="synth-check",
            kms_key_id=None,
            secret_id="synth-check",  # noqa: S106
        )
        if self.schedule_seconds * self.missed_runs_alarm_periods > DAY_SECONDS:
            raise ValueError(
                "missedRunsAlarmPeriods x schedule exceeds one day (CloudWatch's evaluation "
                "limit): lower missedRunsAlarmPeriods or shorten schedule"
            )
        return self

    @property
    def lock(self) -> ObjectLock | None:
        """The effective Object Lock: GOVERNANCE for the retention period unless turned off."""
        if self.object_lock == OBJECT_LOCK_OFF:
            return None
        if isinstance(self.object_lock, ObjectLock):
            return self.object_lock
        return ObjectLock(
            mode=ObjectLockMode.GOVERNANCE, days=self.retention_days or DEFAULT_LOCK_DAYS
        )

    @property
    def noncurrent_version_days(self) -> int:
        """How long replaced versions stay: by default as long as sealed objects are locked."""
        if self.noncurrent_days is not None:
            return self.noncurrent_days
        lock = self.lock
        return lock.days if lock is not None else self.retention_days or DEFAULT_LOCK_DAYS

    @property
    def schedule_seconds(self) -> int:
        return rate_seconds(self.schedule)

    @property
    def expected_lag_seconds(self) -> int:
        """The archive's freshness lag in healthy operation, at its worst."""
        return (
            self.settle_seconds
            + self.lag_seconds
            + self.bucket_minutes * 60
            + self.schedule_seconds
        )

    @property
    def worker_rate_per_second(self) -> float:
        """Each fan-out worker's share of the key's rate, so all of them together keep it."""
        if self.fan_out is None:
            return self.rate_limit_per_second
        return self.rate_limit_per_second / self.fan_out.max_concurrency

    @property
    def freshness_threshold_seconds(self) -> int:
        """The freshness alarm threshold: configured, or two extra schedule periods of slack."""
        if self.freshness_alarm_seconds is not None:
            return self.freshness_alarm_seconds
        return self.expected_lag_seconds + 2 * self.schedule_seconds

    def runtime_settings(
        self, *, archive_bucket: str, kms_key_id: str | None, secret_id: str
    ) -> ArchiverSettings:
        """The Lambda's settings, validated by the runtime's own model (fails synth if bad)."""
        values: dict[str, Any] = {
            "org_ids": self.org_ids,
            "services": self.services,
            "bucket_minutes": self.bucket_minutes,
            "lag_seconds": self.lag_seconds,
            "settle_seconds": self.settle_seconds,
            "lookback_days": self.lookback_days,
            "archive_bucket": archive_bucket,
            "archive_prefix": self.archive_prefix,
            "checkpoint_parameter_prefix": self.checkpoint_path,
            "region": self.region,
            "auth_kind": self.auth_kind,
            "secret_id": secret_id,
            "rate_limit_per_second": self.rate_limit_per_second,
            "concurrency": self.concurrency,
        }
        if kms_key_id is not None:
            values["kms_key_id"] = kms_key_id
        if self.base_url is not None:
            values["base_url"] = self.base_url
        lock = self.lock
        if lock is not None:
            values["object_lock_mode"] = lock.mode
            values["object_lock_days"] = lock.days
        try:
            return ArchiverSettings.build(values, source="CDK context")
        except SettingsError as exc:
            raise ConfigError(_context_names(str(exc))) from None

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> DeploymentConfig:
        """Validate our keys of the CDK context; CDK's own keys (``@aws-cdk/...``) are ignored."""
        ours = {key: value for key, value in context.items() if _is_config_key(key)}
        known = {to_camel(name) for name in cls.model_fields}
        problems = []
        for key in sorted(set(ours) - known):
            hint = difflib.get_close_matches(key, sorted(known), n=1)
            fix = f"did you mean '{hint[0]}'?" if hint else "remove it"
            problems.append(f"{key}: unknown context key; {fix}")
        if problems:
            raise ConfigError("invalid CDK context: " + "; ".join(problems))
        try:
            return cls.model_validate(ours)
        except ValidationError as exc:
            raise ConfigError(describe_context_error(exc)) from None


def _context_names(message: str) -> str:
    """Rewrite the runtime's ``DI_ARCHIVER_ORG_IDS`` names as the context keys (``orgIds``)."""
    return (
        re.sub(rf"{ENV_PREFIX}([A-Z_]+)", lambda m: to_camel(m[1].lower()), message)
        .replace("invalid settings from CDK context", "invalid CDK context")
        .replace("Value error, ", "")
    )


def _is_config_key(key: str) -> bool:
    # CDK and its plugins namespace their keys ('@aws-cdk/...', 'aws:cdk:...', 'cli-telemetry');
    # plain camelCase words are ours, so a typo in one of them is caught, not ignored.
    return re.fullmatch(r"[a-z][A-Za-z0-9]*", key) is not None


def describe_context_error(exc: ValidationError) -> str:
    """Name each context key and what is wrong with it (never echo values: they may be long)."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = [str(part) for part in error["loc"]]
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "missing" and loc and loc[0] in {"org_ids", "orgIds"}:
            message = "required: set it in cdk.json or pass -c orgIds=<24-hex id>[,<id>...]"
        # Model-level errors carry no location; their messages name the keys themselves.
        problems.append(f"{'.'.join([to_camel(loc[0]), *loc[1:]])}: {message}" if loc else message)
    return "invalid CDK context: " + "; ".join(problems)
