"""Reading an HTTP answer from a server we do not trust: bounded in time and in size.

httpx applies its timeouts to each socket operation, so a server that drips one byte every few
seconds never times out, and it decompresses ``Content-Encoding: gzip`` without any limit, so a
1 MB body can expand to gigabytes. The DI client therefore

* sends every request through :func:`deadline_transport`, whose sockets cut each read, write and
  connect to the time left before the *request's* deadline (set with :func:`request_deadline`),
  so the whole exchange, headers and body, ends by that deadline however the bytes are paced;
* reads the body with :func:`read_body`, which decompresses it itself, in bounded steps, and
  stops as soon as the decompressed size passes the caller's cap.

What a parser receives is a :class:`Answer`: status, headers and the complete decoded body as
``bytes``. Parsers never touch the socket. An :class:`Unread` answer has its headers in and its
body still on the connection: the body is read later (by any thread), within the same request
deadline, so a caller can act on the headers first.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpcore
import httpx
from msgspec import Struct

# How much decompressed output one zlib call may produce: small steps keep the overshoot past
# the cap (and the memory of one step) bounded whatever the compression ratio.
_INFLATE_STEP = 256 * 1024

_local = threading.local()


class BodyTooLarge(Exception):
    """The body passed the size cap once decompressed; reading stopped there."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"larger than {limit} bytes once decompressed")
        self.limit = limit


class BodyUnreadable(Exception):
    """The body cannot be decoded (unknown Content-Encoding, corrupt or cut compressed data)."""


class RequestDeadlineExceeded(Exception):
    """The request (connect, send, headers and body together) outlived its deadline."""


class Answer(Struct, frozen=True):
    """An HTTP answer read completely and within bounds."""

    status: int
    headers: httpx.Headers
    body: bytes
    truncated: bool = False  # only for error bodies: read up to the cap and the rest ignored

    @property
    def request_id(self) -> str | None:
        value: str | None = self.headers.get("x-request-id")
        return value


class Unread:
    """A 200 answer whose headers are in and whose body still waits on its connection."""

    __slots__ = ("_response", "expires")

    def __init__(self, response: httpx.Response, expires: float) -> None:
        self._response = response
        self.expires = expires  # the request's monotonic deadline, which reading still obeys

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> httpx.Headers:
        return self._response.headers

    @property
    def request_id(self) -> str | None:
        value: str | None = self._response.headers.get("x-request-id")
        return value

    def read(self, *, limit: int) -> Answer:
        """The whole body, bounded like :func:`read_body`, by the request's own deadline."""
        expires = self.expires
        with request_deadline(expires):
            return read_body(
                self._response, limit=limit, expired=lambda: time.monotonic() >= expires
            )

    def close(self) -> None:
        """Drop the answer unread (its connection is closed, not reused)."""
        self._response.close()


@contextlib.contextmanager
def request_deadline(at: float) -> Iterator[None]:
    """Bound every socket operation of this thread by the monotonic time ``at``."""
    previous = getattr(_local, "at", None)
    _local.at = at
    try:
        yield
    finally:
        _local.at = previous


def _cut(timeout: float | None, error: type[Exception]) -> float | None:
    at: float | None = getattr(_local, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline has passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cut(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cut(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        cut = _cut(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, cut))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        cut = _cut(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(
            self._inner.connect_tcp(host, port, cut, local_address, socket_options)
        )

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        cut = _cut(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, cut, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def deadline_transport() -> httpx.HTTPTransport:
    """An httpx transport whose sockets obey :func:`request_deadline` (HTTP/1.1, TLS verified).

    httpx does not take a network backend, so the connection pool is rebuilt with one; the
    functional tests prove the deadline over a real socket, so a change in httpx fails there.
    """
    # One context for both pools: loading the CA bundle costs about 30 ms of CPU, and the
    # transport would otherwise load it for the pool that is replaced as well.
    ssl_context = httpx.create_ssl_context()
    transport = httpx.HTTPTransport(verify=ssl_context)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=ssl_context,
        network_backend=_DeadlineBackend(),
    )
    return transport


def read_body(
    response: httpx.Response,
    *,
    limit: int,
    expired: Callable[[], bool],
    truncate: bool = False,
) -> Answer:
    """Read ``response`` (sent with ``stream=True``) into an :class:`Answer`, within bounds.

    ``limit`` caps the decompressed size: past it, :class:`BodyTooLarge` (or, with
    ``truncate``, the first ``limit`` bytes and ``truncated=True``, for error bodies we only
    quote). ``expired`` is checked after every chunk: :class:`RequestDeadlineExceeded`.
    """
    headers = response.headers
    declared = _content_length(headers)
    encoding = headers.get("content-encoding", "").strip().lower()
    if not truncate and declared is not None and declared > limit and encoding in ("", "identity"):
        response.close()
        raise BodyTooLarge(limit)
    try:
        inflater = _Inflater(encoding)
        parts: list[bytes] = []
        size = 0
        for raw in _raw_chunks(response):
            if expired():
                raise RequestDeadlineExceeded("the request's total deadline has passed")
            for piece in inflater.feed(raw, limit - size + 1):
                size += len(piece)
                if size > limit:
                    if not truncate:
                        raise BodyTooLarge(limit)
                    parts.append(piece[: len(piece) - (size - limit)])
                    return Answer(response.status_code, headers, b"".join(parts), True)
                parts.append(piece)
        if expired():
            raise RequestDeadlineExceeded("the request's total deadline has passed")
        inflater.finish()
    finally:
        response.close()
    return Answer(response.status_code, headers, b"".join(parts))


def _raw_chunks(response: httpx.Response) -> Iterator[bytes]:
    if response.is_stream_consumed and isinstance(response.stream, httpx.SyncByteStream):
        # A response built in memory (tests, mock transports) was decoded when created; its
        # stream still holds the bytes as sent.
        yield from response.stream
        return
    # As the socket gives them (httpcore reads at most 64 KB at a time): asking for a chunk
    # size makes httpx copy every byte once more through a re-chunking buffer.
    yield from response.iter_raw()


def _content_length(headers: httpx.Headers) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None


class _Inflater:
    """Decodes one Content-Encoding in bounded steps: :meth:`feed` a chunk, :meth:`finish` at
    the end; each yields output pieces.

    ``room`` is how much more output the caller can take; each zlib call produces at most
    ``min(room, _INFLATE_STEP)`` bytes, so a bomb never expands past the cap in memory.
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        if encoding in ("", "identity"):
            self._wbits: int | None = None
        elif encoding in ("gzip", "x-gzip"):
            self._wbits = 16 + zlib.MAX_WBITS
        elif encoding == "deflate":
            self._wbits = zlib.MAX_WBITS  # RFC 9110's "deflate" is the zlib format
        else:
            raise BodyUnreadable(f"unsupported Content-Encoding {encoding[:40]!r}")
        self._zlib = None if self._wbits is None else zlib.decompressobj(self._wbits)

    def feed(self, data: bytes, room: int) -> Iterator[bytes]:
        if self._zlib is None or self._wbits is None:
            if data:
                yield data
            return
        while True:
            step = max(1, min(room, _INFLATE_STEP))
            try:
                out = self._zlib.decompress(data, step)
            except zlib.error as exc:
                raise BodyUnreadable(f"corrupt {self._encoding} body: {exc}") from None
            if out:
                room -= len(out)
                yield out
            if self._zlib.eof:
                data = self._zlib.unused_data
                if not data:
                    return
                if self._encoding == "deflate":
                    raise BodyUnreadable("bytes after the end of the deflate body")
                # gzip allows concatenated members.
                self._zlib = zlib.decompressobj(self._wbits)
                continue
            data = self._zlib.unconsumed_tail
            if not data and len(out) < step:
                return

    def finish(self) -> None:
        if self._zlib is not None and not self._zlib.eof:
            raise BodyUnreadable(f"the {self._encoding} body ends inside its compressed stream")
