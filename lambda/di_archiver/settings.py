"""One validated settings model, read once from the environment at the edge.

Domain code receives plain values from this model and never reads ``os.environ``. The CDK
stack sets exactly these variables (see ``ENV_PREFIX``); ``di-archiver run`` builds the same
model from its arguments.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from di_archiver.errors import SettingsError
from di_archiver.layout import ORG_ID_PATTERN
from di_archiver.services import ALL_SERVICES, KNOWN_SERVICES, SERVICE_NAME_PATTERN
from di_archiver.urls import validate_api_url

ENV_PREFIX = "DI_ARCHIVER_"
MINUTES_PER_DAY = 1440


class Region(StrEnum):
    STANDARD = "standard"
    EU = "eu"
    IN = "in"


REGION_BASE_URLS: dict[Region, str] = {
    Region.STANDARD: "https://api.jumpcloud.com",
    Region.EU: "https://api.eu.jumpcloud.com",
    Region.IN: "https://api.in.jumpcloud.com",
}
DEFAULT_TOKEN_URL = "https://admin-oauth.id.jumpcloud.com/oauth2/token"  # noqa: S105 (a URL)
# Service accounts of EU and IN organisations get their tokens in their own region, as
# JumpCloud's own tools do.
REGION_TOKEN_URLS: dict[Region, str] = {
    Region.STANDARD: DEFAULT_TOKEN_URL,
    Region.EU: "https://admin-oauth.id.eu.jumpcloud.com/oauth2/token",
    Region.IN: "https://admin-oauth.id.in.jumpcloud.com/oauth2/token",
}


class AuthKind(StrEnum):
    API_KEY = "api_key"
    SERVICE_ACCOUNT = "service_account"


class Duty(StrEnum):
    """Which part of the job this process may do; the deployed functions each have one role.

    ``archive`` talks to DI (archive, resnapshot, reconcile: hourly objects only), ``seal``
    seals, signs and publishes heads (never talks to DI), ``verify`` only reads. ``all`` is
    the local CLI and the demo.
    """

    ALL = "all"
    ARCHIVE = "archive"
    SEAL = "seal"
    VERIFY = "verify"


class ObjectLockMode(StrEnum):
    GOVERNANCE = "GOVERNANCE"
    COMPLIANCE = "COMPLIANCE"


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ArchiverSettings(BaseModel):
    """Everything one archiving pass needs to know, validated before any I/O happens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    org_ids: Annotated[
        tuple[str, ...], Field(min_length=1, description="JumpCloud organisation ids to archive.")
    ]
    services: tuple[str, ...] = Field(
        default=(ALL_SERVICES,),
        description="DI services to query; 'all' (default) also collects services added later.",
    )
    bucket_minutes: int = Field(
        default=60, description="Width of one time bucket; must divide a day (1440 minutes)."
    )
    lag_seconds: int = Field(
        default=300, ge=0, le=86_400, description="Buckets end no later than now minus this lag."
    )
    settle_seconds: int = Field(
        default=7_200,
        ge=0,
        le=30 * 86_400,
        description="A bucket stays open (rewritten each run) this long after its end.",
    )
    lookback_days: int = Field(
        default=90, ge=1, le=90, description="First run backfills this far back (DI retention)."
    )
    max_events_per_bucket: int = Field(
        default=500_000,
        ge=1,
        description="Refuse to hold a bucket bigger than this in memory; lower bucket_minutes.",
    )
    max_bucket_bytes: int = Field(
        default=96 * 1024 * 1024,
        ge=1,
        description=(
            "Refuse to hold more serialised event bytes of one bucket than this in memory (two "
            "buckets may be in flight); lower bucket_minutes."
        ),
    )
    page_limit: int = Field(default=10_000, ge=1, le=10_000, description="DI page size.")
    archive_bucket: str | None = Field(default=None, description="S3 bucket of the archive.")
    archive_prefix: str = Field(default="di", description="Key prefix inside the archive.")
    archive_dir: str | None = Field(
        default=None, description="Local archive directory (instead of S3)."
    )
    kms_key_id: str | None = Field(
        default=None, description="SSE-KMS key for archive objects; SSE-S3 when unset."
    )
    checkpoint_parameter_prefix: str = Field(
        default="/di-archiver/checkpoints",
        description="SSM path under which each org's checkpoint parameter lives.",
    )
    checkpoint_file: str | None = Field(
        default=None, description="Local checkpoint file (instead of SSM)."
    )
    region: Region = Field(default=Region.STANDARD, description="JumpCloud data centre.")
    base_url: str | None = Field(
        default=None, description="DI API base URL; overrides region (e.g. the simulator)."
    )
    token_url: str | None = Field(
        default=None,
        description="OAuth token endpoint for service accounts; default: the region's.",
    )
    auth_kind: AuthKind = Field(default=AuthKind.API_KEY, description="How to authenticate.")
    secret_id: str | None = Field(
        default=None, description="Secrets Manager id of the JumpCloud credential."
    )
    object_lock_mode: ObjectLockMode | None = Field(
        default=None,
        description="Object Lock mode set on sealed day objects and manifests; unset: none.",
    )
    object_lock_days: int | None = Field(
        default=None,
        ge=1,
        description="Object Lock retention of sealed day objects and manifests, in days.",
    )
    rate_limit_per_second: float = Field(
        default=10.0,
        gt=0,
        le=1000,
        description=(
            "DI requests per second this run may send with its credential (all threads "
            "together); about 10/s is the polite ceiling for one key. With several concurrent "
            "runs (fan-out) each gets its share."
        ),
    )
    max_requests_in_flight: int = Field(
        default=16,
        ge=1,
        le=256,
        description="DI requests outstanding at once with this run's credential.",
    )
    concurrency: int = Field(
        default=4,
        ge=1,
        le=64,
        description=(
            "Time buckets (of any orgs) archived at once; each holds one bucket in memory. "
            "1 keeps one sequential cursor. Reaching the rate limit needs about rate x page "
            "latency buckets in flight."
        ),
    )
    org_queue_url: str | None = Field(
        default=None,
        description=(
            "SQS FIFO queue of per-org work (fan-out): a dispatch run enqueues one message per "
            "org there, and an org that ran out of time re-enqueues itself."
        ),
    )
    duty: Duty = Field(
        default=Duty.ALL,
        description="What this process may do (deployed: archive, seal or verify; local: all).",
    )
    signing_key_id: str | None = Field(
        default=None,
        description="KMS key (SIGN_VERIFY, ECC_NIST_P256) that signs day manifests; verify reads "
        "its public key.",
    )
    signing_key_file: str | None = Field(
        default=None, description="Local PEM private key that signs day manifests (no KMS)."
    )
    head_event_bus: str | None = Field(
        default=None,
        description="EventBridge bus that receives each signed day's manifest hash (outside "
        "the bucket).",
    )
    time_budget_reserve_seconds: int = Field(
        default=60,
        ge=0,
        description="Stop starting buckets when less than this much Lambda time remains.",
    )

    @field_validator("org_ids", "services", mode="before")
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("org_ids")
    @classmethod
    def _org_ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Positions, not values: a credential pasted into the wrong variable must not be echoed.
        bad = [str(i + 1) for i, org in enumerate(value) if not ORG_ID_PATTERN.match(org)]
        if bad:
            raise ValueError(
                f"org ids must be 24 lower-case hex characters; entry {', '.join(bad)} is not"
            )
        if len(set(value)) != len(value):
            raise ValueError("org ids must not repeat")
        return value

    @field_validator("services")
    @classmethod
    def _services(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one service, or 'all'")
        if ALL_SERVICES in value and len(value) > 1:
            raise ValueError("'all' already includes every service; list it alone")
        unknown = [s for s in value if s != ALL_SERVICES and s not in KNOWN_SERVICES]
        if unknown:
            raise ValueError(
                f"unknown service(s) {unknown}; valid: {', '.join((ALL_SERVICES, *KNOWN_SERVICES))}"
            )
        return value

    @field_validator("bucket_minutes")
    @classmethod
    def _bucket(cls, value: int) -> int:
        if value < 1 or MINUTES_PER_DAY % value:
            raise ValueError(f"must divide 1440 (a day), e.g. 15, 30, 60, 120; got {value}")
        return value

    @model_validator(mode="after")
    def _destinations(self) -> ArchiverSettings:
        if (self.archive_bucket is None) == (self.archive_dir is None):
            raise ValueError("set exactly one of archive_bucket (S3) or archive_dir (local)")
        if self.archive_bucket is not None and self.kms_key_id == "":
            raise ValueError("kms_key_id is empty; unset it for SSE-S3")
        if (self.object_lock_mode is None) != (self.object_lock_days is None):
            raise ValueError("set both object_lock_mode and object_lock_days, or neither")
        if self.signing_key_id is not None and self.signing_key_file is not None:
            raise ValueError("set signing_key_id (KMS) or signing_key_file (local), not both")
        if self.duty is Duty.SEAL and self.signing_key_id is None and self.signing_key_file is None:
            raise ValueError("the seal duty signs every manifest: set signing_key_id")
        if not all(SERVICE_NAME_PATTERN.match(s) for s in self.services if s != ALL_SERVICES):
            raise ValueError("service names must be lower-case identifiers")
        return self

    @field_validator("base_url", "token_url")
    @classmethod
    def _api_url(cls, value: str | None) -> str | None:
        # The credential is sent there: https only (http to localhost), no metadata hosts.
        if value is None:
            return None
        try:
            return validate_api_url(value, setting="the URL")
        except SettingsError as exc:
            raise ValueError(str(exc)) from None

    @property
    def di_base_url(self) -> str:
        return (self.base_url or REGION_BASE_URLS[self.region]).rstrip("/")

    @property
    def oauth_token_url(self) -> str:
        """The token endpoint: ``token_url`` when given, else the region's."""
        return self.token_url or REGION_TOKEN_URLS[self.region]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ArchiverSettings:
        """Build from ``DI_ARCHIVER_*`` variables; unknown ones are an error, not ignored."""
        values: dict[str, Any] = {}
        known = {name.upper(): name for name in cls.model_fields}
        for key, raw in environ.items():
            if not key.startswith(ENV_PREFIX):
                continue
            name = key.removeprefix(ENV_PREFIX)
            if name not in known:
                raise SettingsError(
                    f"unknown setting {key}; known: {', '.join(ENV_PREFIX + k for k in known)}"
                )
            values[known[name]] = raw
        return cls.build(values, source="environment")

    @classmethod
    def build(
        cls,
        values: Mapping[str, Any],
        *,
        source: str = "arguments",
        flags: Mapping[str, str] | None = None,
    ) -> ArchiverSettings:
        """Validate ``values``; every problem becomes one SettingsError naming the settings.

        ``flags`` (field -> command-line flag) names what the user typed instead of the
        environment variable, and quotes the value (flags never carry a credential).
        """
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            raise SettingsError(
                describe_validation_error(exc, source=source, flags=flags)
            ) from None


def describe_validation_error(
    exc: ValidationError, *, source: str, flags: Mapping[str, str] | None = None
) -> str:
    """A readable, secret-free summary: setting name and what is wrong.

    Values are quoted only for flags: an environment may hold anything, a flag was typed.
    """
    problems = []
    for error in exc.errors(include_url=False, include_input=flags is not None):
        location = ".".join(str(part) for part in error["loc"]) or "settings"
        field_name = location.split(".")[0]
        if flags is not None and field_name in flags:
            value = error.get("input")
            if isinstance(value, list | tuple):
                shown = " " + " ".join(repr(str(item)[:80]) for item in value[:5])
            else:
                shown = "" if isinstance(value, dict) else f" {str(value)[:80]!r}"
            problems.append(f"{flags[field_name]}{shown}: {error['msg']}")
            continue
        env_name = ENV_PREFIX + field_name.upper() if error["loc"] else location
        problems.append(f"{env_name}: {error['msg']}")
    return f"invalid settings from {source}: " + "; ".join(problems)


def settings_env_names() -> dict[str, str]:
    """Field name -> environment variable, for the CDK stack and the README."""
    return {name: ENV_PREFIX + name.upper() for name in ArchiverSettings.model_fields}
