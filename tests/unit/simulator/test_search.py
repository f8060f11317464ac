"""search_term (and/or/not, lists, dot paths, lowercase), fields projection, distinct, interval."""

from __future__ import annotations

import itertools

import pytest

from di_archiver.simulator import Simulator

from .conftest import ORG, base_query, call, page_all


def _all(sim: Simulator) -> list[dict[str, object]]:
    return sim.visible_events(ORG)


def test_and_with_dot_path_and_case_insensitive_values(sim: Simulator) -> None:
    # Given radius events whose eap_type is stored as "MSCHAPv2"
    term = {"and": [{"service": "radius"}, {"eap_type": "mschapv2"}]}
    events = page_all(sim, base_query(search_term=term, limit=10_000))
    expected = [e for e in _all(sim) if e["service"] == "radius" and e["eap_type"] == "MSCHAPv2"]
    assert events == expected
    assert events


def test_or_with_list_values_and_nested_not(sim: Simulator) -> None:
    term = {
        "and": [
            {"or": [{"service": ["sso", "ldap"]}]},
            {"not": [{"success": "true"}]},
        ]
    }
    events = page_all(sim, base_query(search_term=term, limit=10_000))
    expected = [e for e in _all(sim) if e["service"] in ("sso", "ldap") and e["success"] is False]
    assert events == expected
    assert events


def test_dot_path_into_nested_object(sim: Simulator) -> None:
    some = next(e for e in _all(sim) if e["service"] == "sso")
    username = some["initiated_by"]["username"]  # type: ignore[index]
    term = {"and": [{"initiated_by.username": username}]}
    events = page_all(sim, base_query(search_term=term, limit=10_000))
    assert some in events
    assert all(e["initiated_by"]["username"] == username for e in events)


def test_unsearchable_fields_never_match(sim: Simulator) -> None:
    term = {"or": [{"useragent.name": "chrome"}, {"changes.field": "suspended"}]}
    assert call(sim, "events/count", base_query(search_term=term)).json == {"count": 0}


@pytest.mark.parametrize("term", [{"xor": []}, {"and": []}, {"and": ["x"]}, ["a"]])
def test_malformed_search_terms_are_400(sim: Simulator, term: object) -> None:
    assert call(sim, "events", base_query(search_term=term)).status == 400


def test_overly_complex_search_is_500(sim: Simulator) -> None:
    term = {"or": [{"username": f"user{i}"} for i in range(200)]}
    reply = call(sim, "events", base_query(search_term=term))
    assert reply.status == 500
    assert reply.json == {"message": "Technical difficulties processing your request"}


def test_fields_projection_keeps_only_requested_paths(sim: Simulator) -> None:
    fields = ["id", "timestamp", "geoip.country_code", "not_a_field"]
    events = call(sim, "events", base_query(fields=fields, limit=200)).json
    full = _all(sim)[:200]
    for got, src in zip(events, full, strict=True):
        assert got["id"] == src["id"]
        assert got["timestamp"] == src["timestamp"]
        assert set(got) <= {"id", "timestamp", "geoip"}
        if "geoip" in src:
            assert got["geoip"] == {"country_code": src["geoip"]["country_code"]}  # type: ignore[index]


def test_distinct_counts_values_like_a_terms_aggregation(sim: Simulator) -> None:
    reply = call(sim, "events/distinct", base_query(field="service"))
    body = reply.json
    assert set(body) == {"buckets", "doc_count_error_upper_bound", "sum_other_doc_count"}
    counts = {b["key"]: b["doc_count"] for b in body["buckets"]}
    assert sum(counts.values()) == sim.count_visible(ORG)
    assert counts["directory"] == sum(1 for e in _all(sim) if e["service"] == "directory")


def test_distinct_requires_a_field(sim: Simulator) -> None:
    assert call(sim, "events/distinct", base_query()).status == 400


def test_interval_buckets_cover_every_event(sim: Simulator) -> None:
    reply = call(sim, "events/interval", base_query(interval_unit="h", interval_value="6"))
    buckets = reply.json["buckets"]
    assert sum(b["doc_count"] for b in buckets) == sim.count_visible(ORG)
    keys = [b["key"] for b in buckets]
    assert all(b - a == 6 * 3_600_000 for a, b in itertools.pairwise(keys))
    assert buckets[0]["key_as_string"].endswith("Z")


def test_interval_requires_a_valid_unit(sim: Simulator) -> None:
    assert call(sim, "events/interval", base_query(interval_unit="y")).status == 400


def test_q_full_text_filter(sim: Simulator) -> None:
    events = page_all(sim, base_query(q="MSCHAPV2", limit=10_000))
    assert events
    assert all("mschapv2" in str(e).lower() for e in events)
