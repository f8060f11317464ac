"""The Lambda invocation event: which use case to run, validated before anything is built.

{"mode": "archive"}  (also any EventBridge scheduled event, or no mode at all)
{"mode": "resnapshot", "start": "<RFC 3339>", "end": "<RFC 3339>", "org_id": "<optional>"}
{"mode": "maintain"}
{"mode": "verify", "days": 35}   (days optional: everything)
{"mode": "dispatch"}             (fan-out: enqueue one archive message per org)
{"mode": "archive", "org_id": "<id>"}   (one org; how fan-out workers receive their SQS message)
An SQS event ({"Records": [<one record>]}) carries one such archive message in its body.
"""

from __future__ import annotations

import json
from typing import Any

from msgspec import Struct

from di_archiver.errors import SettingsError
from di_archiver.observability import Mode
from di_archiver.timestamps import parse_timestamp_ns
from di_archiver.validation import Problem, Refused, bound_problem, to_enum, to_int, to_str

_DAYS_LIMITS = {"ge": 1, "le": 36_500}


class Invocation(Struct, frozen=True, kw_only=True):
    """The invocation event (validated by :func:`parse_invocation`)."""

    mode: Mode = Mode.ARCHIVE
    start: str | None = None  # resnapshot window start (RFC 3339)
    end: str | None = None  # resnapshot window end (RFC 3339)
    org_id: str | None = None  # archive or resnapshot one org (default: all)
    days: int | None = None  # verify only the last N UTC days (default: all)

    @property
    def window_ns(self) -> tuple[int, int]:
        assert self.start is not None
        assert self.end is not None
        return parse_timestamp_ns(self.start), parse_timestamp_ns(self.end)

    @property
    def reports_freshness(self) -> bool:
        # Only a scheduled pass says how far the archive lags now; a re-snapshot of an old
        # window would look like a huge lag and trip the freshness alarm.
        return self.mode is Mode.ARCHIVE


def parse_invocation(event: Any) -> Invocation:
    """Validate the invocation event into :class:`Invocation` (a SettingsError if invalid)."""
    if event is None:
        event = {}
    if not isinstance(event, dict):
        # A bare "maintain" must not quietly run the archive mode (nor a list, nor a number).
        raise SettingsError(
            f"invalid invocation event: expected a JSON object such as "
            f'{{"mode": "maintain"}}, got a JSON {_json_kind(event)}'
        )
    if event.get("source") == "aws.events" and "mode" not in event:
        event = {}  # a scheduled rule with the default input: archive
    if "Records" in event:
        event = _queued_message(event["Records"])
    problems, values = _check_fields(event)
    if not problems:
        problem = _window_problem(values)
        if problem is not None:
            problems.append(Problem((), f"Value error, {problem}", event))
    if problems:
        described = "; ".join(
            f"{'.'.join(str(p) for p in problem.loc) or 'event'}: {problem.msg}"
            for problem in problems
        )
        raise SettingsError(f"invalid invocation event: {described}")
    return Invocation(**values)


def _check_fields(event: dict[str, Any]) -> tuple[list[Problem], dict[str, Any]]:
    """Each known field converted, or its problem; unknown fields (EventBridge's envelope) are
    ignored."""
    problems: list[Problem] = []
    values: dict[str, Any] = {}
    for name, convert in _FIELDS.items():
        raw = event.get(name)
        if name not in event or (raw is None and name != "mode"):
            continue  # a default; only the mode may not be null
        value = convert(raw)
        if isinstance(value, Refused):
            problems.append(Problem((name,), value.msg, raw))
            continue
        if name == "days":
            bound = bound_problem(value, _DAYS_LIMITS)
            if bound is not None:
                problems.append(Problem((name,), bound, raw))
                continue
        if name in ("start", "end"):
            try:
                parse_timestamp_ns(value)
            except ValueError as exc:
                problems.append(Problem((name,), f"Value error, {exc}", raw))
                continue
        values[name] = value
    return problems, values


_FIELDS = {"mode": to_enum(Mode), "start": to_str, "end": to_str, "org_id": to_str, "days": to_int}


def _window_problem(values: dict[str, Any]) -> str | None:
    if values.get("mode") is Mode.RESNAPSHOT:
        start, end = values.get("start"), values.get("end")
        if start is None or end is None:
            return "resnapshot needs 'start' and 'end' (RFC 3339)"
        if parse_timestamp_ns(start) >= parse_timestamp_ns(end):
            return "resnapshot 'start' must be before 'end'"
    return None


def _queued_message(records: Any) -> dict[str, Any]:
    """The one fan-out message of an SQS event (the event source delivers batches of one)."""
    if not isinstance(records, list) or len(records) != 1:
        raise SettingsError(
            "an SQS event must carry exactly one record: set the event source's batch size to 1"
        )
    record = records[0]
    body = record.get("body") if isinstance(record, dict) else None
    try:
        message = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        message = None
    if not isinstance(message, dict) or message.get("mode") != Mode.ARCHIVE.value:
        raise SettingsError('a queued message must be {"mode": "archive", "org_id": "<id>"}')
    if not isinstance(message.get("org_id"), str):
        raise SettingsError("a queued archive message needs its org_id")
    return message


def _json_kind(value: Any) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return type(value).__name__
