"""The simulator itself: corpora, auth, tokens, faults, stats and the request logic.

``Simulator.handle`` is pure request-in/response-out (no sockets), so validation and paging
are unit-testable; ``Simulator.serve`` puts it behind a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import json
import math
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any
from urllib.parse import parse_qs, urlsplit

from di_archiver.services import KNOWN_SERVICES
from di_archiver.simulator.clock import SimulatorClock
from di_archiver.simulator.config import FaultConfig, RateLimitConfig, SimulatorConfig
from di_archiver.simulator.corpus import OrgCorpus, RenderCache, build_corpus
from di_archiver.simulator.events import Event, encode_event
from di_archiver.simulator.faults import Fault, FaultInjector, FaultKind
from di_archiver.simulator.query import (
    INTERVAL_UNITS,
    EventQuery,
    QueryRejected,
    parse_body,
    parse_event_query,
    project,
    projection_tree,
    values_at,
)
from di_archiver.simulator.server import SimulatorServer
from di_archiver.timestamps import NS_PER_MS, NS_PER_SECOND

API_PREFIX = "/insights/directory/v1"
TOKEN_PATH = "/oauth2/token"  # noqa: S105 (a path, not a secret)
EVENT_ENDPOINTS = ("events", "events/count", "events/distinct", "events/interval")
FAULTABLE = frozenset({"events", "events/count"})
MAX_DISTINCT_BUCKETS = 1000
MAX_INTERVAL_BUCKETS = 10_000

MSG_BAD_KEY = "Unauthorized (Invalid API Key)"
MSG_BAD_TOKEN = "Unauthorized (Invalid or expired token)"  # noqa: S105
MSG_FORBIDDEN = "Forbidden: this API key's role may not use the Directory Insights API"
MSG_NO_ORG = "x-org-id header is required with a bearer token"
MSG_WRONG_ORG = "wrong org ID"
MSG_DI_DISABLED = "Directory Insights is not enabled for your organization"
MSG_500 = "Technical difficulties processing your request"
MSG_503 = "Service Unavailable"
MSG_429 = "Too Many Requests"


@dataclass(slots=True)
class SimResponse:
    """What the HTTP layer should send; ``transport`` asks for a truncated body or a reset."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delay_seconds: float = 0.0
    transport: str = "normal"  # "normal" | "truncate" | "reset"


def _json_response(status: int, payload: Any, headers: list[tuple[str, str]]) -> SimResponse:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return SimResponse(status, body, [("Content-Type", "application/json"), *headers])


def _header_map(headers: Sequence[tuple[str, str]] | Mapping[str, str]) -> dict[str, list[str]]:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name.lower(), []).append(value)
    return out


class _TokenStore:
    """Opaque JWT-shaped bearer tokens with a simulated-clock expiry."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._tokens: dict[str, int] = {}
        self._lock = threading.Lock()

    def issue(self, client_id: str, now_ns: int, ttl_seconds: int) -> str:
        def b64(raw: bytes) -> str:
            return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

        iat = now_ns // NS_PER_SECOND
        header = b64(b'{"alg":"HS256","typ":"JWT"}')
        claims = {
            "iss": "di-simulator",
            "sub": client_id,
            "aud": "api",
            "scope": "api",
            "iat": iat,
            "exp": iat + ttl_seconds,
            "jti": str(uuid.uuid4()),
        }
        payload = b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = b64(hmac.new(self._key, f"{header}.{payload}".encode(), "sha256").digest())
        token = f"{header}.{payload}.{signature}"
        with self._lock:
            self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now_ns}
            self._tokens[token] = now_ns + ttl_seconds * NS_PER_SECOND
        return token

    def valid(self, token: str, now_ns: int) -> bool:
        with self._lock:
            expiry = self._tokens.get(token)
        return expiry is not None and now_ns < expiry


class Simulator:
    """A faithful local stand-in for the JumpCloud Directory Insights API."""

    def __init__(
        self,
        config: SimulatorConfig | None = None,
        *,
        clock: SimulatorClock | None = None,
        sleep: Callable[[float], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or SimulatorConfig()
        self.clock = clock or SimulatorClock()
        self.sleep = sleep or time.sleep
        # Rate limits run on real time even when the simulated clock is frozen or jumps.
        self._limiter = (
            _CredentialBuckets(self.config.rate_limit, monotonic)
            if self.config.rate_limit is not None
            else None
        )
        self._faults = FaultInjector(self.config.faults)
        self._tokens = _TokenStore()
        self._stats: Counter[str] = Counter()
        self._stats_lock = threading.Lock()
        self._cache = RenderCache(self.config.render_cache_bytes)
        self.services = tuple(
            s for s in KNOWN_SERVICES if s != "workflows" or self.config.include_workflows
        )
        self.anchor_ns = self.clock.now_ns()
        self._corpora: dict[str, OrgCorpus] = {}
        for index, spec in enumerate(self.config.orgs):
            self._corpora[spec.org_id] = build_corpus(
                seed=self.config.seed,
                org_index=index,
                spec=spec,
                services=self.services,
                now_ns=self.anchor_ns,
                span_seconds=self.config.span_seconds,
                future_span_seconds=self.config.future_span_seconds,
                tie_share=self.config.tie_share,
                late=self.config.late,
                cache=self._cache,
            )

    def __repr__(self) -> str:
        return f"Simulator(orgs={list(self._corpora)}, clock={self.clock!r})"

    # --- control ------------------------------------------------------------------------------

    @property
    def org_ids(self) -> tuple[str, ...]:
        """Configured organisation ids, in config order."""
        return tuple(self._corpora)

    @property
    def stats(self) -> Counter[str]:
        """A snapshot of counters (missing keys read as 0): ``requests``, ``status:<code>``,
        ``requests:<endpoint>``, ``faults``, ``fault:<kind>``, ``events_served``,
        ``tokens_issued``."""
        with self._stats_lock:
            return Counter(self._stats)

    def reset_stats(self) -> None:
        """Zero every counter."""
        with self._stats_lock:
            self._stats.clear()

    def set_faults(self, faults: FaultConfig) -> None:
        """Replace fault rates at runtime (e.g. off for ground-truth checks)."""
        self._faults.configure(faults)

    def queue_faults(self, *kinds: FaultKind | str) -> None:
        """Make the next faultable requests fail with ``kinds`` in order (then back to rates)."""
        self._faults.queue(*kinds)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        """Start serving on a background thread; use as a context manager."""
        return SimulatorServer(self, host=host, port=port).start()

    def _count(self, *keys: str, amount: int = 1) -> None:
        with self._stats_lock:
            for key in keys:
                self._stats[key] += amount

    # --- ground truth -------------------------------------------------------------------------

    def corpus(self, org_id: str) -> OrgCorpus:
        """The org's compact corpus (raises ``KeyError`` for an unknown org)."""
        return self._corpora[org_id]

    def _retention_ms(self, now_ns: int) -> int:
        return (now_ns - self.config.retention_days * 86_400 * NS_PER_SECOND) // NS_PER_MS

    def _visible_positions(
        self, org_id: str, start_ns: int | None, end_ns: int | None
    ) -> Iterator[int]:
        corpus = self._corpora[org_id]
        now = self.clock.now_ns()
        lo = corpus.first_pos_at_or_after_ms(self._retention_ms(now))
        if start_ns is not None:
            lo = max(lo, corpus.first_pos_at_or_after_ms(start_ns // NS_PER_MS))
        hi = len(corpus)
        if end_ns is not None:
            hi = min(hi, corpus.first_pos_after_ms(end_ns // NS_PER_MS))
        ts, avail = corpus.ts_ns, corpus.avail_ns
        for pos in range(lo, hi):
            t = ts[pos]
            visible = avail[pos] <= now
            if visible and (start_ns is None or t >= start_ns) and (end_ns is None or t < end_ns):
                yield pos

    def visible_events(
        self, org_id: str, start_ns: int | None = None, end_ns: int | None = None
    ) -> list[Event]:
        """Events a query could return now, in API order (ms, doc id), as the API's dicts.

        Bounds are exact nanoseconds, half-open ``[start_ns, end_ns)``, unlike the API's
        millisecond filter; retention and late indexing apply as for the API.
        """
        corpus = self._corpora[org_id]
        return [
            json.loads(corpus.event_bytes(p))
            for p in self._visible_positions(org_id, start_ns, end_ns)
        ]

    def count_visible(
        self, org_id: str, start_ns: int | None = None, end_ns: int | None = None
    ) -> int:
        """``len(visible_events(...))`` without rendering."""
        return sum(1 for _ in self._visible_positions(org_id, start_ns, end_ns))

    def all_events(self, org_id: str) -> Iterator[Event]:
        """Every generated event of the org in API order, visible or not."""
        corpus = self._corpora[org_id]
        for pos in range(len(corpus)):
            yield json.loads(corpus.event_bytes(pos))

    def pending_events(self, org_id: str) -> list[Event]:
        """Events indexed late that are not searchable yet at the current clock."""
        corpus = self._corpora[org_id]
        now = self.clock.now_ns()
        return [
            json.loads(corpus.event_bytes(p))
            for p in range(len(corpus))
            if corpus.avail_ns[p] > now
        ]

    def event_count(self, org_id: str) -> int:
        """Total generated events of the org."""
        return len(self._corpora[org_id])

    # --- request handling ---------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]] | Mapping[str, str],
        body: bytes,
    ) -> SimResponse:
        """Answer one HTTP request (pure logic; the server only moves bytes)."""
        request_id = str(uuid.uuid4())
        rid = [("X-Request-Id", request_id)]
        route = urlsplit(path).path.rstrip("/")
        self._count("requests")
        if route == TOKEN_PATH:
            endpoint = "token"
        elif route.startswith(API_PREFIX + "/") and route[len(API_PREFIX) + 1 :] in EVENT_ENDPOINTS:
            endpoint = route[len(API_PREFIX) + 1 :]
        else:
            return self._finish(_json_response(404, {"message": "Not Found"}, rid))
        self._count(f"requests:{endpoint}")
        if method != "POST":
            return self._finish(_json_response(405, {"message": "Method Not Allowed"}, rid))
        hmap = _header_map(headers)
        if self._limiter is not None and endpoint != "token":
            wait = self._limiter.take(_credential_of(hmap))
            if wait is not None:
                self._count("rate_limited")
                retry_after = str(max(1, math.ceil(wait)))
                return self._finish(
                    _json_response(429, {"message": MSG_429}, [*rid, ("Retry-After", retry_after)])
                )

        fault = None
        if endpoint in FAULTABLE or (
            endpoint == "token" and self._faults.applies_to_token_endpoint()
        ):
            fault = self._faults.decide()
        if fault is not None:
            self._count("faults", f"fault:{fault.kind.value}")
            failed = self._fault_response(fault, rid)
            if failed is not None:
                return self._finish(failed)

        try:
            if endpoint == "token":
                response = self._token(hmap, body, rid)
            else:
                response = self._di(endpoint, hmap, body, rid)
        except QueryRejected as exc:
            response = _json_response(exc.status, {"message": exc.message}, rid)
        if endpoint != "token":
            response.delay_seconds += self.config.latency_ms / 1000
        if fault is not None:
            if fault.kind is FaultKind.SLOW:
                response.delay_seconds += fault.seconds
            elif fault.kind is FaultKind.TRUNCATED:
                response.transport = "truncate"
        return self._finish(response)

    def _finish(self, response: SimResponse) -> SimResponse:
        if response.transport != "reset":
            self._count(f"status:{response.status}")
        return response

    def _fault_response(self, fault: Fault, rid: list[tuple[str, str]]) -> SimResponse | None:
        kind = fault.kind
        if kind is FaultKind.THROTTLED:
            return _json_response(429, {"message": MSG_429}, rid)
        if kind is FaultKind.THROTTLED_RETRY_AFTER:
            headers = [*rid, ("Retry-After", str(int(fault.seconds)))]
            return _json_response(429, {"message": MSG_429}, headers)
        if kind is FaultKind.SERVER_ERROR:
            return _json_response(500, {"message": MSG_500}, rid)
        if kind is FaultKind.UNAVAILABLE:
            return _json_response(503, {"message": MSG_503}, rid)
        if kind is FaultKind.RESET:
            return SimResponse(0, transport="reset")
        return None

    # --- OAuth --------------------------------------------------------------------------------

    def _token(
        self, hmap: dict[str, list[str]], body: bytes, rid: list[tuple[str, str]]
    ) -> SimResponse:
        form = parse_qs(body.decode("utf-8", "replace"))
        client_id, secret = _basic_credentials(hmap.get("authorization", [""])[0])
        if client_id is None:
            client_id = form.get("client_id", [""])[0]
            secret = form.get("client_secret", [""])[0]
        expected = self.config.service_accounts.get(client_id or "")
        if expected is None or not hmac.compare_digest(expected.encode(), (secret or "").encode()):
            return _json_response(
                401,
                {"error": "invalid_client", "error_description": "Client authentication failed"},
                rid,
            )
        if form.get("grant_type", [""])[0] != "client_credentials":
            return _json_response(400, {"error": "unsupported_grant_type"}, rid)
        scope = form.get("scope", ["api"])[0]
        if scope != "api":
            return _json_response(400, {"error": "invalid_scope"}, rid)
        ttl = self.config.token_ttl_seconds
        token = self._tokens.issue(client_id or "", self.clock.now_ns(), ttl)
        self._count("tokens_issued")
        payload = {"access_token": token, "expires_in": ttl, "scope": "api", "token_type": "bearer"}
        return _json_response(200, payload, [*rid, ("Cache-Control", "no-store")])

    def issue_token(self, client_id: str) -> str:
        """A valid bearer token without an HTTP round trip (test convenience)."""
        return self._tokens.issue(client_id, self.clock.now_ns(), self.config.token_ttl_seconds)

    # --- DI endpoints -------------------------------------------------------------------------

    def _authorize(self, hmap: dict[str, list[str]]) -> list[OrgCorpus]:
        cfg = self.config
        org_ids = [
            part.strip() for raw in hmap.get("x-org-id", []) for part in raw.split(",")
        ]  # fmt: skip
        org_ids = [o for o in org_ids if o]
        key = hmap.get("x-api-key", [None])[0]
        auth = hmap.get("authorization", [""])[0]
        if key is not None:
            if key not in cfg.api_keys:
                raise QueryRejected(MSG_BAD_KEY, 401)
            if key in cfg.non_admin_keys:
                raise QueryRejected(MSG_FORBIDDEN, 403)
            if not org_ids:
                org_ids = [cfg.api_keys[key]]
        elif auth[:7].lower() == "bearer ":
            if not self._tokens.valid(auth[7:].strip(), self.clock.now_ns()):
                raise QueryRejected(MSG_BAD_TOKEN, 401)
            if not org_ids:
                raise QueryRejected(MSG_NO_ORG, 400)
        else:
            raise QueryRejected(MSG_BAD_KEY, 401)
        corpora = []
        for org_id in dict.fromkeys(org_ids):
            corpus = self._corpora.get(org_id)
            if corpus is None:
                raise QueryRejected(MSG_WRONG_ORG, 400)
            if not corpus.spec.di_enabled:
                raise QueryRejected(MSG_DI_DISABLED, 402)
            corpora.append(corpus)
        return corpora

    def _di(
        self, endpoint: str, hmap: dict[str, list[str]], body: bytes, rid: list[tuple[str, str]]
    ) -> SimResponse:
        corpora = self._authorize(hmap)
        data = parse_body(body)
        now = self.clock.now_ns()
        query = parse_event_query(data, now_ns=now, max_search_terms=self.config.max_search_terms)
        if endpoint == "events":
            return self._events(corpora, query, now, rid)
        if endpoint == "events/count":
            count = sum(1 for _ in self._matches(corpora, query, now))
            return _json_response(200, {"count": count}, rid)
        if endpoint == "events/distinct":
            return self._distinct(corpora, query, data, now, rid)
        return self._interval(corpora, query, data, now, rid)

    def _events(
        self, corpora: list[OrgCorpus], query: EventQuery, now: int, rid: list[tuple[str, str]]
    ) -> SimResponse:
        page = list(
            islice(self._matches(corpora, query, now), query.skip, query.skip + query.limit)
        )
        if query.fields:
            tree = projection_tree(query.fields)
            parts = [encode_event(project(c.event(p), tree)) for c, p in page]
        else:
            parts = [c.event_bytes(p) for c, p in page]
        body = b"[" + b",".join(parts) + b"]"
        headers = [
            ("Content-Type", "application/json"),
            ("X-Result-Count", str(len(page))),
            ("X-Limit", str(query.limit)),
            ("X-Sort", query.sort),
        ]
        if page:
            last_corpus, last_pos = page[-1]
            cursor: list[Any] | None = [last_corpus.ms(last_pos), last_corpus.doc_id(last_pos)]
        else:
            # Undocumented: on an empty page we echo the request's cursor, or omit the header.
            cursor = list(query.search_after) if query.search_after else None
        if cursor is not None:
            headers.append(("X-Search_after", json.dumps(cursor, separators=(",", ":"))))
        headers.extend(rid)
        self._count("events_served", amount=len(page))
        return SimResponse(200, body, headers)

    def _matches(
        self, corpora: list[OrgCorpus], query: EventQuery, now: int
    ) -> Iterator[tuple[OrgCorpus, int]]:
        streams = [self._org_stream(c, query, now) for c in corpora]
        if len(streams) == 1:
            merged: Iterator[tuple[OrgCorpus, int]] = streams[0]
        else:
            merged = heapq.merge(
                *streams,
                key=lambda cp: (cp[0].ms(cp[1]), cp[0].doc_hash[cp[1]]),
                reverse=query.sort == "DESC",
            )
        if query.matcher is None and query.q is None and query.exact_match is None:
            return merged
        return (cp for cp in merged if _accepts(cp[0], cp[1], query))

    def _org_stream(
        self, corpus: OrgCorpus, query: EventQuery, now: int
    ) -> Iterator[tuple[OrgCorpus, int]]:
        lo = corpus.first_pos_at_or_after_ms(max(query.start_ms, self._retention_ms(now)))
        end_ms = query.end_ms
        if end_ms is None:
            hi = len(corpus)
        elif self.config.end_time_inclusive:
            hi = corpus.first_pos_after_ms(end_ms)
        else:
            hi = corpus.first_pos_at_or_after_ms(end_ms)
        if query.search_after is not None:
            if query.sort == "ASC":
                lo = max(lo, corpus.first_pos_after_key(*query.search_after))
            else:
                hi = min(hi, corpus.first_pos_at_or_after_key(*query.search_after))
        codes = (
            None
            if query.services is None
            else frozenset(i for i, s in enumerate(corpus.services) if s in query.services)
        )
        avail, svc = corpus.avail_ns, corpus.service_code
        positions = range(lo, hi) if query.sort == "ASC" else range(hi - 1, lo - 1, -1)
        for pos in positions:
            if avail[pos] <= now and (codes is None or svc[pos] in codes):
                yield corpus, pos

    def _distinct(
        self,
        corpora: list[OrgCorpus],
        query: EventQuery,
        data: Mapping[str, Any],
        now: int,
        rid: list[tuple[str, str]],
    ) -> SimResponse:
        name = data.get("field")
        if not isinstance(name, str) or not name:
            raise QueryRejected("field is required")
        parts = tuple(name.split("."))
        counts: Counter[str] = Counter()
        for corpus, pos in self._matches(corpora, query, now):
            for value in set(values_at(corpus.event(pos), parts)):
                if value is not None and not isinstance(value, dict | list):
                    counts[_term_key(value)] += 1
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        kept = ordered[:MAX_DISTINCT_BUCKETS]
        payload = {
            "buckets": [{"key": k, "doc_count": n} for k, n in kept],
            "doc_count_error_upper_bound": 0,
            "sum_other_doc_count": sum(n for _, n in ordered[MAX_DISTINCT_BUCKETS:]),
        }
        return _json_response(200, payload, rid)

    def _interval(
        self,
        corpora: list[OrgCorpus],
        query: EventQuery,
        data: Mapping[str, Any],
        now: int,
        rid: list[tuple[str, str]],
    ) -> SimResponse:
        unit = data.get("interval_unit")
        if unit not in INTERVAL_UNITS:
            raise QueryRejected(
                f"interval_unit is required and must be one of: {', '.join(INTERVAL_UNITS)}"
            )
        try:
            value = int(data.get("interval_value") or 1)
        except (TypeError, ValueError) as exc:
            raise QueryRejected("interval_value must be a positive integer") from exc
        if value <= 0:
            raise QueryRejected("interval_value must be a positive integer")
        offset_ms = _tz_offset_ms(data.get("timezone"))
        width = INTERVAL_UNITS[str(unit)] * value * 1000
        # Weeks start on Monday like Elasticsearch's; the epoch fell on a Thursday.
        origin = 4 * 86_400_000 if unit == "w" else 0
        counts: Counter[int] = Counter()
        for corpus, pos in self._matches(corpora, query, now):
            local = corpus.ms(pos) + offset_ms - origin
            counts[local - local % width + origin - offset_ms] += 1
        buckets = []
        if counts:
            first, last = min(counts), max(counts)
            if (last - first) // width + 1 > MAX_INTERVAL_BUCKETS:
                raise QueryRejected("too many buckets: widen interval_value or narrow the window")
            for key in range(first, last + 1, width):
                buckets.append(
                    {
                        "key": key,
                        "key_as_string": _key_string(key, offset_ms),
                        "doc_count": counts[key],
                    }
                )
        return _json_response(200, {"buckets": buckets}, rid)


def _credential_of(hmap: dict[str, list[str]]) -> str:
    """What the API would meter a request by: its API key or bearer token (hashed, so the
    limiter never holds a credential in the clear)."""
    raw = hmap.get("x-api-key", [None])[0] or hmap.get("authorization", [""])[0]
    return hashlib.sha256(raw.encode()).hexdigest()


class _CredentialBuckets:
    """One token bucket per credential (thread-safe: the server answers on many threads)."""

    def __init__(self, config: RateLimitConfig, monotonic: Callable[[], float]) -> None:
        self._config = config
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # credential -> (tokens, at)

    def take(self, credential: str) -> float | None:
        """Spend a token: ``None`` if one was there, else the seconds until one is."""
        rate, burst = self._config.per_second, float(self._config.burst)
        with self._lock:
            now = self._monotonic()
            tokens, at = self._buckets.get(credential, (burst, now))
            tokens = min(burst, tokens + (now - at) * rate)
            if tokens >= 1.0 - 1e-9:  # float sums of exact intervals may fall a hair short
                self._buckets[credential] = (tokens - 1.0, now)
                return None
            self._buckets[credential] = (tokens, now)
            return (1.0 - tokens) / rate


def _accepts(corpus: OrgCorpus, pos: int, query: EventQuery) -> bool:
    if query.q is not None or query.exact_match is not None:
        text = corpus.event_bytes(pos).decode()
        if query.exact_match is not None and query.exact_match not in text:
            return False
        if query.q is not None and query.q not in text.lower():
            return False
    return query.matcher is None or query.matcher(corpus.event(pos))


def _term_key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).lower()


def _tz_offset_ms(value: Any) -> int:
    if value in (None, "", "Z", "UTC", "+0000", "+00:00"):
        return 0
    text = str(value).replace(":", "")
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        raise QueryRejected('timezone must look like "-0500"')
    minutes = int(text[1:3]) * 60 + int(text[3:5])
    return (minutes if text[0] == "+" else -minutes) * 60_000


def _key_string(key_ms: int, offset_ms: int) -> str:
    local_s, ms = divmod(key_ms + offset_ms, 1000)
    sign = "+" if offset_ms >= 0 else "-"
    minutes = abs(offset_ms) // 60_000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(local_s))
    zone = "Z" if offset_ms == 0 else f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    return f"{stamp}.{ms:03d}{zone}"


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    if header[:6].lower() != "basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except ValueError:
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def fingerprint(body: bytes) -> str:
    """SHA-256 of a body (handy for determinism checks)."""
    return hashlib.sha256(body).hexdigest()
