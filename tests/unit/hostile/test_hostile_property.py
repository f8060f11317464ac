"""Property: whatever a hostile DI and a failing store do, a run either archives every event DI
returned for its windows exactly once, or fails with a clear error leaving the checkpoint where
nothing is lost; and once the faults stop, the next run converges to the full archive.

Each request is answered by the next fault of a generated script (then well-formed pages):
well-formed, malformed body (retried), a lying X-Limit, an event from outside the window, an
event with a repeated ``timestamp`` key. Each write may fail (a full disk).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from di_archiver.adapters.retry import RetryPolicy
from di_archiver.archive_format import decode_lines
from di_archiver.domain.checkpoint import load_checkpoint
from di_archiver.domain.engine import ArchiveEngine, EngineRunError
from di_archiver.errors import ArchiverError, StoreError
from di_archiver.timestamps import NS_PER_MS, format_timestamp_ns, parse_timestamp_ns
from tests.unit.client.fakes import make_client
from tests.unit.engine.fakes import MemoryCheckpoints, MemoryStore
from tests.unit.engine.helpers import CONFIG, HOUR, Clock

ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"
NOW = parse_timestamp_ns("2026-05-04T12:00:00Z")
FIRST = parse_timestamp_ns("2026-05-04T06:00:00Z")
FAULTS = ("ok", "malformed", "x_limit_lie", "outside_window", "duplicate_timestamp")


class HostileDI:
    """Serves ``events`` (JSON texts by timestamp) like DI, the first requests per script."""

    def __init__(self, events: list[tuple[int, bytes]], page: int, script: list[str]) -> None:
        self.events = sorted(events)
        self.page = page
        self.script = list(script)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        lo = parse_timestamp_ns(body["start_time"]) // NS_PER_MS
        hi = parse_timestamp_ns(body["end_time"]) // NS_PER_MS
        found = [raw for ts, raw in self.events if lo <= ts // NS_PER_MS <= hi]
        offset = int(body.get("search_after", [0, "0"])[1])
        items = found[offset : offset + self.page]
        fault = self.script.pop(0) if self.script else "ok"
        limit = self.page
        if fault == "malformed":
            return httpx.Response(200, content=b'[{"id": "cut', headers={"X-Limit": str(limit)})
        if fault == "x_limit_lie":
            limit = self.page * 2
        if fault == "outside_window":
            items = [*items, _event(parse_timestamp_ns("2099-01-01T00:00:00Z"), "f" * 24)]
        if fault == "duplicate_timestamp" and items:
            first = items[0]
            items = [first[:-1] + b',"timestamp":"2099-01-01T00:00:00Z"}', *items[1:]]
        headers = {
            "X-Result-Count": str(len(items)),
            "X-Limit": str(limit),
            "X-Search_after": json.dumps([0, str(offset + len(items))]),
        }
        return httpx.Response(200, content=b"[" + b",".join(items) + b"]", headers=headers)


def _event(ts: int, event_id: str) -> bytes:
    return json.dumps(
        {"id": event_id, "service": "directory", "timestamp": format_timestamp_ns(ts), "n": 1.5}
    ).encode()


class FlakyStore(MemoryStore):
    def __init__(self, failing_puts: set[int]) -> None:
        super().__init__()
        self.failing = failing_puts
        self.attempts = 0

    def put(self, key: str, body: bytes, metadata: Any) -> None:
        self.attempts += 1
        if self.attempts in self.failing:
            raise StoreError(f"cannot write {key}: No space left on device")
        super().put(key, body, metadata)


def archived(store: MemoryStore) -> list[bytes]:
    """Every archived line, as stored (it must be the bytes DI sent)."""
    return [line for key in store.objects for line in decode_lines(store.objects[key][0])]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    offsets=st.lists(st.integers(0, 5 * 3600 * 1000 - 1), min_size=0, max_size=25, unique=True),
    page=st.integers(1, 6),
    script=st.lists(st.sampled_from(FAULTS), max_size=8),
    failing_puts=st.sets(st.integers(1, 8), max_size=3),
)
def test_any_hostile_answers_and_failing_writes_lose_nothing_and_converge(
    offsets: list[int], page: int, script: list[str], failing_puts: set[int]
) -> None:
    # Given DI holding events over five closed hours, a fault script and a flaky store
    events = [
        (FIRST + ms * NS_PER_MS + 7, _event(FIRST + ms * NS_PER_MS + 7, f"{i:024x}"))
        for i, ms in enumerate(offsets)
    ]
    di = HostileDI(events, page, script)
    store = FlakyStore(failing_puts)
    checkpoints = MemoryCheckpoints()
    config = replace(CONFIG, lookback_ns=6 * HOUR, pipeline=False)
    client = make_client(di, page_limit=page, retry=RetryPolicy(max_attempts=2, base_delay=0.0))
    engine = ArchiveEngine(
        source=client, store=store, checkpoints=checkpoints, config=config, clock=Clock(NOW)
    )
    expected = sorted(raw for _ts, raw in events)
    # When runs happen until one succeeds (the faults run out)
    for _attempt in range(20):
        failures: tuple[tuple[str, ArchiverError], ...] = ()
        try:
            engine.run([ORG])
        except EngineRunError as exc:
            failures = exc.failures
        if failures:
            # Then a failure is a clear error of ours ...
            assert all(isinstance(e, ArchiverError) and str(e) for _org, e in failures)
            # ... and nothing before the checkpoint is missing
            checkpoint = load_checkpoint(checkpoints, ORG, bucket_ns=CONFIG.bucket_ns, now_ns=NOW)
            assert checkpoint is not None
            held = set(archived(store))
            for ts, raw in events:
                if ts < checkpoint.closed_through_ns:
                    assert raw in held
            continue
        break
    else:
        raise AssertionError("the runs never converged after the faults ran out")
    # Then every event DI returned is archived exactly once, byte for byte, and nothing else
    assert sorted(archived(store)) == expected
