"""One validated settings model, read once from the environment at the edge.

Domain code receives plain values from this model and never reads ``os.environ``. The CDK
stack sets exactly these variables (see ``ENV_PREFIX``); ``di-archiver run`` builds the same
model from its arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from enum import StrEnum
from typing import Any

from di_archiver.errors import SettingsError
from di_archiver.layout import ORG_ID_PATTERN
from di_archiver.services import ALL_SERVICES, KNOWN_SERVICES, SERVICE_NAME_PATTERN
from di_archiver.urls import validate_api_url
from di_archiver.validation import (
    Problem,
    Refused,
    bound_problem,
    to_enum,
    to_float,
    to_int,
    to_str,
)

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


class InvalidSettings(SettingsError):
    """Settings that failed validation; :meth:`ArchiverSettings.build` words them for the user."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(describe_problems(problems, source="arguments"))
        self.problems = problems


def _about(doc: str, **limits: float) -> dict[str, Any]:
    """A field's metadata: its description and its bounds (``ge``, ``gt``, ``le``)."""
    return {"doc": doc, **limits}


# A plain frozen dataclass checked by hand (see ``validation``): pydantic's import and schema
# build were about half of the handler's cold-start CPU.
@dataclass(frozen=True, kw_only=True)
class ArchiverSettings:
    """Everything one archiving pass needs to know, validated before any I/O happens.

    Built by :meth:`build` or :meth:`from_env` (which word every problem for the user), but any
    construction validates, so an instance is always valid; :meth:`replace` re-validates too.
    """

    org_ids: tuple[str, ...] = field(
        metadata=_about("JumpCloud organisation ids to archive.", min_items=1)
    )
    services: tuple[str, ...] = field(
        default=(ALL_SERVICES,),
        metadata=_about(
            "DI services to query; 'all' (default) also collects services added later."
        ),
    )
    bucket_minutes: int = field(
        default=60, metadata=_about("Width of one time bucket; must divide a day (1440 minutes).")
    )
    lag_seconds: int = field(
        default=300,
        metadata=_about("Buckets end no later than now minus this lag.", ge=0, le=86_400),
    )
    settle_seconds: int = field(
        default=7_200,
        metadata=_about(
            "A bucket stays open (rewritten each run) this long after its end.",
            ge=0,
            le=30 * 86_400,
        ),
    )
    lookback_days: int = field(
        default=90,
        metadata=_about("First run backfills this far back (DI retention).", ge=1, le=90),
    )
    max_events_per_bucket: int = field(
        default=500_000,
        metadata=_about(
            "Refuse to hold a bucket bigger than this in memory; lower bucket_minutes.", ge=1
        ),
    )
    max_bucket_bytes: int = field(
        default=96 * 1024 * 1024,
        metadata=_about(
            "Refuse to hold more serialised event bytes of one bucket than this in memory (two "
            "buckets may be in flight); lower bucket_minutes.",
            ge=1,
        ),
    )
    page_limit: int = field(default=10_000, metadata=_about("DI page size.", ge=1, le=10_000))
    archive_bucket: str | None = field(default=None, metadata=_about("S3 bucket of the archive."))
    archive_prefix: str = field(default="di", metadata=_about("Key prefix inside the archive."))
    archive_dir: str | None = field(
        default=None, metadata=_about("Local archive directory (instead of S3).")
    )
    kms_key_id: str | None = field(
        default=None, metadata=_about("SSE-KMS key for archive objects; SSE-S3 when unset.")
    )
    checkpoint_parameter_prefix: str = field(
        default="/di-archiver/checkpoints",
        metadata=_about("SSM path under which each org's checkpoint parameter lives."),
    )
    checkpoint_file: str | None = field(
        default=None, metadata=_about("Local checkpoint file (instead of SSM).")
    )
    region: Region = field(default=Region.STANDARD, metadata=_about("JumpCloud data centre."))
    base_url: str | None = field(
        default=None, metadata=_about("DI API base URL; overrides region (e.g. the simulator).")
    )
    token_url: str | None = field(
        default=None,
        metadata=_about("OAuth token endpoint for service accounts; default: the region's."),
    )
    auth_kind: AuthKind = field(default=AuthKind.API_KEY, metadata=_about("How to authenticate."))
    secret_id: str | None = field(
        default=None, metadata=_about("Secrets Manager id of the JumpCloud credential.")
    )
    object_lock_mode: ObjectLockMode | None = field(
        default=None,
        metadata=_about("Object Lock mode set on sealed day objects and manifests; unset: none."),
    )
    object_lock_days: int | None = field(
        default=None,
        metadata=_about(
            "Object Lock retention of sealed day objects and manifests, in days.", ge=1
        ),
    )
    rate_limit_per_second: float = field(
        default=10.0,
        metadata=_about(
            "DI requests per second this run may send with its credential (all threads "
            "together); about 10/s is the polite ceiling for one key. With several concurrent "
            "runs (fan-out) each gets its share.",
            gt=0,
            le=1000,
        ),
    )
    max_requests_in_flight: int = field(
        default=16,
        metadata=_about(
            "DI requests outstanding at once with this run's credential.", ge=1, le=256
        ),
    )
    concurrency: int = field(
        default=4,
        metadata=_about(
            "Time buckets (of any orgs) archived at once; each keeps a few MB of encoder "
            "state, and received pages are held one at a time across all of them. 1 keeps one "
            "sequential cursor. Reaching the rate limit needs about rate x page latency "
            "buckets in flight.",
            ge=1,
            le=64,
        ),
    )
    org_queue_url: str | None = field(
        default=None,
        metadata=_about(
            "SQS FIFO queue of per-org work (fan-out): a dispatch run enqueues one message per "
            "org there, and an org that ran out of time re-enqueues itself."
        ),
    )
    duty: Duty = field(
        default=Duty.ALL,
        metadata=_about(
            "What this process may do (deployed: archive, seal or verify; local: all)."
        ),
    )
    signing_key_id: str | None = field(
        default=None,
        metadata=_about(
            "KMS key (SIGN_VERIFY, ECC_NIST_P256) that signs day manifests; verify reads "
            "its public key."
        ),
    )
    signing_key_file: str | None = field(
        default=None, metadata=_about("Local PEM private key that signs day manifests (no KMS).")
    )
    head_event_bus: str | None = field(
        default=None,
        metadata=_about(
            "EventBridge bus that receives each signed day's manifest hash (outside the bucket)."
        ),
    )
    time_budget_reserve_seconds: int = field(
        default=60,
        metadata=_about(
            "Stop starting buckets when less than this much Lambda time remains.", ge=0
        ),
    )

    def __post_init__(self) -> None:
        # Normalise in place (a frozen dataclass is still being initialised here): strings
        # from the environment become ints, enums and tuples, or every problem is raised.
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in _validate(current).items():
            object.__setattr__(self, name, value)

    @property
    def di_base_url(self) -> str:
        return (self.base_url or REGION_BASE_URLS[self.region]).rstrip("/")

    @property
    def oauth_token_url(self) -> str:
        """The token endpoint: ``token_url`` when given, else the region's."""
        return self.token_url or REGION_TOKEN_URLS[self.region]

    def values(self, *, explicit_only: bool = False) -> dict[str, Any]:
        """Field name -> value; ``explicit_only``: only those given to :meth:`build` (the rest
        are defaults, which the deployed environment need not spell out)."""
        given = getattr(self, "_given", None) if explicit_only else None
        return {
            f.name: getattr(self, f.name) for f in fields(self) if given is None or f.name in given
        }

    def replace(self, **changes: Any) -> ArchiverSettings:
        """A copy with ``changes`` applied, validated like the original."""
        return self.build({**self.values(explicit_only=True), **changes})

    @classmethod
    def default_of(cls, name: str) -> Any:
        """The default of setting ``name`` (for help texts)."""
        return next(f.default for f in fields(cls) if f.name == name)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ArchiverSettings:
        """Build from ``DI_ARCHIVER_*`` variables; unknown ones are an error, not ignored."""
        values: dict[str, Any] = {}
        known = {f.name.upper(): f.name for f in fields(cls)}
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
            settings = cls(**_validate(dict(values)))
        except InvalidSettings as exc:
            raise SettingsError(
                describe_problems(exc.problems, source=source, flags=flags)
            ) from None
        # Which settings were given (not defaulted): the stack puts only those in the
        # function's environment. Not a field, so not a setting.
        object.__setattr__(settings, "_given", frozenset(values))
        return settings


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` checked and converted field by field, then as a whole (InvalidSettings).

    Every field's problems are collected, so one message names them all; the cross-field
    rules run only on fields that are each valid, and the first one broken is reported.
    """
    problems: list[Problem] = []
    clean: dict[str, Any] = {}
    for spec in fields(ArchiverSettings):
        if spec.name not in values:
            if spec.default is MISSING:
                problems.append(Problem((spec.name,), "Field required", values))
            continue
        found = _check_field(spec, values[spec.name])
        if isinstance(found, list):
            problems.extend(found)
        else:
            clean[spec.name] = found
    known = {spec.name for spec in fields(ArchiverSettings)}
    problems.extend(
        Problem((key,), "Extra inputs are not permitted", value)
        for key, value in values.items()
        if key not in known
    )
    if not problems:
        merged = {spec.name: spec.default for spec in fields(ArchiverSettings)} | clean
        problem = _cross_field_problem(merged)
        if problem is not None:
            problems.append(Problem((), f"Value error, {problem}", values))
    if problems:
        raise InvalidSettings(problems)
    return clean


def _check_field(spec: Field[Any], raw: Any) -> Any:
    """The field's value converted and checked, or the list of its problems."""
    name, kind = spec.name, str(spec.type)
    if kind.endswith(" | None"):
        if raw is None:
            return None
        kind = kind.removesuffix(" | None")
    problems: list[Problem] = []
    if kind == "tuple[str, ...]":
        items = _split_csv(raw)
        if not isinstance(items, list | tuple | set | frozenset):
            return [Problem((name,), "Input should be a valid tuple", raw)]
        for index, item in enumerate(items):
            if not isinstance(item, str):
                problems.append(Problem((name, index), "Input should be a valid string", item))
        if problems:
            return problems
        value: Any = tuple(items)
        minimum = spec.metadata.get("min_items")
        if minimum is not None and len(value) < minimum:
            return [
                Problem(
                    (name,),
                    f"Tuple should have at least {minimum} item after validation, not {len(value)}",
                    items,
                )
            ]
    else:
        converted = _CONVERTERS[kind](raw)
        if isinstance(converted, Refused):
            return [Problem((name,), converted.msg, raw)]
        value = converted
        bound = bound_problem(value, spec.metadata)
        if bound is not None:
            return [Problem((name,), bound, raw)]
    check = _FIELD_CHECKS.get(name)
    if check is not None:
        try:
            value = check(value)
        except ValueError as exc:
            return [Problem((name,), f"Value error, {exc}", raw)]
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": to_int,
    "float": to_float,
    "str": to_str,
    "Region": to_enum(Region),
    "AuthKind": to_enum(AuthKind),
    "Duty": to_enum(Duty),
    "ObjectLockMode": to_enum(ObjectLockMode),
}


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _check_org_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    # Positions, not values: a credential pasted into the wrong variable must not be echoed.
    bad = [str(i + 1) for i, org in enumerate(value) if not ORG_ID_PATTERN.match(org)]
    if bad:
        raise ValueError(
            f"org ids must be 24 lower-case hex characters; entry {', '.join(bad)} is not"
        )
    if len(set(value)) != len(value):
        raise ValueError("org ids must not repeat")
    return value


def _check_services(value: tuple[str, ...]) -> tuple[str, ...]:
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


def _check_bucket_minutes(value: int) -> int:
    if value < 1 or MINUTES_PER_DAY % value:
        raise ValueError(f"must divide 1440 (a day), e.g. 15, 30, 60, 120; got {value}")
    return value


def _check_api_url(value: str) -> str:
    # The credential is sent there: https only (http to localhost), no metadata hosts.
    try:
        return validate_api_url(value, setting="the URL")
    except SettingsError as exc:
        raise ValueError(str(exc)) from None


_FIELD_CHECKS: dict[str, Callable[[Any], Any]] = {
    "org_ids": _check_org_ids,
    "services": _check_services,
    "bucket_minutes": _check_bucket_minutes,
    "base_url": _check_api_url,
    "token_url": _check_api_url,
}


def _cross_field_problem(v: Mapping[str, Any]) -> str | None:
    """The first rule that ties settings together and is broken, if any."""
    if (v["archive_bucket"] is None) == (v["archive_dir"] is None):
        return "set exactly one of archive_bucket (S3) or archive_dir (local)"
    if v["archive_bucket"] is not None and v["kms_key_id"] == "":
        return "kms_key_id is empty; unset it for SSE-S3"
    if (v["object_lock_mode"] is None) != (v["object_lock_days"] is None):
        return "set both object_lock_mode and object_lock_days, or neither"
    if v["signing_key_id"] is not None and v["signing_key_file"] is not None:
        return "set signing_key_id (KMS) or signing_key_file (local), not both"
    if v["duty"] is Duty.SEAL and v["signing_key_id"] is None and v["signing_key_file"] is None:
        return "the seal duty signs every manifest: set signing_key_id"
    if not all(SERVICE_NAME_PATTERN.match(s) for s in v["services"] if s != ALL_SERVICES):
        return "service names must be lower-case identifiers"
    return None


def describe_problems(
    problems: list[Problem], *, source: str, flags: Mapping[str, str] | None = None
) -> str:
    """A readable, secret-free summary: setting name and what is wrong.

    Values are quoted only for flags: an environment may hold anything, a flag was typed.
    """
    described = []
    for problem in problems:
        location = ".".join(str(part) for part in problem.loc) or "settings"
        field_name = location.split(".")[0]
        if flags is not None and field_name in flags:
            value = problem.input
            if isinstance(value, list | tuple):
                shown = " " + " ".join(repr(str(item)[:80]) for item in value[:5])
            else:
                shown = "" if isinstance(value, dict) else f" {str(value)[:80]!r}"
            described.append(f"{flags[field_name]}{shown}: {problem.msg}")
            continue
        env_name = ENV_PREFIX + field_name.upper() if problem.loc else location
        described.append(f"{env_name}: {problem.msg}")
    return f"invalid settings from {source}: " + "; ".join(described)


def settings_env_names() -> dict[str, str]:
    """Field name -> environment variable, for the CDK stack and the README."""
    return {f.name: ENV_PREFIX + f.name.upper() for f in fields(ArchiverSettings)}
