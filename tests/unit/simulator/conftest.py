"""Helpers for simulator unit tests: requests go through ``Simulator.handle`` (no sockets)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from di_archiver.simulator import OrgSpec, Simulator, SimulatorClock, SimulatorConfig
from di_archiver.timestamps import NS_PER_SECOND, format_timestamp_ns

NOW_NS = 1_777_777_777_123_456_789
ORG = "64a0c0ffee0000000000a001"
KEY = "sim-key-1"
DAY_NS = 86_400 * NS_PER_SECOND


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw_headers: list[tuple[str, str]]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(
    sim: Simulator,
    endpoint: str,
    body: dict[str, Any] | bytes,
    headers: list[tuple[str, str]] | None = None,
) -> Reply:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = headers if headers is not None else [("x-api-key", KEY)]
    resp = sim.handle("POST", f"/insights/directory/v1/{endpoint}", hdrs, raw)
    return Reply(resp.status, {k.lower(): v for k, v in resp.headers}, resp.headers, resp.body)


def base_query(**extra: Any) -> dict[str, Any]:
    return {"service": ["all"], "start_time": format_timestamp_ns(NOW_NS - 10 * DAY_NS), **extra}


def page_all(sim: Simulator, query: dict[str, Any]) -> list[dict[str, Any]]:
    """The documented loop: while X-Result-Count >= X-Limit, send back X-Search_after."""
    body = dict(query)
    events: list[dict[str, Any]] = []
    while True:
        reply = call(sim, "events", body)
        assert reply.status == 200, reply.body
        events.extend(reply.json)
        if int(reply.headers["x-result-count"]) < int(reply.headers["x-limit"]):
            return events
        body["search_after"] = json.loads(reply.headers["x-search_after"])


def make_sim(events: int = 3000, **overrides: Any) -> Simulator:
    orgs = overrides.pop("orgs", (OrgSpec(org_id=ORG, event_count=events),))
    config = SimulatorConfig.quiet(orgs=orgs, **overrides)
    return Simulator(config, clock=SimulatorClock(NOW_NS))


@pytest.fixture(scope="module")
def sim() -> Simulator:
    return make_sim()
