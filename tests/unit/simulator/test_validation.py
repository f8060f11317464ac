"""Request validation, limit and sort handling, auth answers (di-api.md sections 1-3, 7)."""

from __future__ import annotations

import pytest

from di_archiver.services import KNOWN_SERVICES
from di_archiver.simulator import OrgSpec, Simulator
from di_archiver.timestamps import format_timestamp_ns, parse_timestamp_ns

from .conftest import DAY_NS, KEY, NOW_NS, ORG, base_query, call, make_sim


def test_missing_service_is_rejected(sim: Simulator) -> None:
    # Given a body without service / When it is posted / Then 400 with a message
    reply = call(sim, "events", {"start_time": "2026-05-01T00:00:00Z"})
    assert reply.status == 400
    assert "service" in reply.json["message"]


def test_unknown_service_lists_the_valid_ones(sim: Simulator) -> None:
    reply = call(sim, "events", base_query(service=["saml"]))
    assert reply.status == 400
    message = reply.json["message"]
    assert "saml" in message
    assert all(name in message for name in (*KNOWN_SERVICES, "all"))


def test_missing_start_time_is_rejected(sim: Simulator) -> None:
    reply = call(sim, "events", {"service": ["all"]})
    assert reply.status == 400
    assert "start_time" in reply.json["message"]


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", "2026-05-01", 12345])
def test_unparseable_dates_are_rejected(sim: Simulator, value: object) -> None:
    reply = call(sim, "events", base_query(start_time=value))
    assert reply.status == 400
    assert "start_time" in reply.json["message"]


def test_start_in_the_future_is_rejected(sim: Simulator) -> None:
    # Given a start one second after the simulated now
    future = format_timestamp_ns(NOW_NS + 1_000_000_000)
    reply = call(sim, "events", base_query(start_time=future))
    assert reply.status == 400
    assert "future" in reply.json["message"]


def test_start_after_end_gives_the_documented_message_at_seconds_precision(sim: Simulator) -> None:
    # Given start > end with fractional seconds (EL-17209 shows whole seconds)
    body = base_query(start_time="2026-01-26T09:13:52.123Z", end_time="2026-01-26T09:11:52.9Z")
    reply = call(sim, "events", body)
    assert reply.status == 400
    assert reply.json == {
        "message": "Start Time not after End Time 2026-01-26T09:13:52Z > 2026-01-26T09:11:52Z"
    }


def test_start_equal_to_end_is_accepted(sim: Simulator) -> None:
    reply = call(sim, "events", base_query(end_time=base_query()["start_time"]))
    assert reply.status == 200


@pytest.mark.parametrize("fields", [[], ["no_such_field", "nor_this"], "id"])
def test_empty_or_unknown_fields_are_rejected(sim: Simulator, fields: object) -> None:
    reply = call(sim, "events", base_query(fields=fields))
    assert reply.status == 400


def test_invalid_json_body_is_rejected(sim: Simulator) -> None:
    reply = call(sim, "events", b"{not json")
    assert reply.status == 400
    assert reply.json["message"].startswith("Invalid/unknown query JSON body")


@pytest.mark.parametrize(
    ("requested", "effective"),
    [(None, 1000), (5, 5), (10_000, 10_000), (10_001, 1000), (0, 1000), (-3, 1000),
     ("abc", 1000), (2.5, 1000), (True, 1000), ("50", 50)],
)  # fmt: skip
def test_limit_is_echoed_and_nonsense_falls_back_to_the_default(
    sim: Simulator, requested: object, effective: int
) -> None:
    body = base_query() if requested is None else base_query(limit=requested)
    reply = call(sim, "events", body)
    assert reply.status == 200
    assert reply.headers["x-limit"] == str(effective)
    assert len(reply.json) == min(effective, sim.count_visible(ORG))


@pytest.mark.parametrize(
    ("requested", "effective"),
    [(None, "ASC"), ("asc", "ASC"), ("desc", "DESC"), ("Desc", "DESC"), ("sideways", "ASC"),
     (7, "ASC")],
)  # fmt: skip
def test_sort_is_case_insensitive_and_nonsense_means_asc(
    sim: Simulator, requested: object, effective: str
) -> None:
    body = base_query(limit=50) if requested is None else base_query(limit=50, sort=requested)
    reply = call(sim, "events", body)
    assert reply.headers["x-sort"] == effective
    visible = sim.visible_events(ORG)
    expected = visible[:50] if effective == "ASC" else visible[::-1][:50]
    assert reply.json == expected


def test_count_honours_filters_but_not_limit(sim: Simulator) -> None:
    # Given a service filter and a tiny limit
    body = base_query(service=["radius", "sso"], limit=3)
    # When counting
    count = call(sim, "events/count", body).json["count"]
    # Then the count covers every matching visible event
    expected = sum(1 for e in sim.visible_events(ORG) if e["service"] in ("radius", "sso"))
    assert count == expected > 3


def test_bad_api_key_gets_401_with_the_documented_body(sim: Simulator) -> None:
    reply = call(sim, "events", base_query(), headers=[("x-api-key", "nope-secret-value")])
    assert reply.status == 401
    assert reply.json == {"message": "Unauthorized (Invalid API Key)"}
    assert b"nope-secret-value" not in reply.body


def test_missing_credentials_get_401(sim: Simulator) -> None:
    assert call(sim, "events", base_query(), headers=[]).status == 401


def test_non_admin_key_gets_403() -> None:
    sim = make_sim(200, api_keys={"runner": ORG}, non_admin_keys=frozenset({"runner"}))
    reply = call(sim, "events", base_query(), headers=[("x-api-key", "runner")])
    assert reply.status == 403
    assert "message" in reply.json


def test_unknown_org_gets_400_wrong_org_id(sim: Simulator) -> None:
    headers = [("x-api-key", KEY), ("x-org-id", "000000000000000000000bad")]
    reply = call(sim, "events", base_query(), headers=headers)
    assert reply.status == 400
    assert reply.json == {"message": "wrong org ID"}


def test_org_without_directory_insights_gets_402() -> None:
    orgs = (OrgSpec(org_id=ORG, event_count=10), OrgSpec(org_id="b" * 24, di_enabled=False))
    sim = make_sim(orgs=orgs)
    headers = [("x-api-key", KEY), ("x-org-id", "b" * 24)]
    reply = call(sim, "events", base_query(), headers=headers)
    assert reply.status == 402
    assert reply.json == {"message": "Directory Insights is not enabled for your organization"}


def test_bearer_without_org_header_gets_400(sim: Simulator) -> None:
    token = sim.issue_token("sim-client")
    reply = call(sim, "events", base_query(), headers=[("Authorization", f"Bearer {token}")])
    assert reply.status == 400
    assert "x-org-id" in reply.json["message"]


def test_unknown_bearer_token_gets_401(sim: Simulator) -> None:
    headers = [("Authorization", "Bearer not.a.token"), ("x-org-id", ORG)]
    assert call(sim, "events", base_query(), headers=headers).status == 401


def test_every_200_events_reply_carries_the_exact_header_spellings(sim: Simulator) -> None:
    reply = call(sim, "events", base_query(limit=10))
    names = [name for name, _ in reply.raw_headers]
    for expected in ("X-Result-Count", "X-Limit", "X-Sort", "X-Search_after", "X-Request-Id"):
        assert expected in names


def test_empty_page_echoes_the_request_cursor_or_omits_it(sim: Simulator) -> None:
    # Given a window with no events at all
    start = format_timestamp_ns(NOW_NS - 1000)
    empty = call(sim, "events", base_query(start_time=start))
    assert empty.json == []
    assert empty.headers["x-result-count"] == "0"
    assert "x-search_after" not in empty.headers
    # When a cursor is sent for an empty page / Then it is echoed back
    echoed = call(sim, "events", base_query(start_time=start, search_after=[1, "abc"]))
    assert echoed.headers["x-search_after"] == '[1,"abc"]'


def test_unknown_path_is_404_and_get_is_405(sim: Simulator) -> None:
    assert sim.handle("POST", "/insights/directory/v1/nope", [], b"").status == 404
    assert sim.handle("GET", "/insights/directory/v1/events", [], b"").status == 405


def test_retention_hides_events_older_than_the_window() -> None:
    # Given a 3-day corpus but a 1-day retention
    sim = make_sim(2000, retention_days=1)
    events = call(sim, "events", base_query(limit=10_000)).json
    # Then nothing older than a day (at ms resolution) comes back
    cutoff_ms = (NOW_NS - DAY_NS) // 1_000_000
    assert events
    assert all(sim_ms(e) >= cutoff_ms for e in events)
    assert len(events) < sim.event_count(ORG)


def sim_ms(event: dict[str, object]) -> int:
    return parse_timestamp_ns(str(event["timestamp"])) // 1_000_000


def test_retention_applies_as_the_clock_moves() -> None:
    sim = make_sim(500)
    before = sim.count_visible(ORG)
    sim.clock.advance(90 * 86_400 - 1.5 * 86_400)
    assert 0 < sim.count_visible(ORG) < before
    assert call(sim, "events/count", base_query(start_time="2020-01-01T00:00:00Z")).json == {
        "count": sim.count_visible(ORG)
    }
