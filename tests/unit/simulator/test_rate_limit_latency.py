"""The simulator's per-credential rate limit and fixed latency (the benchmark's API model)."""

from __future__ import annotations

import pytest

from di_archiver.simulator import (
    OrgSpec,
    RateLimitConfig,
    Simulator,
    SimulatorClock,
    SimulatorConfig,
)

from .conftest import KEY, NOW_NS, ORG, base_query, call, make_sim


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _limited(clock: _Clock, *, per_second: float = 2.0, burst: int = 2) -> Simulator:
    config = SimulatorConfig.quiet(
        orgs=(OrgSpec(org_id=ORG, event_count=50),),
        api_keys={KEY: ORG, "other-key": ORG},
        rate_limit=RateLimitConfig(per_second=per_second, burst=burst),
    )
    return Simulator(config, clock=SimulatorClock(NOW_NS), monotonic=clock)


def test_requests_beyond_the_burst_are_throttled_with_retry_after() -> None:
    # Given a limit of 2 requests/s with a burst of 2
    clock = _Clock()
    sim = _limited(clock)
    # When three requests arrive at the same instant
    statuses = [call(sim, "events", base_query()) for _ in range(3)]
    # Then the third is throttled, told to come back in a whole second, and counted
    assert [r.status for r in statuses] == [200, 200, 429]
    assert statuses[2].headers["retry-after"] == "1"
    assert sim.stats["rate_limited"] == 1
    # And once the bucket refilled for half a second (one token at 2/s), one more passes
    clock.now += 0.5
    assert call(sim, "events", base_query()).status == 200
    assert call(sim, "events", base_query()).status == 429


def test_the_limit_is_per_credential() -> None:
    # Given one credential's burst is spent
    clock = _Clock()
    sim = _limited(clock, burst=1)
    assert call(sim, "events", base_query()).status == 200
    assert call(sim, "events", base_query()).status == 429
    # When another key asks at the same instant, Then it has its own bucket
    assert call(sim, "events", base_query(), [("x-api-key", "other-key")]).status == 200


def test_a_sustained_rate_at_the_limit_is_never_throttled() -> None:
    # Given 10 requests/s, burst 1, and a client that sends exactly every 100 ms
    clock = _Clock()
    sim = _limited(clock, per_second=10.0, burst=1)
    statuses = []
    for _ in range(50):
        statuses.append(call(sim, "events", base_query()).status)
        clock.now += 0.1
    # Then every request passes
    assert set(statuses) == {200}


def test_latency_applies_to_every_di_request_and_adds_to_slow_faults() -> None:
    # Given a fixed 250 ms latency
    sim = make_sim(50, latency_ms=250)
    reply = sim.handle("POST", "/insights/directory/v1/events", [("x-api-key", KEY)], b"{}")
    assert reply.delay_seconds == pytest.approx(0.25)
    # When a slow fault of 200 ms also hits, Then the delays add up
    sim.queue_faults("slow")
    slow = sim.handle("POST", "/insights/directory/v1/events", [("x-api-key", KEY)], b"{}")
    assert slow.delay_seconds == pytest.approx(0.45)


def test_bad_limits_are_rejected() -> None:
    with pytest.raises(ValueError, match="per_second"):
        RateLimitConfig(per_second=0)
    with pytest.raises(ValueError, match="latency"):
        SimulatorConfig.quiet(latency_ms=-1)
