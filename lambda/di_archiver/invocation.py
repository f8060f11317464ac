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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from di_archiver.errors import SettingsError
from di_archiver.observability import Mode
from di_archiver.timestamps import parse_timestamp_ns


class Invocation(BaseModel):
    """The invocation event; unknown fields (EventBridge's envelope) are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    mode: Mode = Mode.ARCHIVE
    start: str | None = Field(default=None, description="Resnapshot window start (RFC 3339).")
    end: str | None = Field(default=None, description="Resnapshot window end (RFC 3339).")
    org_id: str | None = Field(
        default=None, description="Archive or resnapshot one org (default: all)."
    )
    days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Verify only objects and manifests of the last N UTC days (default: all).",
    )

    @field_validator("start", "end")
    @classmethod
    def _timestamp(cls, value: str | None) -> str | None:
        if value is not None:
            parse_timestamp_ns(value)
        return value

    @model_validator(mode="after")
    def _window(self) -> Invocation:
        if self.mode is Mode.RESNAPSHOT:
            if self.start is None or self.end is None:
                raise ValueError("resnapshot needs 'start' and 'end' (RFC 3339)")
            if parse_timestamp_ns(self.start) >= parse_timestamp_ns(self.end):
                raise ValueError("resnapshot 'start' must be before 'end'")
        return self

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
    try:
        return Invocation.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise SettingsError(f"invalid invocation event: {problems}") from None


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
