"""The DI client over real HTTP against the simulator: completeness under faults, ties at
page boundaries, auth failures, and OAuth token renewal mid-run."""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from di_archiver.adapters.di_auth import ApiKeyCredentials, ServiceAccountCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.errors import DIAuthenticationError, DIForbiddenError, DIPaymentRequiredError
from di_archiver.raw_events import RawEvent, serialise_event
from di_archiver.simulator import (
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    Simulator,
    SimulatorClock,
    SimulatorConfig,
    SimulatorServer,
)
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND, parse_timestamp_ns

ORG = "64a0c0ffee0000000000a001"
DISABLED_ORG = "64a0c0ffee0000000000d15a"
API_KEY = "sim-key-FUNCTIONAL-7f3a9c"
NON_ADMIN_KEY = "sim-key-COMMAND-RUNNER-11"
CLIENT_ID = "sim-client"
CLIENT_SECRET = "sim-secret-FUNCTIONAL-b4e2"
NOW_NS = 1_760_000_000 * NS_PER_SECOND
SPAN_SECONDS = 3 * 86_400
START_NS = NOW_NS - (SPAN_SECONDS + 3_600) * NS_PER_SECOND  # the whole corpus, with margin
END_NS = NOW_NS + NS_PER_SECOND
ALL_FAULTS_5PCT = FaultConfig(
    rate_429=0.05,
    rate_429_retry_after_share=0.5,
    retry_after_seconds=1,
    rate_500=0.05,
    rate_503=0.05,
    rate_slow=0.05,
    slow_ms=20,
    rate_truncated=0.05,
    rate_reset=0.05,
    seed=11,
)


class Sleeps(list[float]):
    """Injected sleep: records the waits the client asks for instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def multiset(events: Iterable[RawEvent | dict[str, Any]]) -> Counter[bytes]:
    """Each event's bytes: as received (RawEvent), or as the simulator serves a dict."""
    return Counter(e.line if isinstance(e, RawEvent) else serialise_event(e) for e in events)


def ms(event: RawEvent | dict[str, Any]) -> int:
    if isinstance(event, RawEvent):
        return event.ts_ns // NS_PER_MS
    return parse_timestamp_ns(event["timestamp"]) // NS_PER_MS


def make_sim(event_count: int, **overrides: Any) -> Simulator:
    config: dict[str, Any] = {
        "seed": 7,
        "orgs": (
            OrgSpec(org_id=ORG, event_count=event_count),
            OrgSpec(org_id=DISABLED_ORG, event_count=10, di_enabled=False),
        ),
        "span_seconds": SPAN_SECONDS,
        "api_keys": {API_KEY: ORG, NON_ADMIN_KEY: ORG},
        "non_admin_keys": frozenset({NON_ADMIN_KEY}),
        "service_accounts": {CLIENT_ID: CLIENT_SECRET},
        "faults": FaultConfig.off(),
        "late": LateIndexingConfig.off(),
    }
    config.update(overrides)
    return Simulator(SimulatorConfig(**config), clock=SimulatorClock(now_ns=NOW_NS))


def api_client(server: SimulatorServer, key: str = API_KEY, **kwargs: Any) -> DIClient:
    kwargs.setdefault("sleep", Sleeps())
    return DIClient(base_url=server.base_url, credentials=ApiKeyCredentials(api_key=key), **kwargs)


@pytest.fixture(scope="module")
def big_sim() -> Iterator[tuple[Simulator, SimulatorServer, list[dict[str, Any]]]]:
    sim = make_sim(50_000)
    truth = sim.visible_events(ORG)
    with sim.serve() as server:
        yield sim, server, truth


@pytest.mark.slow
def test_every_event_exactly_once_under_all_faults(
    big_sim: tuple[Simulator, SimulatorServer, list[dict[str, Any]]],
) -> None:
    # Given 50,000 events and every fault at 5% (429 with and without Retry-After, 500, 503,
    # slow, truncated bodies, connection resets)
    sim, server, truth = big_sim
    sim.set_faults(ALL_FAULTS_5PCT)
    sim.reset_stats()
    sleeps = Sleeps()
    retry = RetryPolicy(max_attempts=20, base_delay=0.001, max_delay=30.0)
    # When the client reads the whole corpus in 1000-event pages
    with api_client(server, page_limit=1_000, retry=retry, sleep=sleeps) as client:
        events = list(client.iter_events(ORG, START_NS, END_NS))
    sim.set_faults(FaultConfig.off())
    # Then every fault kind really happened and was survived
    faults = sim.stats
    for kind in ("429", "429_retry_after", "500", "503", "slow", "truncated", "reset"):
        assert faults[f"fault:{kind}"] > 0, kind
    assert client.stats.throttles > 0
    assert client.stats.truncated > 0
    assert client.stats.transport_errors > 0
    assert 1.0 in sleeps  # the simulator's Retry-After: 1 was honoured over real HTTP
    # And every visible event arrived exactly once, byte for byte as the simulator sent it
    assert len(events) == len(truth) == 50_000
    ids = Counter((e.event_id, e.ts_ns) for e in events)
    assert ids == Counter((e["id"], parse_timestamp_ns(e["timestamp"])) for e in truth)
    assert max(ids.values()) == 1
    assert multiset(events) == multiset(truth)
    # And in the API's order (ascending time)
    assert [ms(e) for e in events] == sorted(ms(e) for e in events)


def test_ties_straddling_page_boundaries_lose_nothing() -> None:
    # Given a corpus dense with same-millisecond runs and a page size they must straddle
    sim = make_sim(4_000, tie_share=0.9)
    truth = sim.visible_events(ORG)
    limit = 7
    boundaries = range(limit, len(truth), limit)
    straddling = [b for b in boundaries if ms(truth[b - 1]) == ms(truth[b])]
    longest_run = max(Counter(ms(e) for e in truth).values())
    assert straddling, "the corpus must put a tie-run across a page boundary"
    assert longest_run > limit, "some tie-run must be longer than a whole page"
    with sim.serve() as server, api_client(server, page_limit=limit, prefetch=False) as client:
        # When paged 7 events at a time
        pages = list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the client saw ties across its own page boundaries
    assert any(ms(a[-1]) == ms(b[0]) for a, b in itertools.pairwise(pages))
    # And nothing was lost or repeated
    events = [e for page in pages for e in page]
    assert multiset(events) == multiset(truth)
    assert len(events) == len(truth)


@pytest.mark.parametrize(
    ("key", "org", "error", "text"),
    [
        ("not-a-valid-key-SECRET-99", ORG, DIAuthenticationError, "the API key was rejected"),
        (API_KEY, DISABLED_ORG, DIPaymentRequiredError, "Directory Insights is not enabled"),
        (NON_ADMIN_KEY, ORG, DIForbiddenError, "lacks an API-capable role"),
    ],
)
def test_auth_failures_are_clear_and_secret_free(
    key: str, org: str, error: type[Exception], text: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a simulator and a credential it refuses for this org
    caplog.set_level(logging.DEBUG)
    sim = make_sim(100)
    # When the client reads
    with (
        sim.serve() as server,
        api_client(server, key=key) as client,
        pytest.raises(error) as info,
    ):
        list(client.iter_pages(org, START_NS, END_NS))
    # Then the error says what to fix, was not retried, and shows the key nowhere
    assert text in str(info.value)
    assert sim.stats["requests:events"] == 1
    for shown in (str(info.value), repr(info.value), caplog.text, repr(client)):
        assert key not in shown


def test_service_account_secret_rejected_is_clear(caplog: pytest.LogCaptureFixture) -> None:
    # Given a service account whose client secret is wrong
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-client-secret-SECRET-55"
    sim = make_sim(100)
    creds = ServiceAccountCredentials(client_id=CLIENT_ID, client_secret=wrong)
    with sim.serve() as server:
        client = DIClient(base_url=server.base_url, token_url=server.token_url, credentials=creds)
        # When the client reads
        with pytest.raises(DIAuthenticationError) as info:
            list(client.iter_pages(ORG, START_NS, END_NS))
    # Then the token endpoint's refusal is reported without the secret
    assert "service-account credentials were rejected" in str(info.value)
    for shown in (str(info.value), repr(info.value), caplog.text, repr(client)):
        assert wrong not in shown


def _service_account_client(server: SimulatorServer, sim: Simulator, **kwargs: Any) -> DIClient:
    creds = ServiceAccountCredentials(client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    return DIClient(
        base_url=server.base_url,
        token_url=server.token_url,
        credentials=creds,
        page_limit=500,
        prefetch=False,
        # These tests move the simulated clock between pages, which assumes no request is in
        # flight while the caller holds a page.
        request_ahead=False,
        sleep=Sleeps(),
        **kwargs,
    )


def test_token_is_renewed_before_expiry_on_the_simulated_clock() -> None:
    # Given 2-minute tokens and a client that measures expiry on the simulator's clock
    sim = make_sim(5_000, token_ttl_seconds=120)
    truth = sim.visible_events(ORG)
    with sim.serve() as server:
        client = _service_account_client(
            server, sim, monotonic=lambda: sim.clock.now_ns() / NS_PER_SECOND
        )
        # When 100 simulated seconds pass between pages
        events = []
        for page in client.iter_pages(ORG, START_NS, END_NS):
            events += page
            sim.clock.advance(100)
    # Then new tokens were fetched before the old ones expired: no request was refused
    assert sim.stats["tokens_issued"] > 1
    assert sim.stats["status:401"] == 0
    assert multiset(events) == multiset(truth)


def test_token_expired_behind_the_clients_back_is_renewed_on_401() -> None:
    # Given 2-minute tokens and a client whose own clock stands still (it believes its token
    # is fresh), while the simulator's clock moves 200 s per page
    sim = make_sim(5_000, token_ttl_seconds=120)
    truth = sim.visible_events(ORG)
    with sim.serve() as server:
        client = _service_account_client(server, sim, monotonic=lambda: 0.0)
        # When the pages are read
        events = []
        for page in client.iter_pages(ORG, START_NS, END_NS):
            events += page
            sim.clock.advance(200)
    # Then each 401 led to one renewal and every event still arrived exactly once
    assert sim.stats["status:401"] > 0
    assert sim.stats["tokens_issued"] == sim.stats["status:401"] + 1
    assert client.stats.tokens_issued == sim.stats["tokens_issued"]
    assert multiset(events) == multiset(truth)
