"""The fan-out work queue on SQS FIFO: one message group per organisation.

``MessageGroupId = org`` makes SQS deliver an org's messages one at a time (the next only after
the previous one was deleted, i.e. its run finished), so one org is never archived twice at
once while different orgs run in parallel. ``MessageDeduplicationId`` lets a retried dispatch
(or continuation) within SQS's five-minute window be dropped instead of queued twice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from di_archiver.adapters.s3_store import aws_client, error_code
from di_archiver.application.fanout import OrgMessage
from di_archiver.errors import QueueError, SettingsError

_BATCH = 10  # SendMessageBatch's limit


class SqsOrgQueue:
    """An :class:`~di_archiver.application.fanout.OrgQueue` on an SQS FIFO queue."""

    def __init__(
        self, queue_url: str, *, sqs_client: Any = None, endpoint_url: str | None = None
    ) -> None:
        if not queue_url.endswith(".fifo"):
            raise SettingsError(
                "DI_ARCHIVER_ORG_QUEUE_URL must name an SQS FIFO queue (ending in .fifo): only "
                "a FIFO queue keeps one org from running twice at once"
            )
        self.queue_url = queue_url
        self._client = sqs_client
        self._endpoint_url = endpoint_url

    def __repr__(self) -> str:
        return f"SqsOrgQueue(queue_url={self.queue_url!r})"

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws_client("sqs", endpoint_url=self._endpoint_url)
        return self._client

    def send(self, messages: Sequence[OrgMessage]) -> None:
        """Enqueue every message; raise :class:`QueueError` naming the orgs that failed."""
        failed: list[str] = []
        for first in range(0, len(messages), _BATCH):
            batch = messages[first : first + _BATCH]
            entries = [
                {
                    "Id": str(index),
                    "MessageBody": json.dumps(message.body, sort_keys=True),
                    "MessageGroupId": message.org_id,
                    "MessageDeduplicationId": message.dedup_id,
                }
                for index, message in enumerate(batch)
            ]
            try:
                answer = self.client.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise QueueError(
                    f"cannot enqueue org work on {self.queue_url}: {error_code(exc)}; check the "
                    "queue exists and the function may sqs:SendMessage to it"
                ) from exc
            failed.extend(batch[int(f["Id"])].org_id for f in answer.get("Failed", []))
        if failed:
            raise QueueError(
                f"SQS refused the work message of {len(failed)} org(s): {', '.join(failed)}"
            )
