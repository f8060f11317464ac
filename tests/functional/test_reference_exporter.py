"""JumpCloud's own paging loop, run against the simulator, retrieves the whole corpus.

This validates the simulator's paging against the documented protocol independently of
di-archiver's client (see ``reference_client.py``).
"""

from __future__ import annotations

import json
from collections import Counter

from di_archiver.simulator import (
    FaultConfig,
    LateIndexingConfig,
    OrgSpec,
    Simulator,
    SimulatorClock,
    SimulatorConfig,
)
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND, format_timestamp_ns, parse_timestamp_ns

from .reference_client import fetch_all

ORG = "64a0c0ffee0000000000b002"
API_KEY = "sim-key-REFERENCE-1"
NOW_NS = 1_760_000_000 * NS_PER_SECOND


def test_reference_exporter_pages_the_whole_corpus() -> None:
    # Given a 20,000-event corpus with dense same-millisecond ties and no faults
    sim = Simulator(
        SimulatorConfig(
            seed=3,
            orgs=(OrgSpec(org_id=ORG, event_count=20_000),),
            span_seconds=86_400,
            api_keys={API_KEY: ORG},
            tie_share=0.5,
            faults=FaultConfig.off(),
            late=LateIndexingConfig.off(),
        ),
        clock=SimulatorClock(now_ns=NOW_NS),
    )
    truth = sim.visible_events(ORG)
    limit = 1_000
    ms = [parse_timestamp_ns(e["timestamp"]) // NS_PER_MS for e in truth]
    assert any(ms[b - 1] == ms[b] for b in range(limit, len(ms), limit)), "need a straddling tie"
    # When JumpCloud's exporter loop reads it 1000 at a time (headers matched by any case)
    with sim.serve() as server:
        events = fetch_all(
            server.base_url,
            API_KEY,
            format_timestamp_ns(NOW_NS - 2 * 86_400 * NS_PER_SECOND),
            format_timestamp_ns(NOW_NS + NS_PER_SECOND),
            org_id=ORG,
            limit=limit,
        )
    # Then it retrieved every event exactly once, in the simulator's order
    assert len(events) == len(truth) == 20_000
    assert Counter(json.dumps(e, sort_keys=True) for e in events) == Counter(
        json.dumps(e, sort_keys=True) for e in truth
    )
    assert events == truth
    # And it needed exactly ceil(n / limit) full pages plus one short or empty page
    assert sim.stats["requests:events"] == len(truth) // limit + 1
