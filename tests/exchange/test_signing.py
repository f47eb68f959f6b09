"""Signing matches KuCoin's documented test vectors (docs/kucoin-api.md §2.3)."""

from worker.exchange.signing import hmac_b64, partner_sign, prehash, sign_headers
from worker.settings import KucoinCredentials

DOC = KucoinCredentials(
    api_key="6422da9c97b45100018c6e62",
    api_secret="cde06451-dbed",
    api_passphrase="1111111",
    partner="goodbroker",
    broker_key="e8512b82-a4aa",
    broker_name="goodbrokerND",
)
TIMESTAMP = 1680885532722
BODY = (
    '{"symbol":"BTC-USDT","side":"buy","size":"0.0001","price":"30000","type":"limit",'
    '"clientOid":"2b802154-8d31-42e6-88ea-c8c18d3e4822","tradeType":"TRADE"}'
)


def test_request_signature_matches_the_broker_doc_vector() -> None:
    """KC-API-SIGN over timestamp+METHOD+path+body equals the value printed in the broker instructions."""
    headers = sign_headers(DOC, timestamp_ms=TIMESTAMP, method="post", path="/api/v1/orders", body=BODY, broker=True)
    assert headers["KC-API-SIGN"] == "ncPuAcZW8WYUZyvblRVVgMfYoVH+FlCTO6K45/FMLFQ="


def test_passphrase_is_hmacd_with_the_api_secret() -> None:
    """KC-API-PASSPHRASE for key version 3 is the HMAC of the passphrase, as documented."""
    headers = sign_headers(DOC, timestamp_ms=TIMESTAMP, method="POST", path="/api/v1/orders", body=BODY, broker=True)
    assert headers["KC-API-PASSPHRASE"] == "rl1Ki0WuwidRT48JnoGQo+AJ4UtZ6mQEKt6F5XYVnT4="
    assert headers["KC-API-KEY-VERSION"] == "3"


def test_partner_sign_is_keyed_by_the_broker_key_not_the_api_secret() -> None:
    """KC-API-PARTNER-SIGN uses broker-key (docs, PyPI 1.3.2), not apiSecret (the Go/Node SDK bug)."""
    headers = sign_headers(DOC, timestamp_ms=TIMESTAMP, method="POST", path="/api/v1/orders", body=BODY, broker=True)
    assert headers["KC-API-PARTNER-SIGN"] == "CN1imIGUz/USkPuhOtGWi5DlZ08VeuVfknJNOPqUEac="
    assert headers["KC-API-PARTNER-SIGN"] != "KcUJFlgQ4jpGxXKSLV1WU33VyNyUHZPbo2K4iabzgQY="
    assert partner_sign(str(TIMESTAMP), "goodbroker", DOC.api_key, "e8512b82-a4aa") == headers["KC-API-PARTNER-SIGN"]
    assert headers["KC-API-PARTNER"] == "goodbroker"
    assert headers["KC-BROKER-NAME"] == "goodbrokerND"
    assert headers["KC-API-PARTNER-VERIFY"] == "true"


def test_old_docs_vector() -> None:
    """The pre-2025 docs' example prehash signs to the printed value."""
    text = prehash("1547015186532", "POST", "/api/v1/deposit-addresses", (), '{"currency":"BTC"}')
    assert hmac_b64("f03a5284-5c39-4aaa-9b20-dea10bdcf8e3", text) == "7QP/oM0ykidMdrfNEUmng8eZjg/ZvPafjIqmxiVfYu4="


def test_query_is_signed_unencoded_in_sending_order() -> None:
    """GET queries are signed as the raw k=v&k=v string, in order, not URL-encoded (docs' passphrase example)."""
    text = prehash("1", "GET", "/api/v1/x", [("b", "2"), ("passphrase", "abc!@#11")], "")
    assert text == "1GET/api/v1/x?b=2&passphrase=abc!@#11"


def test_spot_calls_carry_no_partner_headers() -> None:
    """A trading-key call (broker=False) sends only the five standard headers."""
    headers = sign_headers(DOC, timestamp_ms=TIMESTAMP, method="GET", path="/api/v1/accounts", broker=False)
    assert set(headers) == {"KC-API-KEY", "KC-API-SIGN", "KC-API-TIMESTAMP", "KC-API-PASSPHRASE", "KC-API-KEY-VERSION"}
