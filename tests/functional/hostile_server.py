"""A small hostile HTTP server on 127.0.0.1 for tests: each request is answered by a script.

The script gets the request (method, path, headers, parsed JSON body) and the raw handler, so it
can answer anything a broken or malicious server could: bombs, drips, lies in headers, echoes
of the credential. Only loopback is ever bound.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Script = Callable[[Seen, BaseHTTPRequestHandler], None]


@dataclass
class Hostile:
    url: str
    requests: list[Seen] = field(default_factory=list)


def reply(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> None:
    """A complete answer with Content-Length."""
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
    handler.wfile.flush()


def drip(
    handler: BaseHTTPRequestHandler,
    body: bytes,
    *,
    interval: float,
    headers: dict[str, str] | None = None,
    stop: threading.Event,
) -> None:
    """Headers at once, then the body one byte every ``interval`` seconds (until ``stop``)."""
    handler.send_response(200)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.flush()
    for byte in body:
        if stop.wait(interval):
            return
        try:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
        except OSError:
            return


@contextmanager
def hostile_server(script: Script) -> Iterator[Hostile]:
    """Serve ``script`` on an ephemeral 127.0.0.1 port until the block ends."""
    state = Hostile(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen = Seen(
                self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
            )
            state.requests.append(seen)
            script(seen, self)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        time.sleep(0)
