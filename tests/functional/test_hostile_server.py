"""Findings 3 and 2 over a real socket: a drip ends by the request deadline, a bomb is refused,
and a credential echoed by the server in any spelling is printed nowhere."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote

import pytest

from di_archiver.adapters.di_auth import ApiKeyCredentials, ServiceAccountCredentials
from di_archiver.adapters.di_client import DIClient
from di_archiver.adapters.retry import RetryPolicy
from di_archiver.errors import ArchiverError, DIResponseError, DITransientError
from tests.unit.hostile.bombs import gzip_bomb

from .hostile_server import Seen, drip, hostile_server, reply

ORG = "5f0c1a2b3c4d5e6f7a8b9c0d"
START_NS = 1_700_000_000 * 1_000_000_000
END_NS = START_NS + 3_600 * 1_000_000_000
KEY = "0123456789abcdef0123456789abcdef01234567"


def client(url: str, **kwargs: object) -> DIClient:
    return DIClient(
        base_url=url,
        credentials=ApiKeyCredentials(api_key=KEY, source="di/jumpcloud"),
        retry=RetryPolicy(max_attempts=1, base_delay=0.0),
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_body_dripping_one_byte_at_a_time_ends_within_the_request_deadline() -> None:
    # Given a server that sends headers, then one body byte every 0.5 s (each read succeeds)
    stop = threading.Event()
    body = json.dumps([{"id": "x", "timestamp": "2023-11-14T22:13:21Z"}]).encode()

    def script(seen: Seen, handler: BaseHTTPRequestHandler) -> None:
        drip(handler, body, interval=0.5, stop=stop, headers={"X-Limit": "10"})

    with hostile_server(script) as server:
        di = client(server.url, request_timeout=2.0)
        started = time.monotonic()
        # When a page is read with a 2 s request deadline
        with pytest.raises(DITransientError, match=r"longer than 2\.0 s in total|limit was 2\.0"):
            list(di.iter_pages(ORG, START_NS, END_NS))
        elapsed = time.monotonic() - started
        stop.set()
        di.close()
    # Then the request ended by its deadline (not after len(body) * 0.5 s = 30 s)
    assert elapsed < 2.0 + 0.5


def test_headers_that_drip_end_within_the_request_deadline_too() -> None:
    stop = threading.Event()

    def script(seen: Seen, handler: BaseHTTPRequestHandler) -> None:
        for byte in b"HTTP/1.1 200 OK\r\nX-Limit: 10\r\n":
            if stop.wait(0.4):
                return
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()

    with hostile_server(script) as server:
        di = client(server.url, request_timeout=1.5)
        started = time.monotonic()
        with pytest.raises(DITransientError):
            list(di.iter_pages(ORG, START_NS, END_NS))
        elapsed = time.monotonic() - started
        stop.set()
        di.close()
    assert elapsed < 1.5 + 0.5


def test_a_gzip_bomb_over_the_wire_is_refused_without_being_expanded() -> None:
    bomb = gzip_bomb(1024)

    def script(seen: Seen, handler: BaseHTTPRequestHandler) -> None:
        reply(handler, 200, bomb, {"Content-Encoding": "gzip", "X-Limit": "10"})

    with hostile_server(script) as server:
        di = client(server.url)
        with pytest.raises(DIResponseError, match="larger than"):
            list(di.iter_pages(ORG, START_NS, END_NS))
        di.close()


def spellings(secret: str, client_id: str | None = None) -> list[str]:
    """Every encoding of ``secret`` the issue names, as a hostile server would echo it."""
    forms = [
        secret,
        json.dumps(secret)[1:-1].replace("/", "\\/"),
        "".join(f"\\u{ord(c):04x}" for c in secret),
        quote(secret, safe=""),
        base64.b64encode(secret.encode()).decode(),
    ]
    if client_id is not None:
        forms.append(base64.b64encode(f"{client_id}:{secret}".encode()).decode())
    return forms


def echo_script(forms: list[str]) -> object:
    def script(seen: Seen, handler: BaseHTTPRequestHandler) -> None:
        # 300 characters of padding put a literal key across the old cut at 300 characters.
        message = "x" * 280 + " " + " | ".join(forms) + " \x1b[31mred\x1b[0m \x1b]0;title\x07"
        body = json.dumps({"message": message}).encode()
        reply(handler, 400, body, {"Content-Type": "application/json"})

    return script


@pytest.mark.parametrize("kind", ["api_key", "service_account"])
def test_an_echoed_credential_is_scrubbed_in_every_spelling_and_escapes_are_stripped(
    kind: str,
) -> None:
    # Given a server that answers 400 echoing the credential in every spelling, after padding
    # that puts the literal value across a 300-character cut, plus terminal escape sequences
    if kind == "api_key":
        secret, cid = "fedcba9876543210fedcba9876543210fedcba98", None
        credentials: object = ApiKeyCredentials(api_key=secret)
    else:
        secret, cid = "S3cr3t/with+odd=chars_0123456789", "svc-client-0123"
        credentials = ServiceAccountCredentials(client_id=cid, client_secret=secret)
    forms = spellings(secret, cid)
    with hostile_server(echo_script(forms)) as server:  # type: ignore[arg-type]
        di = DIClient(
            base_url=server.url,
            token_url=server.url + "/oauth2/token",
            credentials=credentials,  # type: ignore[arg-type]
            retry=RetryPolicy(max_attempts=1, base_delay=0.0),
        )
        # When a request is rejected
        with pytest.raises(ArchiverError) as caught:
            list(di.iter_pages(ORG, START_NS, END_NS))
        di.close()
    text = str(caught.value)
    # Then no spelling of the credential (nor a long piece of it) is in the message
    for form in forms:
        assert form not in text
        assert form[:24] not in text
    # And no control character or escape sequence reaches the terminal
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "***" in text
