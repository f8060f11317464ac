"""A deliberately tiny client that pages exactly like JumpCloud's own exporter.

JumpCloud's serverless exporter (TheJumpCloud/JumpCloud-Serverless,
``AWS/DirectoryInsights/get-jcdirectoryinsights.py``) posts the query once, then loops
``while X-Result-Count >= X-Limit``, sending ``json.loads(X-Search_After)`` back as
``search_after`` and concatenating the pages. This copy keeps that loop (and its header
spelling, which only works if headers match case-insensitively) but uses ``urllib`` so it
shares no code with di-archiver's client: if both retrieve the same corpus from the simulator,
the simulator's paging agrees with the documented protocol rather than with our client.

Two deliberate deviations, both to make the test meaningful rather than lenient: the counts
are compared as integers (the original compares the header *strings*), and there are no
retries (the test runs with faults off).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any


def _post(url: str, body: dict[str, Any], headers: dict[str, str]) -> tuple[Any, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read()), response.headers


def fetch_all(
    base_url: str,
    api_key: str,
    start_time: str,
    end_time: str,
    *,
    org_id: str | None = None,
    service: tuple[str, ...] = ("all",),
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    """Every event of the window, paged the way JumpCloud's exporter pages."""
    url = base_url.rstrip("/") + "/insights/directory/v1/events"
    headers = {
        "x-api-key": api_key,
        "content-type": "application/json",
        "user-agent": "JumpCloud_AWSServerless.DirectoryInsights/3.2.0",
    }
    if org_id:
        headers["x-org-id"] = org_id
    body: dict[str, Any] = {
        "service": list(service),
        "start_time": start_time,
        "end_time": end_time,
        "limit": limit,
    }
    data, response_headers = _post(url, body, headers)
    events: list[dict[str, Any]] = list(data or [])
    while int(response_headers["X-Result-Count"]) >= int(response_headers["X-Limit"]):
        body["search_after"] = json.loads(response_headers["X-Search_After"])
        data, response_headers = _post(url, body, headers)
        events += data or []
    return events
