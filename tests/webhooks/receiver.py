"""A real webhook receiver on loopback: every request is verified with the ``standardwebhooks`` library (as an
upstream would), recorded, and answered as the test planned (a status, headers, a delay)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

__all__ = ["Received", "Receiver", "Reply"]


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: str = ""


@dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: str
    body: str
    verified: bool
    """The standardwebhooks library accepted the signature (and the timestamp, within its 5 minutes)."""
    answered: int
    at: float

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class Receiver:
    """``plan(event) -> Reply`` decides each answer (default 204). Use as a context manager."""

    def __init__(self, secret: str, plan: Callable[[dict[str, Any]], Reply] | None = None) -> None:
        self.secret = secret
        self.plan = plan or (lambda event: Reply())
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                if len(raw) < length:
                    # the sender died mid-request (a worker killed with -9): no delivery, nobody to answer
                    self.close_connection = True
                    return
                body = raw.decode("utf-8")
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    Webhook(receiver.secret).verify(body, headers)
                    verified = True
                except WebhookVerificationError:
                    verified = False
                try:
                    event = json.loads(body)
                except ValueError:
                    event = {}
                reply = receiver.plan(event)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                with receiver._lock:
                    receiver.received.append(
                        Received(
                            headers.get("webhook-id", ""),
                            headers.get("webhook-timestamp", ""),
                            body,
                            verified,
                            reply.status,
                            time.monotonic(),
                        )
                    )
                data = reply.body.encode("utf-8")
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hooks/provisioner"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def delivered(self) -> list[Received]:
        """The requests answered 2xx, in arrival order."""
        with self._lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def all(self) -> list[Received]:
        with self._lock:
            return list(self.received)
