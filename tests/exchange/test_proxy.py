"""``KUCOIN_HTTP_PROXY``: every exchange request goes through the configured proxy, and only that one; its
credentials stay out of errors and logs; the longer path through it is counted in the lock's bound."""

from __future__ import annotations

import base64
import http.client
import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
import structlog

from sandbox import Exchange, start_server
from worker.bootstrap import policy_from
from worker.exchange import ExchangeClient, RetryableError
from worker.logs import configure_logging
from worker.settings import Settings, SettingsError, ignored_proxy_variables

PASSWORD = "p#ss/w?rd:42"
"""A proxy password full of URL delimiters: it must travel percent-encoded and come out whole."""
ENCODED = "p%23ss%2Fw%3Frd%3A42"


class _ForwardProxy(ThreadingHTTPServer):
    """A plain-HTTP forward proxy on loopback that remembers each request line it forwarded. With ``password``
    it demands Basic proxy credentials ``user:<password>`` (407 otherwise). It refuses every CONNECT tunnel."""

    daemon_threads = True

    def __init__(self, password: str | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.seen: list[str] = []
        self.password = password

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ForwardProxy

    def _refuse(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_CONNECT(self) -> None:
        self.server.seen.append(f"CONNECT {self.path}")
        self._refuse(403)

    def _forward(self) -> None:
        self.server.seen.append(f"{self.command} {self.path}")
        if self.server.password is not None:
            expected = "Basic " + base64.b64encode(f"user:{self.server.password}".encode()).decode()
            if self.headers.get("Proxy-Authorization") != expected:
                self._refuse(407)
                return
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
def proxy(request: pytest.FixtureRequest) -> Iterator[_ForwardProxy]:
    server = _ForwardProxy(getattr(request, "param", None))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _through(proxy_url: str, exchange_url: str, **extra: str) -> Settings:
    settings, _ = Settings.from_env(
        {
            "KUCOIN_BROKER_BASE_URL": exchange_url,
            "KUCOIN_SPOT_BASE_URL": exchange_url,
            "KUCOIN_HTTP_PROXY": proxy_url,
            "PROVISIONER_LOCK_TTL_MS": "60000",
            **extra,
        }
    )
    return settings


@pytest.mark.loopback
def test_requests_go_through_the_configured_proxy(proxy: _ForwardProxy) -> None:
    """A signed write and a read reach the exchange, both through the proxy (the signature survives it)."""
    with (
        start_server(Exchange()) as exchange,
        ExchangeClient.from_settings(_through(proxy.url, exchange.url)) as client,
    ):
        sub = client.sub_accounts.add(account_name="ndproxied1")
        page = client.sub_accounts.page(uid=sub.uid)
    assert page.items[0].account_name == "ndproxied1"
    assert proxy.seen == [
        f"POST {exchange.url}/api/v1/broker/nd/account",
        f"GET {exchange.url}/api/v1/broker/nd/account?uid={sub.uid}&currentPage=1&pageSize=20",
    ]


@pytest.mark.loopback
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


@pytest.mark.loopback
@pytest.mark.parametrize("proxy", [PASSWORD], indirect=True)
def test_proxy_credentials_travel_percent_encoded_and_arrive_whole(proxy: _ForwardProxy) -> None:
    """A password with # ? / : in it, percent-encoded in the setting, reaches the proxy as the real password."""
    with start_server(Exchange()) as exchange:
        authed = proxy.url.replace("http://", f"http://user:{ENCODED}@")
        with ExchangeClient.from_settings(_through(authed, exchange.url)) as client:
            client.sub_accounts.add(account_name="ndauthed1")
    assert proxy.seen == [f"POST {exchange.url}/api/v1/broker/nd/account"]


@pytest.mark.loopback
def test_a_refused_tunnel_is_retryable_because_nothing_reached_the_exchange(proxy: _ForwardProxy) -> None:
    """An https exchange is reached through a CONNECT tunnel; a proxy that refuses it (403, or 407 for bad
    credentials) has sent nothing on: a write is ``RetryableError``, not an outcome to settle by reading."""
    with (
        ExchangeClient.from_settings(_through(proxy.url, "https://127.0.0.1:9")) as client,
        pytest.raises(RetryableError) as caught,
    ):
        client.sub_accounts.add(account_name="ndtunnel1")
    assert "ProxyError" in str(caught.value)
    assert proxy.seen == ["CONNECT 127.0.0.1:9"]


@pytest.mark.parametrize(
    "value",
    [
        "socks5://user:hunter2@proxy:1080",  # not http(s)
        "http://user:s3c#hunter2@proxy:8080",  # '#' unencoded: httpx would read the password as a port
        "http://user:1234#hunter2@proxy",  # ... or silently proxy to host "user", port 1234
        "http://user:hunter2@proxy:3128\n",  # a mounted secret's trailing newline
        "http://user:hunter2@proxy:3128/path",
        "http://user:hunter2@proxy:3128?x=1",
        "http://user:hunter2@proxy:99999",
        "http://user:hunter2@:3128",
    ],
)
def test_a_malformed_proxy_is_refused_by_name_without_echoing_it(value: str) -> None:
    """The value may hold the proxy's password: the error names the variable and the expected form only."""
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"KUCOIN_HTTP_PROXY": value, "PROVISIONER_LOCK_TTL_MS": "60000"})
    assert "KUCOIN_HTTP_PROXY" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_the_proxy_password_is_redacted_from_logs() -> None:
    """Logged anywhere (say, in an exception's text), the password shows as redacted, encoded or not."""
    settings = _through(f"http://user:{ENCODED}@proxy.internal:3128", "http://127.0.0.1:9")
    out = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=out, secrets=settings.log_secrets())
    structlog.get_logger("test").warning("proxy failed", url=f"http://user:{ENCODED}@proxy.internal", raw=PASSWORD)
    assert "proxy failed" in out.getvalue()
    assert ENCODED not in out.getvalue() and PASSWORD not in out.getvalue()


def test_the_path_through_a_proxy_is_counted_in_the_lock_and_settle_bounds() -> None:
    """Through a tunnel a request can also spend a connect and a write + read on the CONNECT: the default
    lock no longer outlives that, and the settle delay grows with it."""
    direct, _ = Settings.from_env({})
    assert direct.request_bound_s == 5 + 2 * 3 + (5 + 10)
    with pytest.raises(SettingsError, match="PROVISIONER_LOCK_TTL_MS: must exceed the longest request \\(44 s"):
        Settings.from_env({"KUCOIN_HTTP_PROXY": "http://proxy.internal:3128"})
    proxied = _through("http://proxy.internal:3128", "https://api-broker.kucoin.com")
    assert proxied.request_bound_s == 5 + 3 * 3 + 2 * (5 + 10)
    assert policy_from(proxied).resolve_delay_ms == 44_000 + proxied.unknown_outcome_settle_ms + proxied.listing_lag_ms


def test_environment_proxies_that_are_ignored_are_named() -> None:
    """A deployment that relied on HTTPS_PROXY is told at start-up that it now goes direct."""
    direct, _ = Settings.from_env({})
    environ = {"HTTPS_PROXY": "http://proxy.internal:3128", "no_proxy": "localhost"}
    assert ignored_proxy_variables(environ, direct) == ["HTTPS_PROXY"]
    proxied = _through("http://proxy.internal:3128", "https://api-broker.kucoin.com")
    assert ignored_proxy_variables(environ, proxied) == []
