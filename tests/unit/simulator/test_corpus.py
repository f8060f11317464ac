"""Corpus determinism and realism: precision, id formats, quirks, large events, late indexing."""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import pytest

from di_archiver.services import KNOWN_SERVICES
from di_archiver.simulator import LateIndexingConfig, OrgSpec, Simulator
from di_archiver.timestamps import parse_timestamp_ns

from .conftest import ORG, make_sim

HEX24 = re.compile(r"^[0-9a-f]{24}$")
UPPER_UUID_V3 = re.compile(r"^[0-9A-F]{8}-[0-9A-F]{4}-3[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$")
LOWER_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def events() -> list[dict[str, object]]:
    return list(make_sim(12_000).all_events(ORG))


def _digest(sim: Simulator) -> str:
    corpus = sim.corpus(ORG)
    h = hashlib.sha256()
    for pos in range(len(corpus)):
        h.update(corpus.event_bytes(pos))
        h.update(corpus.avail_ns[pos].to_bytes(8, "big"))
    return h.hexdigest()


def test_same_seed_gives_the_same_bytes() -> None:
    # Given two simulators built independently from the same seed and clock
    late = LateIndexingConfig(share=0.2)
    a, b = make_sim(3000, late=late), make_sim(3000, late=late)
    # Then every rendered byte and availability time is identical
    assert _digest(a) == _digest(b)
    # And rendering twice (cache bypassed) gives the same bytes
    corpus = a.corpus(ORG)
    assert [corpus.event(p) for p in range(50)] == [corpus.event(p) for p in range(50)]


def test_different_seed_gives_a_different_corpus() -> None:
    assert _digest(make_sim(500, seed=1)) != _digest(make_sim(500, seed=2))


def test_every_known_service_but_workflows_is_generated(events: list[dict[str, object]]) -> None:
    services = {e["service"] for e in events}
    assert services == set(KNOWN_SERVICES) - {"workflows"}


def test_workflows_only_when_enabled() -> None:
    sim = make_sim(3000, include_workflows=True)
    assert "workflows" in {e["service"] for e in sim.all_events(ORG)}


def test_timestamp_precision_covers_zero_to_nine_digits(events: list[dict[str, object]]) -> None:
    digits = Counter(
        len(m.group(1)) if (m := re.search(r"\.(\d+)Z$", str(e["timestamp"]))) else 0
        for e in events
    )
    assert set(digits) == set(range(10))
    # Go's RFC3339Nano trims trailing zeros, so no fraction ever ends in 0.
    assert not any(re.search(r"\.\d*0Z$", str(e["timestamp"])) for e in events)


def test_all_three_id_formats(events: list[dict[str, object]]) -> None:
    ids = [str(e["id"]) for e in events]
    assert any(HEX24.match(i) for i in ids)
    assert any(LOWER_UUID.match(i) for i in ids)
    radius = [str(e["id"]) for e in events if e["service"] == "radius"]
    assert radius
    assert all(UPPER_UUID_V3.match(i) for i in radius)
    assert all(HEX24.match(i) or LOWER_UUID.match(i) or UPPER_UUID_V3.match(i) for i in ids)


def test_envelope_quirks(events: list[dict[str, object]]) -> None:
    assert all(e["@version"] == "1" for e in events)
    assert all(e["organization"] == ORG for e in events)
    providers = {e["provider"] for e in events if "provider" in e}
    assert None in providers
    assert "" in providers
    agent_keys = {
        (str(e["service"]), k) for e in events for k in ("useragent", "user_agent") if k in e
    }
    assert ("password_manager", "user_agent") in agent_keys
    assert ("directory", "useragent") in agent_keys
    assert not any(
        s in {"reports", "access_management"} and k == "useragent" for s, k in agent_keys
    )


def test_unicode_names_appear(events: list[dict[str, object]]) -> None:
    text = "".join(str(e) for e in events[:3000])
    assert any(ord(ch) > 127 for ch in text)


def test_some_mdm_events_are_tens_of_kilobytes() -> None:
    sim = make_sim(60_000)
    corpus = sim.corpus(ORG)
    sizes = [len(corpus.event_bytes(p)) for p in range(len(corpus)) if corpus.service(p) == "mdm"]
    assert max(sizes) > 20_000


def test_same_ms_ties_are_common(events: list[dict[str, object]]) -> None:
    per_ms = Counter(parse_timestamp_ns(str(e["timestamp"])) // 1_000_000 for e in events)
    tied = sum(n for n in per_ms.values() if n > 1)
    assert tied >= 0.15 * len(events)
    # Some ties share the very same timestamp string (whole-second services).
    per_text = Counter(str(e["timestamp"]) for e in events)
    assert max(per_text.values()) > 1


def test_late_events_are_hidden_until_their_availability() -> None:
    # Given 30% of events indexed late
    sim = make_sim(3000, late=LateIndexingConfig(share=0.3, median_delay_seconds=3600))
    pending = sim.pending_events(ORG)
    assert pending
    visible_before = sim.count_visible(ORG)
    assert visible_before + len(pending) == sim.event_count(ORG)
    # When the clock passes the maximum delay
    sim.clock.advance(LateIndexingConfig().max_delay_seconds + 1)
    # Then everything is visible
    assert sim.pending_events(ORG) == []
    assert sim.count_visible(ORG) == sim.event_count(ORG)


def test_agent_services_are_indexed_later_than_others() -> None:
    sim = make_sim(20_000, late=LateIndexingConfig(share=0.5))
    corpus = sim.corpus(ORG)
    delays: dict[bool, list[int]] = {True: [], False: []}
    for p in range(len(corpus)):
        delay = corpus.avail_ns[p] - corpus.ts_ns[p]
        if delay:
            delays[corpus.service(p) in ("systems", "software")].append(delay)
    median = {k: sorted(v)[len(v) // 2] for k, v in delays.items()}
    assert median[True] > 2 * median[False]


def test_future_span_makes_events_appear_as_the_clock_moves() -> None:
    sim = make_sim(2000, future_span_seconds=3600)
    before = sim.count_visible(ORG)
    sim.clock.advance(3600)
    assert sim.count_visible(ORG) > before


def test_orgs_get_different_events() -> None:
    orgs = (OrgSpec(org_id=ORG, event_count=100), OrgSpec(org_id="a" * 24, event_count=100))
    sim = make_sim(orgs=orgs)
    ids_a = {e["id"] for e in sim.all_events(ORG)}
    ids_b = {e["id"] for e in sim.all_events("a" * 24)}
    assert not ids_a & ids_b
