"""A small archive written straight through the layout and format functions (no engine)."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from di_archiver.archive_format import encode_events, event_timestamp_ns
from di_archiver.layout import bucket_object_key, service_partition

SAMPLE_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "di-sample-events.jsonl"
ORG = "64a0c0ffee0000000000a001"
OTHER_ORG = "64a0c0ffee0000000000a002"
PREFIX = "di"
HOUR_NS = 3600 * 1_000_000_000


def sample_events() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAMPLE_FILE.read_text().splitlines() if line.strip()]


def _derived(base: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    event = copy.deepcopy(dict(base))
    event.update(changes)
    return event


def extended_events() -> list[dict[str, Any]]:
    """The sample events plus crafted ones, so that every named query has answers."""
    events = sample_events()
    by_type = {(e["service"], e["event_type"]): e for e in events}
    login = by_type[("directory", "admin_login_attempt")]
    assoc = by_type[("directory", "association_change")]
    sso = by_type[("sso", "sso_auth")]
    pm = by_type[("password_manager", "passwordmanager_item_add")]
    radius = next(e for e in events if e["service"] == "radius" and e["success"] is False)
    group_link = {
        "op": "add",
        "action_source": "manual",
        "attributes": None,
        "connection": {
            "from": {"name": "Finance", "type": "user_group", "object_id": "aa" * 12},
            "to": {"name": "jordan.lee", "type": "user", "object_id": "bb" * 12},
        },
    }
    reversed_link = copy.deepcopy(group_link)
    reversed_link["op"] = "remove"
    conn = reversed_link["connection"]
    conn["from"], conn["to"] = conn["to"], conn["from"]
    events += [
        _derived(login, id="70000000000000000000f001", success=False, mfa=False,
                 timestamp="2026-05-03T23:59:59.999999999Z"),
        _derived(login, id="70000000000000000000f00a", success=False,
                 timestamp="2026-05-04T09:20:00.3Z"),
        _derived(login, id="70000000000000000000f002", success=True, mfa=False,
                 timestamp="2026-05-05T00:00:00Z"),
        _derived(login, id="70000000000000000000f003", event_type="admin_create",
                 resource={"id": "cc" * 12, "type": "admin", "email": "new.admin@example.test"},
                 timestamp="2026-05-04T08:00:00.1Z"),
        _derived(assoc, id="70000000000000000000f004", association=group_link,
                 timestamp="2026-05-04T08:30:00.12345Z"),
        _derived(assoc, id="70000000000000000000f005", association=reversed_link,
                 timestamp="2026-05-05T08:30:00.123Z"),
        _derived(sso, id="70000000000000000000f006", success=True,
                 timestamp="2026-05-04T10:30:00Z"),
        _derived(pm, id="70000000000000000000f007", event_type="passwordmanager_item_reveal",
                 timestamp="2026-05-04T15:10:00.5Z"),
        _derived(radius, id="E0000000-0000-3000-8000-00000000F008",
                 timestamp="2026-05-05T11:00:00Z"),
        _derived(radius, id="E0000000-0000-3000-8000-00000000F009", organization=OTHER_ORG,
                 timestamp="2026-05-05T11:00:01Z"),
    ]  # fmt: skip
    return events


def write_archive(root: Path, events: Iterable[Mapping[str, Any]], prefix: str = PREFIX) -> None:
    """Write hourly bucket objects exactly where the archiver would."""
    groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for event in events:
        ts = event_timestamp_ns(event)
        start = ts - ts % HOUR_NS
        org = event.get("organization") or ORG
        groups.setdefault((org, service_partition(event.get("service")), start), []).append(event)
    for (org, svc, start), members in groups.items():
        path = root / bucket_object_key(prefix, org, svc, start, start + HOUR_NS)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_events(members).body)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    write_archive(root, extended_events())
    return root
