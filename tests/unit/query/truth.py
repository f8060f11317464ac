"""Ground truth for the named queries, computed in plain Python from event dicts.

Independent of SQL on purpose: the tests compare these answers with what the named queries
return over an archive, so a wrong filter, join or type on either side shows up.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from di_archiver.layout import day_of_ns, service_partition
from di_archiver.timestamps import parse_timestamp_ns

Event = Mapping[str, Any]


def day(event: Event) -> str:
    return day_of_ns(parse_timestamp_ns(event["timestamp"])).isoformat()


def _in(events: Iterable[Event], first: date, last: date) -> list[Event]:
    return [e for e in events if first.isoformat() <= day(e) <= last.isoformat()]


def _ib(event: Event) -> Mapping[str, Any]:
    return event.get("initiated_by") or {}


def _ids(events: Iterable[Event]) -> list[str]:
    return sorted(e["id"] for e in events)


def failed_admin_logins(events: Iterable[Event], first: date, last: date) -> list[str]:
    return _ids(
        e
        for e in _in(events, first, last)
        if e.get("service") == "directory"
        and e.get("event_type") == "admin_login_attempt"
        and e.get("success") is False
    )


def admin_logins_without_mfa(events: Iterable[Event], first: date, last: date) -> list[str]:
    return _ids(
        e
        for e in _in(events, first, last)
        if e.get("service") == "directory"
        and e.get("event_type") == "admin_login_attempt"
        and e.get("success") is True
        and not e.get("mfa")
    )


def admins_created(events: Iterable[Event], first: date, last: date) -> list[str]:
    return _ids(
        e
        for e in _in(events, first, last)
        if e.get("service") == "directory"
        and e.get("event_type") in ("admin_create", "user_admin_granted")
    )


def password_item_reveals(events: Iterable[Event], first: date, last: date) -> list[str]:
    return _ids(
        e
        for e in _in(events, first, last)
        if e.get("service") == "password_manager"
        and e.get("event_type")
        in ("passwordmanager_item_reveal", "passwordmanager_item_history_reveal")
    )


def events_by_admin(events: Iterable[Event], first: date, last: date, admin: str) -> list[str]:
    return _ids(
        e
        for e in _in(events, first, last)
        if _ib(e).get("type") == "admin" and admin in (_ib(e).get("email"), _ib(e).get("id"))
    )


def radius_failures_by_user_day(
    events: Iterable[Event], first: date, last: date
) -> dict[tuple[str, str | None], int]:
    return dict(
        Counter(
            (day(e), e.get("username") or _ib(e).get("username"))
            for e in _in(events, first, last)
            if e.get("service") == "radius" and e.get("success") is False
        )
    )


def events_per_service_per_day(
    events: Iterable[Event], first: date, last: date
) -> dict[tuple[str, str, str], int]:
    return dict(
        Counter(
            (e["organization"], service_partition(e.get("service")), day(e))
            for e in _in(events, first, last)
        )
    )


def sso_apps_for_user(
    events: Iterable[Event], first: date, last: date, user: str
) -> dict[str, int]:
    def label(e: Event) -> str:
        app = e.get("application") or {}
        return str(app.get("display_label") or app.get("name"))

    return dict(
        Counter(
            label(e)
            for e in _in(events, first, last)
            if e.get("service") == "sso"
            and e.get("success") is True
            and user in (_ib(e).get("username"), _ib(e).get("id"))
        )
    )


def user_group_membership_changes(
    events: Iterable[Event], first: date, last: date, user: str
) -> list[tuple[str, str | None, str | None]]:
    """(event id, op, group name) of association changes linking ``user`` and a user group."""
    out = []
    for e in _in(events, first, last):
        if e.get("service") != "directory" or e.get("event_type") != "association_change":
            continue
        association = e.get("association")
        if isinstance(association, str):
            association = json.loads(association)
        connection = (association or {}).get("connection") or {}
        ends = (connection.get("from") or {}, connection.get("to") or {})
        for group, member in (ends, ends[::-1]):
            if (
                group.get("type") == "user_group"
                and member.get("type") == "user"
                and user in (member.get("name"), member.get("object_id"))
            ):
                out.append((e["id"], association.get("op"), group.get("name")))
    return sorted(out)
