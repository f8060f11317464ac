"""The simulator's HTTP front: stdlib ``ThreadingHTTPServer``, HTTP/1.1 keep-alive, 127.0.0.1.

It only moves bytes; every decision is made by ``Simulator.handle``. Fault transports are
done here: a truncated body (full ``Content-Length``, half the bytes, then close) and a
connection reset (``SO_LINGER`` 0, then close, so the peer sees RST).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from di_archiver.simulator.config import SimulatorError

if TYPE_CHECKING:
    from di_archiver.simulator.core import Simulator

logger = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: Simulator

    def __init__(self, address: tuple[str, int], simulator: Simulator) -> None:
        self.simulator = simulator
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "di-simulator"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections must not pin threads forever
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.send_error(400, "bad Content-Length")
            return
        body = self.rfile.read(length) if length else b""
        simulator = self.server.simulator
        response = simulator.handle(method, self.path, list(self.headers.items()), body)
        if response.delay_seconds:
            simulator.sleep(response.delay_seconds)
        if response.transport == "reset":
            self._reset()
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if response.transport == "truncate":
            self.send_header("Connection", "close")
        self.end_headers()
        if response.transport == "truncate":
            self.wfile.write(response.body[: len(response.body) // 2])
            self.close_connection = True
            return
        self.wfile.write(response.body)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout turns close() into a RST instead of a FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def log_message(self, format: str, *args: Any) -> None:
        # Only the request line and status: headers (keys, tokens) are never logged.
        logger.debug("%s %s", self.address_string(), format % args)


class SimulatorServer:
    """A running simulator endpoint; ``with sim.serve() as server: server.base_url``."""

    def __init__(self, simulator: Simulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise SimulatorError(
                f"refusing to listen on {host!r}: the simulator binds to loopback only "
                "(use 127.0.0.1)"
            )
        self.simulator = simulator
        self._host = host
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> SimulatorServer:
        """Bind and serve on a daemon thread (idempotent)."""
        if self._httpd is None:
            try:
                self._httpd = _Server((self._host, self._port), self.simulator)
            except OSError as exc:
                raise SimulatorError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="di-simulator",
                daemon=True,
            )
            self._thread.start()
        return self

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise SimulatorError("simulator server is not running")
        return int(self._httpd.server_address[1])

    @property
    def host(self) -> str:
        return self._host

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``; DI paths live under ``/insights/directory/v1``."""
        return f"http://{self._host}:{self.port}"

    @property
    def api_url(self) -> str:
        """``base_url`` plus the DI base path."""
        return f"{self.base_url}/insights/directory/v1"

    @property
    def token_url(self) -> str:
        """The OAuth client-credentials endpoint."""
        return f"{self.base_url}/oauth2/token"

    def stop(self) -> None:
        """Stop serving and drop open keep-alive connections."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        with httpd.connections_lock:
            open_connections = list(httpd.connections)
        for conn in open_connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
