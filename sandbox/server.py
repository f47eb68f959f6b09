"""The exchange over real HTTP/1.1 on loopback (stdlib ``ThreadingHTTPServer``, keep-alive, daemon threads).

One port serves the broker paths, the spot paths and the admin API. Faults as a real network shows them:
``drop`` closes the socket without a response after the commit (httpx: ``RemoteProtocolError``); ``slow``
commits, sleeps ``faults.slow_ms`` for real, then answers (the client's read time-out fires first); ``5xx`` and
``429`` are ordinary responses sent before any commit; latency is slept before processing.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import unquote

from sandbox.app import Exchange
from sandbox.wire import SimRequest

__all__ = ["SandboxServer", "serve_forever", "start_server"]

log = logging.getLogger("sandbox.server")

_IDLE_TIMEOUT_S = 120
"""Idle keep-alive connections are closed after this many seconds."""


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    # the listen backlog: the stdlib's 5 overflowed when a worker's 64 threads opened their connections at once —
    # the kernel dropped handshakes the client took for done, and reset them after it had sent its request (a
    # ReadError on a request the exchange never read, an outcome unknown for nothing). A real exchange's front end
    # does not: the somaxconn default
    request_queue_size = socket.SOMAXCONN

    def __init__(self, address: tuple[str, int], exchange: Exchange) -> None:
        self.exchange = exchange
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that vanished (killed, timed out) is normal here; anything else is still printed."""
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)

    def close_connections(self) -> None:
        """Shut down every open client connection (idle keep-alive ones included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response, sent at once: with the stdlib's unbuffered writer the headers and the body left in
    # two segments and Nagle held the body until the client's delayed ACK (40 ms on every call, measured).
    wbufsize = 64 * 1024
    disable_nagle_algorithm = True
    server_version = "kucoin-sandbox"
    sys_version = ""
    timeout = _IDLE_TIMEOUT_S
    server: _HTTPServer

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.client_address[0], *args)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        body = self._read_body()
        raw_path, _, query = self.path.partition("?")
        request = SimRequest.create(
            self.command,
            unquote(raw_path),
            query=query,
            headers=self.headers.items(),
            body=body,
            client_ip=self.client_address[0],
        )
        outcome = self.server.exchange.handle(request)
        directive = outcome.directive
        if directive.kind == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if directive.kind == "slow":
            time.sleep(directive.delay_ms / 1000)
        try:
            self.send_response(outcome.status)
            for name, value in outcome.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(outcome.body)))
            self.end_headers()
            self.wfile.write(outcome.body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True


class SandboxServer:
    """A running loopback server: ``.url`` (``http://127.0.0.1:<port>``), ``.port``, ``.close()``; a context
    manager that closes on exit."""

    def __init__(self, httpd: _HTTPServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"
        self.exchange = httpd.exchange
        self.backlog = httpd.request_queue_size
        """The listen backlog the socket was opened with."""

    def close(self) -> None:
        """Stop accepting, close open connections and wait for the serving thread (idempotent)."""
        if not self._thread.is_alive():
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.close_connections()
        self._thread.join(timeout=5)

    def __enter__(self) -> SandboxServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def start_server(exchange: Exchange, host: str = "127.0.0.1", port: int = 0) -> SandboxServer:
    """Serve ``exchange`` on ``host:port`` (0 = a free port) from a background daemon thread."""
    httpd = _HTTPServer((host, port), exchange)
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-server", daemon=True
    )
    thread.start()
    return SandboxServer(httpd, thread)


def serve_forever(
    exchange: Exchange,
    host: str = "127.0.0.1",
    port: int = 8088,
    *,
    on_ready: Callable[[SandboxServer], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """Serve in the foreground until SIGINT/SIGTERM (or ``stop`` is set), then close cleanly.

    Signal handlers are installed only when called from the main thread; previous handlers are restored.
    """
    stop = stop if stop is not None else threading.Event()
    server = start_server(exchange, host, port)
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        if on_ready is not None:
            on_ready(server)
        while not stop.wait(0.5):
            pass
    finally:
        server.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
