"""In-memory stand-ins for the DI API, served through ``httpx.MockTransport`` (no sockets)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from di_archiver.adapters.di_auth import ApiKeyCredentials, Credentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.raw_events import RawEvent
from di_archiver.timestamps import format_timestamp_ns

BASE_URL = "https://di.test"
TOKEN_URL = "https://oauth.test/oauth2/token"
API_KEY = "jcak-TOP-SECRET-0123456789"  # a value to hunt for in messages and logs
ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"
START_NS = 1_700_000_000 * 1_000_000_000
END_NS = START_NS + 3_600 * 1_000_000_000

Handler = Callable[[httpx.Request], httpx.Response]


def decoded(events: Iterable[RawEvent]) -> list[dict[str, Any]]:
    """The events' archived bytes decoded again, to compare with what a fake DI served."""
    return [json.loads(event.line) for event in events]


def make_events(count: int, *, start_ms: int = 1_700_000_000_000, per_ms: int = 1) -> list[dict]:
    """``count`` events, ``per_ms`` sharing each millisecond (ties), in API order."""
    return [
        {
            "id": f"{i:024x}",
            "service": "directory",
            "timestamp": format_timestamp_ns((start_ms + i // per_ms) * 1_000_000 + 123),
            "event_type": "user_update",
        }
        for i in range(count)
    ]


def page_response(
    events: list[dict],
    *,
    limit: int,
    cursor: Any,
    request_id: str = "req-1",
    cursor_header: str = "X-Search_after",
    count_header: str = "X-Result-Count",
    limit_header: str = "X-Limit",
) -> httpx.Response:
    headers = {count_header: str(len(events)), cursor_header: json.dumps(cursor)}
    if limit_header:
        headers[limit_header] = str(limit)
    headers["X-Request-Id"] = request_id
    return httpx.Response(200, json=events, headers=headers)


class PagingDI:
    """Pages a fixed corpus with ``search_after`` like DI: cursor = [ms, opaque doc id]."""

    def __init__(self, events: list[dict], *, max_limit: int = 10_000, **header_names: str):
        self.events = events
        self.max_limit = max_limit
        self.header_names = header_names
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        body = json.loads(request.content)
        limit = min(int(body.get("limit", 1000)), self.max_limit)
        after = body.get("search_after")
        start = 0 if after is None else int(after[1]) + 1
        page = self.events[start : start + limit]
        cursor = [start + len(page) - 1, f"{start + len(page) - 1:020d}"] if page else after
        return page_response(
            page,
            limit=limit,
            cursor=cursor if cursor is not None else [],
            request_id=f"req-{len(self.requests)}",
            **self.header_names,
        )

    def bodies(self) -> list[dict]:
        return [json.loads(r.content) for r in self.requests]


class Scripted:
    """Answers each request with the next scripted item (a response, or an exception to raise)."""

    def __init__(self, items: Iterable[httpx.Response | Exception | Handler]) -> None:
        self.items = list(items)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        item = self.items.pop(0)
        if isinstance(item, Exception):
            raise item
        if isinstance(item, httpx.Response):
            return item
        return item(request)


class Sleeps(list[float]):
    """An injected ``sleep`` that records instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def make_client(
    handler: Handler,
    *,
    credentials: Credentials | None = None,
    sleeps: Sleeps | None = None,
    random: Callable[[], float] = lambda: 1.0,
    retry: RetryPolicy | None = None,
    **kwargs: Any,
) -> DIClient:
    kwargs.setdefault("prefetch", False)
    return DIClient(
        base_url=BASE_URL,
        credentials=credentials or ApiKeyCredentials(api_key=API_KEY, source="di/jumpcloud"),
        token_url=TOKEN_URL,
        http=httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=sleeps if sleeps is not None else Sleeps(),
        random=random,
        retry=retry or RetryPolicy(max_attempts=4, base_delay=0.5, max_delay=30.0),
        **kwargs,
    )
