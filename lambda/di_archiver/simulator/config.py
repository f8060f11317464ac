"""Configuration of the DI simulator: orgs, credentials, faults, late indexing.

Credentials (API keys, client secrets) are excluded from every ``repr`` so a config can be
logged or shown in a failing test without leaking them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from di_archiver.errors import SettingsError

DEMO_ORG_ID = "64a0c0ffee0000000000a001"
DEMO_API_KEY = "sim-key-1"
DEMO_CLIENT_ID = "sim-client"
DEMO_CLIENT_SECRET = "sim-secret"  # noqa: S105 (a published demo credential for the simulator)

DEFAULT_LIMIT = 1000
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class OrgSpec:
    """One simulated organisation and the size of its corpus."""

    org_id: str = DEMO_ORG_ID
    event_count: int = 20_000
    di_enabled: bool = True


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Per-request fault rates (each in [0, 1]); all zero (off) unless set.

    One seeded draw per request picks at most one fault, so a run is reproducible for a
    sequential client. Rates are cumulative, so their sum must not exceed 1.
    """

    rate_429: float = 0.0
    rate_429_retry_after_share: float = 0.5
    retry_after_seconds: int = 1
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_slow: float = 0.0
    slow_ms: int = 200
    rate_truncated: float = 0.0
    rate_reset: float = 0.0
    seed: int = 0
    include_token_endpoint: bool = False

    def __post_init__(self) -> None:
        rates = (
            self.rate_429,
            self.rate_500,
            self.rate_503,
            self.rate_slow,
            self.rate_truncated,
            self.rate_reset,
        )
        if any(r < 0 for r in rates) or sum(rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and sum to at most 1")

    @classmethod
    def off(cls) -> FaultConfig:
        """No faults at all."""
        return cls()

    @classmethod
    def modest(cls, rate: float = 0.02, seed: int = 0) -> FaultConfig:
        """Every fault type at ``rate`` (the demo default)."""
        return cls(
            rate_429=rate,
            rate_500=rate,
            rate_503=rate,
            rate_slow=rate,
            rate_truncated=rate,
            rate_reset=rate,
            seed=seed,
        )


@dataclass(frozen=True, slots=True)
class LateIndexingConfig:
    """A share of events becomes searchable only ``delay`` after its timestamp.

    Delays are log-normal around ``median_delay_seconds`` (heavy-tailed); agent-sourced
    services (systems, software) get ``agent_delay_factor`` times longer delays. All capped.
    """

    share: float = 0.05
    median_delay_seconds: float = 600.0
    sigma: float = 1.5
    agent_delay_factor: float = 6.0
    max_delay_seconds: float = 2 * 86_400.0

    @classmethod
    def off(cls) -> LateIndexingConfig:
        """Every event is searchable at its own timestamp."""
        return cls(share=0.0)


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    """A per-credential token bucket, like an API gateway's: ``per_second`` requests refill it
    and it holds at most ``burst``; a request finding it empty is answered 429 with an integer
    ``Retry-After`` (the seconds until a token is back, at least 1)."""

    per_second: float = 10.0
    burst: int = 10

    def __post_init__(self) -> None:
        if not self.per_second > 0 or self.burst < 1:
            raise ValueError("rate limit per_second must be > 0 and burst >= 1")


def _default_orgs() -> tuple[OrgSpec, ...]:
    return (OrgSpec(),)


def _default_keys() -> dict[str, str]:
    return {DEMO_API_KEY: DEMO_ORG_ID}


def _default_accounts() -> dict[str, str]:
    return {DEMO_CLIENT_ID: DEMO_CLIENT_SECRET}


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """Everything that shapes a simulator; ``SimulatorConfig()`` is a sensible demo."""

    seed: int = 7
    orgs: tuple[OrgSpec, ...] = field(default_factory=_default_orgs)
    span_seconds: float = 3 * 86_400.0
    # Events with timestamps up to this far past "now" appear as the clock reaches them.
    future_span_seconds: float = 0.0
    retention_days: int = 90
    api_keys: Mapping[str, str] = field(default_factory=_default_keys, repr=False)
    non_admin_keys: frozenset[str] = field(default_factory=frozenset, repr=False)
    service_accounts: Mapping[str, str] = field(default_factory=_default_accounts, repr=False)
    token_ttl_seconds: int = 3600
    end_time_inclusive: bool = True
    tie_share: float = 0.2
    include_workflows: bool = False
    faults: FaultConfig = field(default_factory=FaultConfig.modest)
    late: LateIndexingConfig = field(default_factory=LateIndexingConfig)
    # Searches with more leaf terms than this answer 500, like DI's "too complex" queries.
    max_search_terms: int = 64
    render_cache_bytes: int = 64 * 1024 * 1024
    # Every DI request (not the token endpoint) takes this long before it is answered, like
    # a remote API's latency; independent of the "slow" fault, which adds to it.
    latency_ms: int = 0
    # Per-credential request rate the API enforces (None: unlimited, the default).
    rate_limit: RateLimitConfig | None = None

    def __post_init__(self) -> None:
        if self.latency_ms < 0:
            raise ValueError("latency_ms must be >= 0")
        ids = [org.org_id for org in self.orgs]
        if len(set(ids)) != len(ids):
            raise ValueError("org ids must be unique")
        if not 0.0 <= self.tie_share <= 1.0:
            raise ValueError("tie_share must be in [0, 1]")
        if not 0.0 <= self.late.share <= 1.0:
            raise ValueError("late.share must be in [0, 1]")

    @classmethod
    def demo(cls) -> SimulatorConfig:
        """The default demo: one org, three days, modest faults and late indexing."""
        return cls()

    @classmethod
    def quiet(cls, **overrides: object) -> SimulatorConfig:
        """A test-friendly config: no faults, no late indexing, unless overridden."""
        base: dict[str, object] = {"faults": FaultConfig.off(), "late": LateIndexingConfig.off()}
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]


class SimulatorError(SettingsError):
    """The simulator cannot be configured or started as asked."""
