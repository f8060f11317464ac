"""Head publishers: each signed day's manifest hash, recorded outside the archive bucket.

The chain and certificates cannot show that the newest sealed days were deleted outright.
These adapters record every signed head somewhere the archiver cannot rewrite: an EventBridge
event (route it to another account or a log archive), a line in the function's log group
(the function may write log events, never delete them), or a local JSON Lines file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from di_archiver.adapters.s3_store import aws_client, error_code
from di_archiver.errors import ArchiverError, StoreError

EVENT_SOURCE = "di-archiver"
EVENT_DETAIL_TYPE = "DI archive day signed"


class EventBridgeHeadPublisher:
    """``events:PutEvents`` of one ``DI archive day signed`` event per signed manifest."""

    def __init__(
        self, bus: str, *, events_client: Any | None = None, endpoint_url: str | None = None
    ) -> None:
        self.bus = bus
        self._client = events_client
        self._endpoint_url = endpoint_url

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("events", endpoint_url=self._endpoint_url)
        return self._client

    def publish(self, head: Mapping[str, Any]) -> None:
        try:
            response = self.client.put_events(
                Entries=[
                    {
                        "Source": EVENT_SOURCE,
                        "DetailType": EVENT_DETAIL_TYPE,
                        "Detail": json.dumps(dict(head), sort_keys=True),
                        "EventBusName": self.bus,
                    }
                ]
            )
        except (ClientError, BotoCoreError) as exc:
            raise ArchiverError(f"publishing a signed head failed: {error_code(exc)}") from exc
        if response.get("FailedEntryCount"):
            code = response["Entries"][0].get("ErrorCode", "unknown")
            raise ArchiverError(f"publishing a signed head failed: {code}")


class LogHeadPublisher:
    """One structured log line per signed head (``log`` is e.g. a Powertools logger's info)."""

    def __init__(self, log: Callable[..., object]) -> None:
        self._log = log

    def publish(self, head: Mapping[str, Any]) -> None:
        self._log("day signed", extra={"head": dict(head)})


class FileHeadPublisher:
    """Appends each head as one JSON line to a file kept outside the archive directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def publish(self, head: Mapping[str, Any]) -> None:
        line = json.dumps(dict(head), sort_keys=True) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as exc:
            raise StoreError(f"cannot append to heads file {self.path}: {exc.strerror}") from exc
