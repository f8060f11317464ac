"""The Directory Insights HTTP client: an :class:`~di_archiver.domain.ports.EventSource`.

It pages ``POST /insights/directory/v1/events`` with ``search_after`` exactly as JumpCloud
documents (stop when ``X-Result-Count < X-Limit``), streams pages without holding the window,
retries what is transient (429, 5xx, timeouts, cut connections, bodies that are cut short) with
exponential back-off and full jitter, and turns what is permanent (400/401/402/403) into errors
that say what to fix. Credentials never reach a message, ``repr`` or log line.

Pages are requested one ahead: as soon as an answer's headers say the page is full, the next
page is asked for on a short-lived thread (the cursor travels in a header, before the body)
while this one is received and parsed, so requests follow each other like a bare pager's, or
closer. A body found cut or mangled is asked for again, and the page asked ahead is kept only
if it still follows.

Memory is bounded by the pages held, not by the windows read at once: every reader of a client
takes one of ``max_pages_held`` turns before it reads a body into memory and gives it back when
its consumer asks for the next page (the previous one is encoded by then). Readers that wait
for a turn keep their answer on the connection, headers in, so several windows in flight still
hide DI's latency without each holding pages.

An optional *deadline* (seconds the caller still grants, e.g. the Lambda's remaining time minus
a reserve) bounds every request: timeouts are cut to it, no back-off sleeps past it, and once
less than ``min_attempt_seconds`` remain the call fails with :class:`DITransientError` "out of
time" instead of being killed mid-request with the rest of the run.
"""

from __future__ import annotations

import functools
import json
import logging
import random as _random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from msgspec import Struct

from di_archiver import __version__
from di_archiver.adapters.bounded_http import (
    Answer,
    BodyTooLarge,
    BodyUnreadable,
    RequestDeadlineExceeded,
    Unread,
    deadline_transport,
    read_body,
    request_deadline,
)
from di_archiver.adapters.di_auth import (
    DEFAULT_RENEW_MARGIN_SECONDS,
    AccessToken,
    ApiKeyCredentials,
    Credentials,
    ServiceAccountCredentials,
    TokenCache,
    header_safe,
)
from di_archiver.adapters.rate_limit import RateLimiter
from di_archiver.adapters.retry import RETRYABLE_STATUSES, RetryPolicy, parse_retry_after
from di_archiver.domain.pipeline import run_ahead
from di_archiver.errors import (
    DIApiError,
    DIAuthenticationError,
    DIBadRequestError,
    DIForbiddenError,
    DIPaymentRequiredError,
    DIResponseError,
    DITransientError,
    SettingsError,
)
from di_archiver.raw_events import PageFormatError, RawEvent, RepeatedKeyError, parse_page
from di_archiver.redaction import server_text
from di_archiver.settings import DEFAULT_TOKEN_URL, REGION_BASE_URLS, Region
from di_archiver.timestamps import format_timestamp_ns
from di_archiver.urls import validate_api_url

if TYPE_CHECKING:
    from di_archiver.domain.ports import EventSource

logger = logging.getLogger(__name__)

API_PREFIX = "/insights/directory/v1"
EVENTS_PATH = f"{API_PREFIX}/events"
COUNT_PATH = f"{API_PREFIX}/events/count"
MAX_PAGE_LIMIT = 10_000
DEFAULT_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
# An attempt with less time than this left cannot usefully complete a DI page request.
DEFAULT_MIN_ATTEMPT_SECONDS = 2.0
# One request (connect, send, headers, body) may take this long in total, however the server
# paces its bytes; httpx's own timeouts apply to each read, so a drip would never end.
DEFAULT_REQUEST_TIMEOUT_SECONDS = 120.0
# A full 10,000-event page is ~10-30 MB of JSON; far more is a hostile or broken answer (a
# gzip bomb expands 1 MB into 1 GB), refused before it can exhaust the Lambda's memory.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
# Error bodies are only quoted (shortened to a line), so little of them is read.
_ERROR_BODY_BYTES = 64 * 1024
# One bucket of at most max_events_per_bucket events needs ~50 pages of 10,000 (500 of DI's
# default 1,000); a server that keeps handing out fresh cursors is stopped here.
DEFAULT_MAX_PAGES_PER_WINDOW = 1_000
# Pages (a ~8 MB body, then ~11 MB of parsed events: ~30 MB of peak RSS each, measured) held
# at once by all readers of a client. One keeps 4 buckets in flight near 120 MB, two near 150;
# the second only overlaps a body's transfer with another page's parse and encode, little on a
# Lambda whose fraction of a core, not the network, bounds a run.
DEFAULT_MAX_PAGES_HELD = 1
_MESSAGE_LIMIT = 300

Page = list[RawEvent]
OrgIds = str | Sequence[str] | None
_T = TypeVar("_T")


def make_base_url(region: Region | str, base_url: str | None = None) -> str:
    """The DI API base URL: ``base_url`` when given (e.g. the simulator), else the region's.

    An empty ``base_url`` is an error, not "production": it is usually a variable left unset.
    """
    if base_url is not None:
        return validate_api_url(base_url, setting="the DI base URL").rstrip("/")
    return REGION_BASE_URLS[Region(region)]


class ClientStats(Struct):
    """Counters for metrics and tests; one instance per client, cumulative."""

    requests: int = 0
    retries: int = 0
    throttles: int = 0  # HTTP 429
    server_errors: int = 0  # HTTP 5xx (and 408)
    transport_errors: int = 0  # timeouts, resets, refused connections
    truncated: int = 0  # 200 answers whose body was cut short or disagreed with its headers
    pages: int = 0
    events: int = 0
    tokens_issued: int = 0


class _PageResponse(Struct, frozen=True):
    events: Page
    result_count: int
    limit: int | None
    cursor: str | None
    request_id: str | None


class _PageAnswer(Struct, frozen=True):
    """A 200 answer to ``/events`` whose body is still on the connection."""

    answer: Unread
    result_count: int | None
    limit: int | None
    cursor: str | None
    request_id: str | None

    def says_full(self, requested: int) -> bool:
        """The headers promise a full page, so another page follows (if the body agrees)."""
        count, limit = self.result_count, self.limit
        if count is None or limit is None:
            return False
        return count >= min(limit, requested) and count > 0


class _Ahead:
    """One page request running on its own thread while the caller parses the previous page."""

    def __init__(self, call: Callable[[], _PageAnswer]) -> None:
        self._answer: _PageAnswer | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run, args=(call,), name="di-client-request-ahead", daemon=True
        )
        self._thread.start()

    def _run(self, call: Callable[[], _PageAnswer]) -> None:
        try:
            self._answer = call()
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def result(self) -> _PageAnswer:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._answer is not None
        return self._answer

    def discard(self) -> None:
        """Wait for the request to end (its own timeouts and deadline bound it), drop it."""
        self._thread.join()
        if self._answer is not None:
            self._answer.answer.close()
        self._answer = self._error = None


class _Retry(Exception):
    """Raised by a response handler: this attempt failed transiently."""

    def __init__(
        self,
        reason: str,
        *,
        retry_after: float | None = None,
        malformed: bool = False,
        immediate: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.malformed = malformed  # a 200 whose body was unusable: DIResponseError if it persists
        self.immediate = immediate  # retry at once without spending an attempt (token renewal)


class DIClient:
    """Reads DI events over HTTP; safe to drive from a prefetch thread."""

    def __init__(
        self,
        *,
        base_url: str,
        credentials: Credentials,
        token_url: str | None = None,
        page_limit: int = MAX_PAGE_LIMIT,
        services: Sequence[str] = ("all",),
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        timeout: httpx.Timeout | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        user_agent: str = f"di-archiver/{__version__}",
        prefetch: bool = False,
        request_ahead: bool = True,
        token_renew_margin: float = DEFAULT_RENEW_MARGIN_SECONDS,
        deadline: Callable[[], float] | None = None,
        min_attempt_seconds: float = DEFAULT_MIN_ATTEMPT_SECONDS,
        rate_limiter: RateLimiter | None = None,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_SECONDS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_pages_per_window: int = DEFAULT_MAX_PAGES_PER_WINDOW,
        max_pages_held: int = DEFAULT_MAX_PAGES_HELD,
    ) -> None:
        if not 1 <= page_limit <= MAX_PAGE_LIMIT:
            raise SettingsError(f"page_limit must be 1..{MAX_PAGE_LIMIT}; got {page_limit}")
        if isinstance(services, str) or not services:
            raise SettingsError("services must be a non-empty list of DI service names")
        # Checked here too, not only in settings: the credential goes wherever these point.
        self._base_url = validate_api_url(base_url, setting="the DI base URL").rstrip("/")
        self._credentials = credentials
        self._token_url = validate_api_url(
            token_url or DEFAULT_TOKEN_URL, setting="the OAuth token URL"
        )
        self._page_limit = page_limit
        self._services = list(services)
        self._retry = retry or RetryPolicy()
        self._http = http
        self._owns_http = http is None
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._sleep = sleep
        self._random = random
        self._user_agent = user_agent
        self._prefetch = prefetch
        self._request_ahead = request_ahead
        self._deadline = deadline
        self._min_attempt_seconds = min_attempt_seconds
        # Every request of this credential, from any thread, passes the same limiter.
        self._limiter = rate_limiter
        if min(request_timeout, max_body_bytes, max_pages_per_window, max_pages_held) <= 0:
            raise SettingsError(
                "request_timeout, max_body_bytes, max_pages_per_window and max_pages_held must "
                "be positive"
            )
        self._request_timeout = request_timeout
        self._max_body_bytes = max_body_bytes
        self._max_pages = max_pages_per_window
        # Shared by every window read at once (buckets in flight): see the module docstring.
        self._page_turns = threading.BoundedSemaphore(max_pages_held)
        self._http_lock = threading.Lock()
        self._tokens: TokenCache | None = None
        if isinstance(credentials, ServiceAccountCredentials):
            self._tokens = TokenCache(
                self._fetch_token, monotonic=monotonic, renew_margin=token_renew_margin
            )
        self.stats = ClientStats()

    def __repr__(self) -> str:
        return f"DIClient(base_url={self._base_url!r}, credentials={self._credentials!r})"

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def http(self) -> httpx.Client:
        """The underlying httpx client, created on first use (HTTP/1.1, explicit timeouts)."""
        with self._http_lock:
            if self._http is None:
                self._http = httpx.Client(
                    timeout=self._timeout, follow_redirects=False, transport=deadline_transport()
                )
            return self._http

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        with self._http_lock:
            if self._http is not None and self._owns_http:
                self._http.close()
                self._http = None

    def __enter__(self) -> DIClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def rate_limiter(self) -> RateLimiter | None:
        return self._limiter

    def set_deadline(self, deadline: Callable[[], float] | None) -> None:
        """Bound every later request by ``deadline()`` seconds remaining (``None``: unbounded)."""
        self._deadline = deadline

    # -- public API ------------------------------------------------------------------------

    def iter_pages(self, org_id: OrgIds, start_ns: int, end_ns: int) -> Iterator[Page]:
        """Pages of events for ``[start_ns, end_ns]`` in ascending order, streamed; each event
        keeps the exact bytes DI sent (:mod:`di_archiver.raw_events`).

        The API filters at millisecond resolution and its ``end_time`` inclusivity is unknown:
        callers enforce their exact window on the parsed timestamps.
        """
        orgs = self._org_ids(org_id)
        body = self._query_body(start_ns, end_ns)
        body |= {"sort": "ASC", "limit": self._page_limit}
        pages = self._pages(orgs, body)
        # The engine already runs its page stream ahead; this is for other callers.
        return run_ahead(pages, name="di-client-prefetch") if self._prefetch else pages

    def iter_events(self, org_id: OrgIds, start_ns: int, end_ns: int) -> Iterator[RawEvent]:
        """Events of :meth:`iter_pages`, one at a time."""
        pages = self.iter_pages(org_id, start_ns, end_ns)
        return _flatten(pages)

    def count(self, org_id: OrgIds, start_ns: int, end_ns: int) -> int:
        """DI's ``/events/count`` for the same query as :meth:`iter_pages`."""
        orgs = self._org_ids(org_id)
        body = self._query_body(start_ns, end_ns)
        return self._call_api("DI /events/count", COUNT_PATH, body, orgs, self._parse_count)

    # -- paging ----------------------------------------------------------------------------

    def _pages(self, orgs: tuple[str, ...], body: dict[str, Any]) -> Iterator[Page]:
        seen_cursors: set[str] = set()
        request = dict(body)
        requested = int(body["limit"])
        pages = 0
        ahead: _Ahead | None = None
        unread: Unread | None = None
        holds_turn = False
        try:
            answer = self._fetch_page(request, orgs)
            while True:
                unread = answer.answer
                pages += 1
                following: dict[str, Any] | None = None
                if self._request_ahead and answer.says_full(requested) and pages < self._max_pages:
                    # Headers arrive before the body and carry the cursor: ask for the next
                    # page now, then receive and parse this one while DI answers (requests
                    # spaced by DI's latency, not by this body's transfer or parse).
                    cursor = self._next_cursor(answer.cursor, answer.request_id, seen_cursors)
                    following = body | {"search_after": cursor}
                    ahead = _Ahead(functools.partial(self._fetch_page, following, orgs))
                asked_after = answer.cursor
                del answer
                # The body comes into memory only with a turn; until then it waits on the
                # connection while other windows' pages are parsed and encoded.
                self._page_turns.acquire()
                holds_turn = True
                received, unread = unread, None
                page = self._call_api(
                    "DI /events",
                    EVENTS_PATH,
                    request,
                    orgs,
                    self._parse_page,
                    received=received,
                )
                del received
                if following is not None and page.cursor != asked_after:
                    # The page was fetched again and ends elsewhere now: what was asked ahead
                    # may start past events of this window, so it is asked again.
                    if ahead is not None:
                        ahead.discard()
                        ahead = None
                    seen_cursors.discard(_cursor_key(following["search_after"]))
                    following = None
                self.stats.pages += 1
                if not page.events:
                    return
                # The documented rule, with X-Limit as the effective limit (DI may cap ours).
                # An X-Limit above what we asked for is a broken promise: trusting it would end
                # paging at the first full page, so the smaller of the two decides. Without
                # X-Limit we cannot tell a last page, so we read on to an empty one.
                limit = page.limit
                if limit is not None and limit > requested:
                    logger.warning(
                        "DI answered X-Limit %d to a request for %d events per page%s; reading "
                        "on while pages hold %d",
                        limit,
                        requested,
                        _rid(page.request_id),
                        requested,
                    )
                    limit = requested
                if limit is not None and page.result_count < limit:
                    self.stats.events += len(page.events)
                    yield page.events
                    return  # the turn is given back on the way out
                if pages >= self._max_pages:
                    raise DIResponseError(
                        f"DI answered {pages} full pages for one window ({body['start_time']} "
                        f"to {body['end_time']}) without reaching its end; stopped rather than "
                        "page forever (a window this large needs a lower "
                        "DI_ARCHIVER_BUCKET_MINUTES)",
                        status=200,
                    )
                if following is None:
                    cursor = self._next_cursor(page.cursor, page.request_id, seen_cursors)
                    following = body | {"search_after": cursor}
                # Memory is bounded by the pages alive at once: from here on only `events`
                # refers to this page, and it is dropped before the next page is parsed.
                events = page.events
                del page
                self.stats.events += len(events)
                yield events
                del events
                # Asked for the next page, the consumer is done with this one.
                holds_turn = False
                self._page_turns.release()
                request = following
                if ahead is not None:
                    answer, ahead = ahead.result(), None
                else:
                    answer = self._fetch_page(request, orgs)
        finally:
            if holds_turn:
                self._page_turns.release()
            if unread is not None:
                unread.close()
            if ahead is not None:
                ahead.discard()

    def _fetch_page(self, request: dict[str, Any], orgs: tuple[str, ...]) -> _PageAnswer:
        """The answer's headers; its body stays on the connection for the page's reader."""
        return self._call_api(
            "DI /events", EVENTS_PATH, request, orgs, self._read_page, leave_body=True
        )

    @staticmethod
    def _next_cursor(text: str | None, request_id: str | None, seen: set[str]) -> list[Any]:
        if text is None:
            raise DIResponseError(
                f"a full DI page came without X-Search_after; cannot read on{_rid(request_id)}",
                status=200,
                request_id=request_id,
            )
        try:
            cursor = json.loads(text)
        except ValueError:
            cursor = None
        if not isinstance(cursor, list) or not cursor:
            raise DIResponseError(
                f"X-Search_after is not a JSON array: {server_text(text, 100)!r}{_rid(request_id)}",
                status=200,
                request_id=request_id,
            )
        key = _cursor_key(cursor)
        if key in seen:
            raise DIResponseError(
                f"DI returned the cursor {key} again with a full page: paging would never "
                f"end{_rid(request_id)}",
                status=200,
                request_id=request_id,
            )
        seen.add(key)
        return cursor

    def _read_page(self, response: Answer | Unread) -> _PageAnswer:
        """A 200 answer's paging headers; its body is still unread."""
        assert isinstance(response, Unread), "asked with leave_body, a 200 is left unread"
        return _PageAnswer(
            answer=response,
            result_count=_int_header(response, "x-result-count"),
            limit=_int_header(response, "x-limit"),
            cursor=response.headers.get("x-search_after"),
            request_id=response.request_id,
        )

    def _parse_page(self, response: Answer | Unread) -> _PageResponse:
        assert isinstance(response, Answer), "asked without leave_body, a 200 is read"
        request_id = response.request_id
        body = response.body
        result_count = _int_header(response, "x-result-count")
        try:
            events = parse_page(body)
        except PageFormatError as exc:
            if exc.malformed:
                # A cut connection can still look like a complete 200; try again first.
                self.stats.truncated += 1
                raise _Retry(f"a 200 body that is {exc}", malformed=True) from None
            raise DIResponseError(
                f"DI /events answered 200 with a body that is not a JSON array of objects "
                f"({exc}){_rid(request_id)}",
                status=200,
                request_id=request_id,
            ) from None
        except RepeatedKeyError as exc:
            raise DIResponseError(
                f"DI returned {exc}: readers disagree on which value counts, so its place in "
                "the archive would be a guess; the run stops rather than archive it "
                f"ambiguously{_rid(request_id)}",
                status=200,
                request_id=request_id,
            ) from None
        if result_count is not None and result_count != len(events):
            # Headers arrive before the body: a mismatch means the body was cut or mangled.
            self.stats.truncated += 1
            raise _Retry(
                f"X-Result-Count {result_count} but {len(events)} events in the body",
                malformed=True,
            )
        return _PageResponse(
            events=events,
            result_count=len(events) if result_count is None else result_count,
            limit=_int_header(response, "x-limit"),
            cursor=response.headers.get("x-search_after"),
            request_id=request_id,
        )

    def _parse_count(self, response: Answer | Unread) -> int:
        assert isinstance(response, Answer), "asked without leave_body, a 200 is read"
        data = self._json_body(response)
        value = data.get("count") if isinstance(data, dict) else None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            request_id = response.request_id
            raise DIResponseError(
                f'DI /events/count answered without a valid "count"{_rid(request_id)}',
                status=200,
                request_id=request_id,
            )
        return value

    def _json_body(self, response: Answer) -> Any:
        try:
            return json.loads(response.body, parse_constant=_refuse_non_json_constant)
        except ValueError:
            # A cut connection can still look like a complete 200; try again before giving up.
            self.stats.truncated += 1
            raise _Retry("a 200 body that is not valid JSON", malformed=True) from None

    # -- requests, retries and errors ------------------------------------------------------

    def _call_api(
        self,
        what: str,
        path: str,
        body: dict[str, Any],
        orgs: tuple[str, ...],
        parse: Callable[[Answer | Unread], _T],
        *,
        received: Unread | None = None,
        leave_body: bool = False,
    ) -> _T:
        """``parse`` DI's answer to ``body``, retrying what is transient.

        ``received``: an answer to this request already in hand, headers in and body unread,
        judged as the first attempt (a damaged body then costs an attempt and a back-off like
        any other). ``leave_body``: ``parse`` gets a 200 :class:`Unread` (and owns it once it
        returns); other answers are always read.
        """
        url = self._base_url + path
        renewed = False
        sent_token: list[str | None] = [None]

        def send(timeout: httpx.Timeout) -> httpx.Response:
            headers = self._headers(orgs, sent_token)
            request = self.http.build_request(
                "POST", url, json=body, headers=headers, timeout=timeout
            )
            return self.http.send(request, stream=True)

        def handle(response: Answer | Unread) -> _T:
            nonlocal renewed
            status = response.status
            if status == 200:
                return parse(response)
            assert isinstance(response, Answer), "only a 200 is left unread"
            if status in RETRYABLE_STATUSES:
                raise self._retryable(response)
            if status == 401 and self._tokens is not None and not renewed:
                # The token may have been revoked or expired early: renew once, then judge.
                renewed = True
                self._tokens.invalidate(sent_token[0])
                raise _Retry("HTTP 401 with a cached token; renewing it", immediate=True)
            raise self._status_error(what, response, orgs)

        return self._with_retries(what, send, handle, received=received, leave_body=leave_body)

    def _headers(
        self, orgs: tuple[str, ...], sent_token: list[str | None]
    ) -> list[tuple[str, str]]:
        headers = [
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            # Only what the bounded reader decodes itself (httpx would add br/zstd if present).
            ("Accept-Encoding", "gzip"),
            ("User-Agent", self._user_agent),
        ]
        if isinstance(self._credentials, ApiKeyCredentials):
            headers.append(("x-api-key", self._credentials.api_key))
        else:
            assert self._tokens is not None
            token = self._tokens.get()
            sent_token[0] = token
            headers.append(("Authorization", f"Bearer {token}"))
        # DI takes one x-org-id header per organisation (MSP administrators query several).
        headers.extend(("x-org-id", org) for org in orgs)
        return headers

    def _retryable(self, response: Answer) -> _Retry:
        status = response.status
        if status == 429:
            self.stats.throttles += 1
        else:
            self.stats.server_errors += 1
        return _Retry(
            f"HTTP {status}", retry_after=parse_retry_after(response.headers.get("retry-after"))
        )

    def _with_retries(
        self,
        what: str,
        send: Callable[[httpx.Timeout], httpx.Response],
        handle: Callable[[Answer | Unread], _T],
        *,
        received: Unread | None = None,
        leave_body: bool = False,
    ) -> _T:
        attempts = 0
        last_reason = "no attempt made"
        last_status: int | None = None
        request_id: str | None = None
        malformed = False

        def out_of_time(remaining: float) -> DITransientError:
            return DITransientError(
                f"{what}: out of time ({max(remaining, 0.0):.1f} s of the run's budget left) "
                f"after {attempts} attempt(s); last: {last_reason}{_rid(request_id)}; the next "
                "run continues from the checkpoint",
                status=last_status,
                request_id=request_id,
            )

        while True:
            remaining = self._remaining()
            if remaining is not None and remaining < self._min_attempt_seconds:
                if received is not None:
                    received.close()
                raise out_of_time(remaining) from None
            attempts += 1
            retry_after: float | None = None
            # An answer already in hand was sent (and metered) once: judge it, send nothing.
            in_hand, received = received, None
            limiter = self._limiter if in_hand is None else None
            if limiter is not None:
                max_wait = None if remaining is None else remaining - self._min_attempt_seconds
                if not limiter.acquire(max_wait):
                    raise out_of_time(self._remaining() or 0.0) from None
                # The wait for a turn used some of the budget this attempt may spend.
                remaining = self._remaining()
            budget = (
                self._request_timeout
                if remaining is None
                else min(remaining, self._request_timeout)
            )
            timeout = self._attempt_timeout(budget)
            self.stats.requests += in_hand is None
            if in_hand is not None:
                request_id = in_hand.request_id or request_id
            try:
                try:
                    response = (
                        in_hand.read(limit=self._max_body_bytes)
                        if in_hand is not None
                        else self._exchange(send, timeout, budget, leave_body=leave_body)
                    )
                finally:
                    if limiter is not None:
                        limiter.release()
            except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.InvalidURL) as exc:
                # ``from None``: LocalProtocolError quotes an illegal header value, which may be
                # the credential itself; the type name is enough to diagnose.
                raise DIApiError(f"{what} cannot be sent: {type(exc).__name__}") from None
            except BodyTooLarge as exc:
                # Deterministic (a bomb or a broken server): asking again cannot help.
                raise DIResponseError(
                    f"{what} answered a body {exc}; refused before it could exhaust memory "
                    f"(a full page of 10,000 events is far smaller){_rid(request_id)}",
                    status=200,
                    request_id=request_id,
                ) from None
            except RequestDeadlineExceeded:
                self.stats.transport_errors += 1
                last_reason = f"the request took longer than {budget:.1f} s in total"
                last_status, malformed = None, False
            except BodyUnreadable as exc:
                self.stats.truncated += 1
                last_reason, last_status, malformed = str(exc), 200, True
            except (httpx.TransportError, httpx.DecodingError) as exc:
                self.stats.transport_errors += 1
                if isinstance(exc, httpx.RemoteProtocolError | httpx.DecodingError):
                    self.stats.truncated += 1
                last_reason, last_status, malformed = _describe(exc), None, False
                if isinstance(exc, httpx.TimeoutException):
                    last_reason = f"{last_reason}; the request's limit was {budget:.1f} s"
            else:
                request_id = response.request_id or request_id
                if limiter is not None:
                    if response.status == 429:
                        hint = parse_retry_after(response.headers.get("retry-after"))
                        limiter.throttled(
                            None if hint is None else min(hint, self._retry.max_delay)
                        )
                    else:
                        limiter.succeeded()
                try:
                    return handle(response)
                except BaseException as failure:
                    if isinstance(response, Unread):
                        response.close()  # an answer judged unusable is never read
                    if not isinstance(failure, _Retry):
                        raise
                    signal = failure
                    last_reason, last_status = signal.reason, response.status
                    malformed, retry_after = signal.malformed, signal.retry_after
                    if signal.immediate:
                        attempts -= 1
                        continue
            if attempts >= self._retry.max_attempts:
                break
            delay = self._retry.delay(attempts, retry_after, self._random)
            remaining = self._remaining()
            if remaining is not None and remaining - delay < self._min_attempt_seconds:
                # Sleeping would leave no time for the attempt it waits for.
                raise out_of_time(remaining) from None
            self.stats.retries += 1
            logger.warning(
                "%s attempt %d/%d failed (%s)%s; retrying in %.3f s",
                what,
                attempts,
                self._retry.max_attempts,
                last_reason,
                _rid(request_id),
                delay,
            )
            self._sleep(delay)
        error = DIResponseError if malformed else DITransientError
        raise error(
            f"{what} failed after {attempts} attempts; last: {last_reason}{_rid(request_id)}",
            status=last_status,
            request_id=request_id,
        ) from None  # the library's exception may quote what it was sent; the text names it

    def _exchange(
        self,
        send: Callable[[httpx.Timeout], httpx.Response],
        timeout: httpx.Timeout,
        budget: float,
        *,
        leave_body: bool = False,
    ) -> Answer | Unread:
        """One request and its whole body (a 200's left unread with ``leave_body``), ended by
        ``budget`` seconds however bytes arrive."""
        # Real time, not the injected clock: sockets wait in real time.
        expires = time.monotonic() + budget
        with request_deadline(expires):
            response = send(timeout)
            ok = response.status_code == 200
            if ok and leave_body:
                return Unread(response, expires)
            return read_body(
                response,
                limit=self._max_body_bytes if ok else _ERROR_BODY_BYTES,
                expired=lambda: time.monotonic() >= expires,
                truncate=not ok,
            )

    def _remaining(self) -> float | None:
        deadline = self._deadline
        return None if deadline is None else deadline()

    def _attempt_timeout(self, remaining: float | None) -> httpx.Timeout:
        """The client's timeouts, each cut to the time left before the deadline."""
        base = self.http.timeout
        if remaining is None:
            return base

        def cut(value: float | None) -> float:
            return remaining if value is None else min(value, remaining)

        return httpx.Timeout(
            connect=cut(base.connect),
            read=cut(base.read),
            write=cut(base.write),
            pool=cut(base.pool),
        )

    def _status_error(self, what: str, response: Answer, orgs: tuple[str, ...]) -> DIApiError:
        status = response.status
        request_id = response.request_id
        rid = _rid(request_id)
        source = f"secret {self._credentials.source}" if self._credentials.source else "the secret"
        org_text = ", ".join(orgs) if orgs else "the key's organisation"
        message = self._api_message(response)
        if status == 400:
            return DIBadRequestError(
                f"{what} rejected the query (HTTP 400): {message}{rid}",
                status=status,
                request_id=request_id,
            )
        if status == 401:
            if isinstance(self._credentials, ApiKeyCredentials):
                text = (
                    f"the API key was rejected (HTTP 401): check that {source} holds a current "
                    f"JumpCloud administrator API key, or rotate it{rid}"
                )
            else:
                text = (
                    f"the service-account token was rejected (HTTP 401) even after renewal: "
                    f"check that the service account in {source} is active and allowed to read "
                    f"Directory Insights{rid}"
                )
            return DIAuthenticationError(text, status=status, request_id=request_id)
        if status == 402:
            return DIPaymentRequiredError(
                f"Directory Insights is not enabled for org {org_text} (HTTP 402): enable it "
                f"for the organisation (or its subscription), or remove the org from the "
                f"archiver's org_ids{rid}",
                status=status,
                request_id=request_id,
            )
        if status == 403:
            return DIForbiddenError(
                f"the key's administrator lacks an API-capable role (HTTP 403) for org "
                f"{org_text}: use the credential of an administrator whose role may call the "
                f"API (Command Runner roles cannot){rid}",
                status=status,
                request_id=request_id,
            )
        return DIApiError(
            f"{what} answered HTTP {status}: {message}{rid}", status=status, request_id=request_id
        )

    def _api_message(self, response: Answer) -> str:
        """The API's ``message`` (or OAuth ``error``): one printable line, scrubbed of every
        credential in every spelling *before* it is shortened."""
        text = ""
        try:
            data = json.loads(response.body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            parts = [data.get(k) for k in ("message", "error", "error_description")]
            text = "; ".join(str(p) for p in parts if isinstance(p, str) and p)
        if not text:
            text = response.body.decode("utf-8", errors="replace")
        return server_text(text, _MESSAGE_LIMIT) or "(no message)"

    # -- service-account tokens ------------------------------------------------------------

    def _fetch_token(self) -> AccessToken:
        creds = self._credentials
        assert isinstance(creds, ServiceAccountCredentials)
        source = f"secret {creds.source}" if creds.source else "the secret"

        def send(timeout: httpx.Timeout) -> httpx.Response:
            request = self.http.build_request(
                "POST",
                self._token_url,
                data={"grant_type": "client_credentials", "scope": "api"},
                headers={
                    "Accept": "application/json",
                    "Accept-Encoding": "gzip",
                    "User-Agent": self._user_agent,
                },
                timeout=timeout,
            )
            auth = httpx.BasicAuth(creds.client_id, creds.client_secret)
            return self.http.send(request, auth=auth, stream=True)

        def handle(response: Answer | Unread) -> AccessToken:
            assert isinstance(response, Answer), "asked without leave_body, a 200 is read"
            status = response.status
            if status in RETRYABLE_STATUSES:
                raise self._retryable(response)
            if status in (400, 401, 403):
                request_id = response.request_id
                raise DIAuthenticationError(
                    f"service-account credentials were rejected by the token endpoint "
                    f"(HTTP {status}: {self._api_message(response)}): check client_id and "
                    f"client_secret in {source}, or issue a new client secret{_rid(request_id)}",
                    status=status,
                    request_id=request_id,
                )
            if status != 200:
                raise self._status_error("the OAuth token endpoint", response, ())
            data = self._json_body(response)
            token = data.get("access_token") if isinstance(data, dict) else None
            if not isinstance(token, str) or not token:
                raise DIResponseError(
                    "the OAuth token endpoint answered 200 without an access_token", status=200
                )
            if not header_safe(token):
                # httpx would quote the token in its error; say what is wrong, not the value.
                raise DIResponseError(
                    "the OAuth token endpoint answered an access_token that is not printable "
                    "ASCII, so it cannot be sent as a header",
                    status=200,
                )
            expires_in = data.get("expires_in")
            ttl = (
                float(expires_in)
                if isinstance(expires_in, int | float) and not isinstance(expires_in, bool)
                else None
            )
            return AccessToken(value=token, expires_in=ttl)

        token = self._with_retries("OAuth token request", send, handle)
        self.stats.tokens_issued += 1
        return token

    # -- helpers ---------------------------------------------------------------------------

    def _org_ids(self, org_id: OrgIds) -> tuple[str, ...]:
        if org_id is None:
            orgs: tuple[str, ...] = ()
        elif isinstance(org_id, str):
            orgs = (org_id,)
        else:
            orgs = tuple(org_id)
        if any(not isinstance(org, str) or not org for org in orgs):
            raise SettingsError("org ids must be non-empty strings")
        if not orgs and isinstance(self._credentials, ServiceAccountCredentials):
            raise SettingsError(
                "service-account credentials need an organisation id: set org_ids "
                "(DI_ARCHIVER_ORG_IDS)"
            )
        return orgs

    def _query_body(self, start_ns: int, end_ns: int) -> dict[str, Any]:
        if start_ns > end_ns:
            raise DIBadRequestError(
                f"start ({format_timestamp_ns(start_ns)}) is after end "
                f"({format_timestamp_ns(end_ns)})"
            )
        return {
            "service": list(self._services),
            "start_time": format_timestamp_ns(start_ns),
            "end_time": format_timestamp_ns(end_ns),
        }


def _int_header(response: Answer | Unread, name: str) -> int | None:
    raw = response.headers.get(name)  # httpx matches names case-insensitively
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        request_id = response.request_id
        raise DIResponseError(
            f"DI header {name} is not a count: {server_text(raw, 40)!r}{_rid(request_id)}",
            status=response.status,
            request_id=request_id,
        )
    return value


def _cursor_key(cursor: list[Any]) -> str:
    return json.dumps(cursor, sort_keys=True, separators=(",", ":"))


def _rid(request_id: str | None) -> str:
    return f" (request id {server_text(request_id, 80)})" if request_id else ""


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed mid-response (RemoteProtocolError)"
    # The library's text tells a refused connection from a DNS or TLS failure; scrubbed, since
    # the exception itself is not chained.
    detail = server_text(str(exc), 120)
    return f"transport error ({type(exc).__name__}{': ' + detail if detail else ''})"


def _flatten(pages: Iterator[Page]) -> Iterator[RawEvent]:
    try:
        for page in pages:
            yield from page
    finally:
        close = getattr(pages, "close", None)
        if close is not None:
            close()


def _refuse_non_json_constant(name: str) -> Any:
    # Python's parser accepts NaN/Infinity, which JSON does not; archiving them would need a
    # lossy rewrite (orjson writes null), so such a body is treated as malformed.
    raise ValueError(f"{name} is not a JSON value")


if TYPE_CHECKING:

    def _implements_event_source(client: DIClient) -> EventSource:
        # mypy proves here that DIClient satisfies the domain's EventSource protocol.
        return client
