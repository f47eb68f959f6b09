"""``KUCOIN_HTTP_PROXY``: every exchange request goes through the configured proxy, and only that one."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

from sandbox import Exchange, start_server
from worker.exchange import ExchangeClient
from worker.settings import Settings, SettingsError


class _ForwardProxy(ThreadingHTTPServer):
    """A plain-HTTP forward proxy on loopback that remembers each request line it forwarded."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ForwardProxy

    def _forward(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")
        target = urlsplit(self.path)  # absolute-form: http://host:port/path?query
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=5)
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = do_DELETE = _forward  # noqa: N815 - http.server dispatches on these names

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[_ForwardProxy]:
    server = _ForwardProxy()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_requests_go_through_the_configured_proxy(proxy: _ForwardProxy) -> None:
    """A signed write and a read reach the exchange, both through the proxy (the signature survives it)."""
    with start_server(Exchange()) as exchange:
        settings, _ = Settings.from_env(
            {
                "KUCOIN_BROKER_BASE_URL": exchange.url,
                "KUCOIN_SPOT_BASE_URL": exchange.url,
                "KUCOIN_HTTP_PROXY": proxy.url,
            }
        )
        with ExchangeClient.from_settings(settings) as client:
            sub = client.sub_accounts.add(account_name="ndproxied1")
            page = client.sub_accounts.page(uid=sub.uid)
    assert page.items[0].account_name == "ndproxied1"
    assert proxy.seen == [
        f"POST {exchange.url}/api/v1/broker/nd/account",
        f"GET {exchange.url}/api/v1/broker/nd/account?uid={sub.uid}&currentPage=1&pageSize=20",
    ]


def test_without_the_setting_the_environment_proxy_is_not_used(
    proxy: _ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Configuration is the settings only: an ``HTTP_PROXY`` in the environment changes nothing."""
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("http_proxy", proxy.url)
    with start_server(Exchange()) as exchange:
        settings, _ = Settings.from_env({"KUCOIN_BROKER_BASE_URL": exchange.url, "KUCOIN_SPOT_BASE_URL": exchange.url})
        with ExchangeClient.from_settings(settings) as client:
            client.sub_accounts.add(account_name="nddirect1")
    assert proxy.seen == []


def test_a_malformed_proxy_is_refused_by_name_without_echoing_it() -> None:
    """The value may hold the proxy's password: the error names the variable and the expected form only."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"KUCOIN_HTTP_PROXY": "socks5://user:hunter2@proxy:1080"})
    assert "KUCOIN_HTTP_PROXY" in str(caught.value)
    assert "hunter2" not in str(caught.value)
