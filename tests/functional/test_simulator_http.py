"""The DI simulator over real HTTP on 127.0.0.1: paging, faults, auth, tokens, late events."""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from di_archiver.simulator import (
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    Simulator,
    SimulatorClock,
    SimulatorConfig,
    SimulatorError,
    SimulatorServer,
    command,
)
from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns

NOW_NS = 1_777_777_777_123_456_789
ORG_A = "64a0c0ffee0000000000a001"
ORG_B = "64a0c0ffee0000000000a002"
ORG_OFF = "64a0c0ffee0000000000a0ff"
KEY = "sim-key-1"
START = format_timestamp_ns(NOW_NS - 30 * 86_400 * NS_PER_SECOND)


def _query(**extra: Any) -> dict[str, Any]:
    return {"service": ["all"], "start_time": START, **extra}


def page_all(client: httpx.Client, body: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    """The documented loop: while X-Result-Count >= X-Limit, send back X-Search_after."""
    body = dict(body)
    events: list[dict[str, Any]] = []
    while True:
        response = client.post("/events", json=body, **kwargs)
        assert response.status_code == 200, response.text
        events.extend(response.json())
        if int(response.headers["X-Result-Count"]) < int(response.headers["X-Limit"]):
            return events
        body["search_after"] = json.loads(response.headers["X-Search_after"])


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[Simulator, SimulatorServer]]:
    config = SimulatorConfig(
        seed=11,
        orgs=(
            OrgSpec(org_id=ORG_A, event_count=50_000),
            OrgSpec(org_id=ORG_B, event_count=3_000),
            OrgSpec(org_id=ORG_OFF, event_count=10, di_enabled=False),
        ),
        api_keys={KEY: ORG_A, "runner-key": ORG_A},
        non_admin_keys=frozenset({"runner-key"}),
        token_ttl_seconds=5,
        faults=FaultConfig.off(),
        late=LateIndexingConfig(share=0.05),
    )
    sim = Simulator(config, clock=SimulatorClock(NOW_NS))
    with sim.serve() as server:
        yield sim, server


@pytest.fixture
def client(big: tuple[Simulator, SimulatorServer]) -> Iterator[httpx.Client]:
    sim, server = big
    sim.set_faults(FaultConfig.off())
    with httpx.Client(base_url=server.api_url, headers={"x-api-key": KEY}, timeout=30) as c:
        yield c


def test_paging_retrieves_exactly_the_visible_corpus_of_a_50k_org(
    big: tuple[Simulator, SimulatorServer], client: httpx.Client
) -> None:
    # Given a 50k-event org (with ties and late events) and faults off
    sim, _ = big
    # When paging with limit 10000 and the documented stop rule
    events = page_all(client, _query(limit=10_000))
    # Then the result is exactly the simulator's visible ground truth, in API order
    truth = sim.visible_events(ORG_A)
    assert len(truth) > 45_000
    assert events == truth
    assert len({(e["id"], e["timestamp"]) for e in events}) == len(events)


def test_header_spellings_are_exact_and_keep_alive_works(
    big: tuple[Simulator, SimulatorServer],
) -> None:
    _, server = big
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(2):  # the second request reuses the same connection
            conn.request(
                "POST",
                "/insights/directory/v1/events",
                body=json.dumps(_query(limit=5)),
                headers={"x-api-key": KEY, "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            names = [name for name, _ in response.getheaders()]
            assert response.status == 200
            assert len(json.loads(response.read())) == 5
        for expected in ("X-Result-Count", "X-Limit", "X-Sort", "X-Search_after", "X-Request-Id"):
            assert expected in names
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({"x-api-key": "wrong"}, 401, "Unauthorized (Invalid API Key)"),
        ({"x-api-key": "runner-key"}, 403, None),
        ({"x-api-key": KEY, "x-org-id": ORG_OFF}, 402,
         "Directory Insights is not enabled for your organization"),
        ({"x-api-key": KEY, "x-org-id": "000000000000000000000000"}, 400, "wrong org ID"),
    ],
)  # fmt: skip
def test_error_bodies(
    big: tuple[Simulator, SimulatorServer], headers: dict[str, str], status: int, message: str
) -> None:
    _, server = big
    response = httpx.post(f"{server.api_url}/events", json=_query(), headers=headers)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"message"}
    if message is not None:
        assert body["message"] == message


def test_validation_error_over_http(client: httpx.Client) -> None:
    response = client.post("/events", json={"service": ["all"]})
    assert response.status_code == 400
    assert "start_time" in response.json()["message"]


def test_two_orgs_are_separate_and_merge_when_both_requested(client: httpx.Client) -> None:
    b = page_all(client, _query(limit=10_000), headers={"x-org-id": ORG_B})
    assert b
    assert {e["organization"] for e in b} == {ORG_B}
    both = client.post(
        "/events",
        json=_query(limit=10_000),
        headers=[("x-org-id", ORG_A), ("x-org-id", ORG_B)],
    )
    orgs = {e["organization"] for e in both.json()}
    assert orgs == {ORG_A, ORG_B}


def test_count_endpoint(big: tuple[Simulator, SimulatorServer], client: httpx.Client) -> None:
    sim, _ = big
    response = client.post("/events/count", json=_query(limit=5))
    assert response.json() == {"count": sim.count_visible(ORG_A)}


def test_service_account_token_flow_and_expiry(
    big: tuple[Simulator, SimulatorServer], client: httpx.Client
) -> None:
    sim, server = big
    # Given a token from the client-credentials endpoint
    basic = base64.b64encode(b"sim-client:sim-secret").decode()
    token_response = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials", "scope": "api"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert token_response.status_code == 200
    grant = token_response.json()
    assert grant["token_type"] == "bearer"
    assert grant["expires_in"] == 5
    bearer = {"Authorization": f"Bearer {grant['access_token']}"}
    # Then it works with x-org-id, and is refused without it
    ok = httpx.post(f"{server.api_url}/events/count", json=_query(),
                    headers={**bearer, "x-org-id": ORG_B})  # fmt: skip
    assert ok.status_code == 200
    no_org = httpx.post(f"{server.api_url}/events/count", json=_query(), headers=bearer)
    assert no_org.status_code == 400
    # When the simulated clock passes the expiry / Then the token is refused
    sim.clock.advance(6)
    try:
        expired = httpx.post(f"{server.api_url}/events/count", json=_query(),
                             headers={**bearer, "x-org-id": ORG_B})  # fmt: skip
        assert expired.status_code == 401
    finally:
        sim.clock.advance(-6)


def test_token_endpoint_rejects_a_wrong_secret(big: tuple[Simulator, SimulatorServer]) -> None:
    _, server = big
    response = httpx.post(
        server.token_url,
        data={"grant_type": "client_credentials", "scope": "api"},
        auth=("sim-client", "not-the-secret"),
    )
    assert response.status_code == 401
    assert "not-the-secret" not in response.text


@pytest.mark.parametrize(
    ("kind", "status", "retry_after"),
    [("429", 429, None), ("429_retry_after", 429, "1"), ("500", 500, None), ("503", 503, None)],
)
def test_status_faults_are_observable(
    big: tuple[Simulator, SimulatorServer],
    client: httpx.Client,
    kind: str,
    status: int,
    retry_after: str | None,
) -> None:
    sim, _ = big
    before = sim.stats[f"fault:{kind}"]
    sim.queue_faults(kind)
    response = client.post("/events", json=_query(limit=5))
    assert response.status_code == status
    assert response.headers.get("Retry-After") == retry_after
    assert sim.stats[f"fault:{kind}"] == before + 1
    assert client.post("/events", json=_query(limit=5)).status_code == 200


def test_truncated_body_breaks_the_transfer_and_json(
    big: tuple[Simulator, SimulatorServer], client: httpx.Client
) -> None:
    sim, server = big
    # Given the next request is cut off mid-body
    sim.queue_faults("truncated")
    with pytest.raises(httpx.TransportError):
        client.post("/events", json=_query(limit=50))
    # And over a raw socket the promised Content-Length is not delivered; the JSON is broken
    sim.queue_faults("truncated")
    raw = _raw_post(server.port, "/insights/directory/v1/events", _query(limit=50))
    head, _, body = raw.partition(b"\r\n\r\n")
    length = int(next(v for k, v in _headers(head) if k.lower() == "content-length"))
    assert 0 < len(body) < length
    with pytest.raises(json.JSONDecodeError):
        json.loads(body)


def test_connection_reset_raises_a_transport_error(
    big: tuple[Simulator, SimulatorServer], client: httpx.Client
) -> None:
    sim, _ = big
    sim.queue_faults("reset")
    with pytest.raises(httpx.TransportError):
        client.post("/events/count", json=_query())
    assert client.post("/events/count", json=_query()).status_code == 200


def test_slow_answers_sleep_then_answer_correctly() -> None:
    slept: list[float] = []
    config = SimulatorConfig.quiet(orgs=(OrgSpec(event_count=50),),
                                   faults=FaultConfig(rate_slow=1.0, slow_ms=250))  # fmt: skip
    sim = Simulator(config, clock=SimulatorClock(NOW_NS), sleep=slept.append)
    with sim.serve() as server:
        response = httpx.post(f"{server.api_url}/events/count", json=_query(),
                              headers={"x-api-key": KEY})  # fmt: skip
    assert response.json() == {"count": 50}
    assert slept == [0.25]
    assert sim.stats["fault:slow"] == 1


def test_fault_rates_inject_every_type_reproducibly() -> None:
    # Given every fault type at 12% and a fixed seed
    config = SimulatorConfig.quiet(orgs=(OrgSpec(event_count=200),),
                                   faults=FaultConfig.modest(0.12, seed=5))  # fmt: skip
    outcomes: list[list[str]] = []
    for _ in range(2):
        sim = Simulator(config, clock=SimulatorClock(NOW_NS), sleep=lambda _s: None)
        seen: list[str] = []
        with (
            sim.serve() as server,
            httpx.Client(base_url=server.api_url, headers={"x-api-key": KEY}, timeout=10) as c,
        ):
            for _ in range(120):
                try:
                    seen.append(str(c.post("/events/count", json=_query()).status_code))
                except httpx.TransportError:
                    seen.append("transport")
        outcomes.append(seen)
        stats = sim.stats
        for kind in ("429", "429_retry_after", "500", "503", "slow", "truncated", "reset"):
            assert stats[f"fault:{kind}"] > 0, kind
    # Then a sequential client sees the same sequence on every run
    assert outcomes[0] == outcomes[1]
    assert {"200", "429", "500", "503", "transport"} <= set(outcomes[0])


def test_late_events_become_visible_after_the_clock_advances() -> None:
    config = SimulatorConfig.quiet(
        orgs=(OrgSpec(event_count=4000),),
        late=LateIndexingConfig(share=0.3, median_delay_seconds=1800, max_delay_seconds=86_400),
    )
    sim = Simulator(config, clock=SimulatorClock(NOW_NS))
    with (
        sim.serve() as server,
        httpx.Client(base_url=server.api_url, headers={"x-api-key": KEY}, timeout=10) as c,
    ):
        before = page_all(c, _query(limit=10_000))
        pending = sim.pending_events(ORG_A)
        assert pending
        assert not any(e in before for e in pending[:50])
        sim.clock.advance(86_400 + 1)
        after = page_all(c, _query(limit=10_000))
    assert len(after) == len(before) + len(pending) == 4000
    assert all(e in after for e in pending)


def test_non_loopback_host_is_refused() -> None:
    sim = Simulator(SimulatorConfig.quiet(orgs=(OrgSpec(event_count=1),)))
    with pytest.raises(SimulatorError, match="loopback"):
        sim.serve(host="0.0.0.0")


def _raw_post(port: int, path: str, body: dict[str, Any]) -> bytes:
    payload = json.dumps(body).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    chunks = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _headers(head: bytes) -> list[tuple[str, str]]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]


def test_cli_serves_and_prints_how_to_connect(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a stop signal that is already set / When the command runs / Then it serves and exits
    stop = threading.Event()
    stop.set()
    args = argparse.Namespace(host="127.0.0.1", port=0, seed=1, events=100, days=1.0, orgs=2,
                              fault_rate=0.0, late_share=0.0, api_key="demo-key")  # fmt: skip
    assert command.run(args, stop=stop) == 0
    out = capsys.readouterr().out
    assert "http://127.0.0.1:" in out
    assert "demo-key" in out
    assert "sim-client" in out
    assert "64a0c0ffee0000000000a002" in out
