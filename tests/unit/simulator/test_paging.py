"""Ordering, search_after with same-millisecond ties, end_time inclusivity, multi-org merge."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from di_archiver.simulator import OrgSpec, Simulator
from di_archiver.simulator.corpus import doc_id_from_hash
from di_archiver.timestamps import format_timestamp_ns, parse_timestamp_ns

from .conftest import KEY, ORG, base_query, call, make_sim, page_all

ORG_B = "64a0c0ffee0000000000a002"


def _ms(event: dict[str, object]) -> int:
    return parse_timestamp_ns(str(event["timestamp"])) // 1_000_000


def _biggest_tie(sim: Simulator) -> tuple[int, int]:
    counts = Counter(_ms(e) for e in sim.visible_events(ORG))
    return counts.most_common(1)[0]


@pytest.fixture(scope="module")
def tie_sim() -> Simulator:
    # 10k events at tie_share 0.5 include a 1500-event burst inside one millisecond.
    return make_sim(10_000, tie_share=0.5)


def test_corpus_has_same_ms_bursts_larger_than_a_default_page(tie_sim: Simulator) -> None:
    _, size = _biggest_tie(tie_sim)
    assert size > 1000


def test_paging_through_a_tie_returns_every_event_exactly_once(tie_sim: Simulator) -> None:
    # Given a window holding exactly the biggest same-ms burst and a small odd page size
    ms, size = _biggest_tie(tie_sim)
    stamp = format_timestamp_ns(ms * 1_000_000)
    query = base_query(start_time=stamp, end_time=stamp, limit=97)
    # When paging with the documented loop
    events = page_all(tie_sim, query)
    # Then the burst comes back whole, once, in (ms, doc id) order
    assert len(events) == size
    assert len({(e["id"], e["timestamp"]) for e in events}) == size
    assert events == [e for e in tie_sim.visible_events(ORG) if _ms(e) == ms]


def test_search_after_is_strict_and_accepts_the_ms_as_a_string(tie_sim: Simulator) -> None:
    ms, _ = _biggest_tie(tie_sim)
    stamp = format_timestamp_ns(ms * 1_000_000)
    first = call(tie_sim, "events", base_query(start_time=stamp, end_time=stamp, limit=10))
    cursor = json.loads(first.headers["x-search_after"])
    assert isinstance(cursor[0], int)
    assert len(cursor[1]) == 20
    as_number = call(tie_sim, "events", base_query(limit=10, search_after=cursor))
    as_string = call(
        tie_sim, "events", base_query(limit=10, search_after=[str(cursor[0]), cursor[1]])
    )
    assert as_number.json == as_string.json
    assert not {e["id"] for e in as_number.json} & {e["id"] for e in first.json}


def test_desc_paging_mirrors_asc(tie_sim: Simulator) -> None:
    asc = page_all(tie_sim, base_query(limit=3000))
    desc = page_all(tie_sim, base_query(limit=3000, sort="DESC"))
    assert desc == asc[::-1]
    assert asc == tie_sim.visible_events(ORG)


def test_api_order_is_ms_then_doc_id_not_nanoseconds(tie_sim: Simulator) -> None:
    corpus = tie_sim.corpus(ORG)
    keys = [(corpus.ms(p), corpus.doc_id(p)) for p in range(len(corpus))]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)
    # Within one ms the order follows the doc id, so nanoseconds may go backwards.
    assert any(
        corpus.ms(p) == corpus.ms(p + 1) and corpus.ts_ns[p] > corpus.ts_ns[p + 1]
        for p in range(len(corpus) - 1)
    )


def test_doc_ids_sort_like_their_hashes() -> None:
    hashes = [0, 1, 2**63, 2**64 - 1, 12345678901234567]
    ids = [doc_id_from_hash(h) for h in hashes]
    assert all(len(i) == 20 for i in ids)
    assert sorted(ids) == [doc_id_from_hash(h) for h in sorted(hashes)]


@pytest.mark.parametrize("inclusive", [True, False])
def test_end_time_inclusivity_is_a_setting_applied_at_ms_resolution(inclusive: bool) -> None:
    # Given an event and an end_time equal to its ms (truncated)
    sim = make_sim(2000, end_time_inclusive=inclusive)
    target = sim.visible_events(ORG)[1000]
    end = format_timestamp_ns(_ms(target) * 1_000_000)
    events = page_all(sim, base_query(end_time=end, limit=10_000))
    # Then it is returned only when end_time is inclusive (even if its ns are past the bound)
    assert (target in events) is inclusive
    assert all(_ms(e) <= _ms(target) for e in events)


def test_start_time_is_inclusive_at_ms_resolution(sim: Simulator) -> None:
    target = sim.visible_events(ORG)[500]
    # A start one ns past the event but inside the same ms still includes it.
    start_ns = _ms(target) * 1_000_000 + 999_999
    events = page_all(sim, base_query(start_time=format_timestamp_ns(start_ns), limit=10_000))
    assert target in events


def test_skip_offsets_the_result(sim: Simulator) -> None:
    full = call(sim, "events", base_query(limit=30)).json
    skipped = call(sim, "events", base_query(limit=10, skip=20)).json
    assert skipped == full[20:30]


def test_service_filter(sim: Simulator) -> None:
    events = page_all(sim, base_query(service=["ldap"], limit=10_000))
    assert events
    assert {e["service"] for e in events} == {"ldap"}


@pytest.fixture(scope="module")
def two_orgs() -> Simulator:
    orgs = (OrgSpec(org_id=ORG, event_count=1500), OrgSpec(org_id=ORG_B, event_count=800))
    return make_sim(orgs=orgs)


def test_two_orgs_have_separate_corpora(two_orgs: Simulator) -> None:
    a = page_all(two_orgs, base_query(limit=10_000))
    b_headers = [("x-api-key", KEY), ("x-org-id", ORG_B)]
    b = call(two_orgs, "events", base_query(limit=10_000), headers=b_headers).json
    assert {e["organization"] for e in a} == {ORG}
    assert len(a) == 1500
    assert {e["organization"] for e in b} == {ORG_B}
    assert len(b) == 800


def test_repeated_org_header_merges_in_sort_order(two_orgs: Simulator) -> None:
    headers = [("x-api-key", KEY), ("x-org-id", ORG), ("x-org-id", ORG_B)]
    body = base_query(limit=700)
    merged: list[dict[str, object]] = []
    while True:
        reply = call(two_orgs, "events", body, headers=headers)
        merged.extend(reply.json)
        if int(reply.headers["x-result-count"]) < int(reply.headers["x-limit"]):
            break
        body["search_after"] = json.loads(reply.headers["x-search_after"])
    assert len(merged) == 2300
    assert {e["organization"] for e in merged} == {ORG, ORG_B}
    assert [_ms(e) for e in merged] == sorted(_ms(e) for e in merged)
