"""Fault decisions, counters, the clock, and secrets staying out of reprs and replies."""

from __future__ import annotations

import pytest

from di_archiver.simulator import (
    FaultConfig,
    FaultKind,
    SimulatorClock,
    SimulatorConfig,
)
from di_archiver.simulator.faults import Fault, FaultInjector

from .conftest import NOW_NS, base_query, call, make_sim


def _sequence(config: FaultConfig, n: int = 400) -> list[str | None]:
    injector = FaultInjector(config)
    return [f.kind.value if (f := injector.decide()) else None for _ in range(n)]


def test_fault_decisions_are_reproducible_from_the_seed() -> None:
    config = FaultConfig.modest(0.1, seed=3)
    assert _sequence(config) == _sequence(config)
    assert _sequence(config) != _sequence(FaultConfig.modest(0.1, seed=4))


def test_every_fault_kind_occurs_at_its_rate() -> None:
    seq = _sequence(FaultConfig.modest(0.1, seed=3), n=4000)
    for kind in FaultKind:
        assert kind.value in seq
    assert 0.45 < sum(k is not None for k in seq) / len(seq) < 0.75


def test_faults_off_never_fire() -> None:
    assert set(_sequence(FaultConfig.off())) == {None}


def test_rates_above_one_are_rejected() -> None:
    with pytest.raises(ValueError, match="fault rates"):
        FaultConfig(rate_500=0.7, rate_503=0.7)


def test_queued_faults_come_first_then_rates_resume() -> None:
    injector = FaultInjector(FaultConfig.off())
    injector.queue("503", FaultKind.RESET)
    assert [injector.decide(), injector.decide(), injector.decide()] == [
        injector_fault("503"),
        injector_fault("reset"),
        None,
    ]


def injector_fault(kind: str) -> Fault:
    return Fault(FaultKind(kind))


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [("429", 429, None), ("429_retry_after", 429, "1"), ("500", 500, None), ("503", 503, None)],
)
def test_status_faults_answer_with_their_status_and_count(
    kind: str, status: int, retry_after: str | None
) -> None:
    sim = make_sim(100)
    sim.queue_faults(kind)
    reply = call(sim, "events", base_query())
    assert reply.status == status
    assert reply.headers.get("retry-after") == retry_after
    assert "message" in reply.json
    assert sim.stats[f"fault:{kind}"] == 1
    assert sim.stats["faults"] == 1
    # The next request is healthy again.
    assert call(sim, "events", base_query()).status == 200


def test_transport_faults_are_marked_for_the_server() -> None:
    sim = make_sim(100)
    sim.queue_faults("truncated", "reset", "slow")
    assert sim.handle("POST", "/insights/directory/v1/events", [("x-api-key", "sim-key-1")],
                      b"{}").transport == "truncate"  # fmt: skip
    assert sim.handle("POST", "/insights/directory/v1/events/count", [], b"").transport == "reset"
    slow = sim.handle("POST", "/insights/directory/v1/events", [], b"")
    assert slow.delay_seconds == pytest.approx(0.2)


def test_token_endpoint_is_spared_unless_configured() -> None:
    sim = make_sim(10)
    sim.set_faults(FaultConfig(rate_503=1.0))
    reply = sim.handle("POST", "/oauth2/token", [], b"grant_type=client_credentials")
    assert reply.status == 401  # a normal answer (bad credentials), not a 503
    sim.set_faults(FaultConfig(rate_503=1.0, include_token_endpoint=True))
    assert sim.handle("POST", "/oauth2/token", [], b"").status == 503


def test_frozen_clock_moves_only_when_told() -> None:
    clock = SimulatorClock(NOW_NS)
    assert clock.now_ns() == NOW_NS
    assert clock.advance(1.5) == NOW_NS + 1_500_000_000
    clock.set_ns(5)
    assert clock.now_ns() == 5


def test_real_clock_keeps_ticking_with_an_offset() -> None:
    clock = SimulatorClock()
    start = clock.now_ns()
    clock.advance(3600)
    assert clock.now_ns() >= start + 3600 * 1_000_000_000
    assert not clock.frozen


def test_secrets_stay_out_of_reprs_and_replies() -> None:
    config = SimulatorConfig(
        api_keys={"very-secret-key": "64a0c0ffee0000000000a001"},
        service_accounts={"client": "very-secret-secret"},
    )
    assert "very-secret" not in repr(config)
    sim = make_sim(10, service_accounts={"client": "very-secret-secret"})
    assert "very-secret" not in repr(sim)
    body = b"grant_type=client_credentials&client_id=client&client_secret=wrong-secret-guess"
    reply = sim.handle("POST", "/oauth2/token", [], body)
    assert reply.status == 401
    assert b"secret" not in reply.body.replace(b"invalid_client", b"")
