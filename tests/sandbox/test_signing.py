"""The simulator's signature verification against KuCoin's published test vectors (docs/kucoin-api.md §2.3)."""

from __future__ import annotations

from sandbox.signing import partner_sign, passphrase_header, prehash, request_sign, signatures_equal
from tests.sandbox.kc import ApiKey, Partner, sign_headers

SECRET = "cde06451-dbed"
BODY = (
    b'{"symbol":"BTC-USDT","side":"buy","size":"0.0001","price":"30000","type":"limit",'
    b'"clientOid":"2b802154-8d31-42e6-88ea-c8c18d3e4822","tradeType":"TRADE"}'
)


def test_doc_instr_vectors() -> None:
    """KC-API-SIGN, the v2/v3 passphrase and the partner sign match the DOC-INSTR example values."""
    sign = request_sign(
        SECRET, timestamp="1680885532722", method="POST", path="/api/v1/orders", raw_query="", body=BODY
    )
    assert sign == "ncPuAcZW8WYUZyvblRVVgMfYoVH+FlCTO6K45/FMLFQ="
    assert passphrase_header(SECRET, "1111111") == "rl1Ki0WuwidRT48JnoGQo+AJ4UtZ6mQEKt6F5XYVnT4="
    expected_partner = "CN1imIGUz/USkPuhOtGWi5DlZ08VeuVfknJNOPqUEac="
    assert partner_sign("e8512b82-a4aa", "1680885532722", "goodbroker", "6422da9c97b45100018c6e62") == expected_partner


def test_partner_sign_keyed_with_api_secret_is_rejected() -> None:
    """The Go/Node/Py<=1.3.0 variant (partner sign keyed with apiSecret) does not verify."""
    expected = partner_sign("e8512b82-a4aa", "1680885532722", "goodbroker", "6422da9c97b45100018c6e62")
    assert not signatures_equal(expected, "KcUJFlgQ4jpGxXKSLV1WU33VyNyUHZPbo2K4iabzgQY=")


def test_old_docs_vector() -> None:
    """The OLD-DOCS signing example verifies."""
    sign = request_sign(
        "f03a5284-5c39-4aaa-9b20-dea10bdcf8e3",
        timestamp="1547015186532",
        method="POST",
        path="/api/v1/deposit-addresses",
        raw_query="",
        body=b'{"currency":"BTC"}',
    )
    assert sign == "7QP/oM0ykidMdrfNEUmng8eZjg/ZvPafjIqmxiVfYu4="


def test_test_helper_produces_the_vectors() -> None:
    """The tests' own signer agrees with the published values (so the other tests exercise real signing)."""
    headers = sign_headers(
        ApiKey("6422da9c97b45100018c6e62", SECRET, "1111111"),
        method="POST",
        path="/api/v1/orders",
        body=BODY,
        timestamp_ms=1680885532722,
        partner=Partner("goodbroker", "e8512b82-a4aa", "goodbrokerND"),
    )
    assert headers["KC-API-SIGN"] == "ncPuAcZW8WYUZyvblRVVgMfYoVH+FlCTO6K45/FMLFQ="
    assert headers["KC-API-PASSPHRASE"] == "rl1Ki0WuwidRT48JnoGQo+AJ4UtZ6mQEKt6F5XYVnT4="
    assert headers["KC-API-PARTNER-SIGN"] == "CN1imIGUz/USkPuhOtGWi5DlZ08VeuVfknJNOPqUEac="


def test_prehash_signs_the_decoded_query_in_sent_order() -> None:
    """The query is signed URL-decoded, in the order sent (DOC-AUTH's abc%21%40%2311 example)."""
    assert (
        prehash("1", "get", "/api/v1/x", "passphrase=abc%21%40%2311&b=1+2", b"")
        == "1GET/api/v1/x?passphrase=abc!@#11&b=1 2"
    )
    assert prehash("1", "GET", "/api/v1/x", "", b"") == "1GET/api/v1/x"


def test_missing_signature_never_matches() -> None:
    """A missing header compares unequal rather than raising."""
    assert not signatures_equal("abc", None)
    assert signatures_equal("abc", "abc")
