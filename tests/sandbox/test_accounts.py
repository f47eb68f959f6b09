"""Sub-accounts, broker info and the rebate report through the in-process transport."""

from __future__ import annotations

import httpx

from sandbox import Exchange
from tests.sandbox.conftest import FakeClock, new_sub
from tests.sandbox.kc import fails, ok


def test_add_sub_account_returns_kucoin_shape(mgmt: httpx.Client, clock: FakeClock) -> None:
    """Add SubAccount answers {accountName, uid (9-digit string), createdAt (ms), level 0}."""
    clock.now = 1729819381.908
    data = ok(mgmt.post("/api/v1/broker/nd/account", json={"accountName": "Account15"}))
    assert set(data) == {"accountName", "uid", "createdAt", "level"}
    assert data["accountName"] == "Account15" and data["level"] == 0
    assert isinstance(data["uid"], str) and len(data["uid"]) == 9 and data["uid"].isdigit()
    assert data["createdAt"] == 1729819381908


def test_get_sub_account_rounds_created_at_to_the_second(mgmt: httpx.Client, clock: FakeClock) -> None:
    """Listings show createdAt rounded to the second (KuCoin's example: ...381908 -> ...382000)."""
    clock.now = 1729819381.908
    uid = new_sub(mgmt)
    page = ok(mgmt.get("/api/v1/broker/nd/account", params={"uid": uid}))
    assert page["items"] == [{"accountName": "Account15", "uid": uid, "createdAt": 1729819382000, "level": 0}]


def test_get_sub_account_paginates(mgmt: httpx.Client, clock: FakeClock) -> None:
    """currentPage/pageSize page through sub-accounts in creation order; default page size 20."""
    uids = []
    for i in range(25):
        clock.advance(1)
        uids.append(new_sub(mgmt, f"Account{i:02d}"))
    first = ok(mgmt.get("/api/v1/broker/nd/account"))
    assert (first["currentPage"], first["pageSize"], first["totalNum"], first["totalPage"]) == (1, 20, 25, 2)
    pages = [ok(mgmt.get("/api/v1/broker/nd/account", params={"currentPage": p, "pageSize": 10})) for p in (1, 2, 3)]
    assert [len(p["items"]) for p in pages] == [10, 10, 5]
    assert [i["uid"] for p in pages for i in p["items"]] == uids
    beyond = ok(mgmt.get("/api/v1/broker/nd/account", params={"currentPage": 9, "pageSize": 10}))
    assert beyond["items"] == [] and beyond["totalNum"] == 25


def test_get_sub_account_page_size_bounds(mgmt: httpx.Client) -> None:
    """pageSize above 100 or below 1, or a non-integer page, fails with 400100 naming the field."""
    fails(
        mgmt.get("/api/v1/broker/nd/account", params={"pageSize": 101}),
        "400100",
        msg="pageSize must be between 1 and 100",
    )
    fails(mgmt.get("/api/v1/broker/nd/account", params={"pageSize": 0}), "400100")
    fails(
        mgmt.get("/api/v1/broker/nd/account", params={"currentPage": "x"}),
        "400100",
        msg="currentPage must be an integer",
    )
    assert ok(mgmt.get("/api/v1/broker/nd/account", params={"pageSize": 100}))["pageSize"] == 100


def test_get_sub_account_foreign_uid_filter_is_empty(mgmt: httpx.Client) -> None:
    """Filtering by a uid that is not ours yields an empty page."""
    new_sub(mgmt)
    assert ok(mgmt.get("/api/v1/broker/nd/account", params={"uid": "999999999"}))["items"] == []


def test_add_sub_account_requires_a_name(mgmt: httpx.Client) -> None:
    """A missing accountName fails with 400100 (HTTP 200 by default)."""
    fails(mgmt.post("/api/v1/broker/nd/account", json={}), "400100", msg="accountName is required")


def test_broker_info_counts_sub_accounts(mgmt: httpx.Client) -> None:
    """Get Broker Info reports accountSize, maxAccountSize null (unlimited) and level."""
    new_sub(mgmt, "Account01")
    new_sub(mgmt, "Account02")
    data = ok(mgmt.get("/api/v1/broker/nd/info", params={"tradeType": "1"}))
    assert data == {"accountSize": 2, "maxAccountSize": None, "level": 0}


def test_broker_info_validates_given_dates(mgmt: httpx.Client) -> None:
    """Dates are optional by default but validated when present (format, order, 6-month span)."""
    fails(mgmt.get("/api/v1/broker/nd/info", params={"begin": "2024-06-01", "end": "20240610"}), "400100")
    fails(mgmt.get("/api/v1/broker/nd/info", params={"begin": "20240610", "end": "20240601"}), "400100")
    fails(mgmt.get("/api/v1/broker/nd/info", params={"tradeType": "3"}), "400100")
    ok(mgmt.get("/api/v1/broker/nd/info", params={"begin": "20240101", "end": "20240701", "tradeType": "2"}))


def test_rebate_returns_a_csv_url_served_by_the_sandbox(mgmt: httpx.Client, clock: FakeClock) -> None:
    """Get Broker Rebate answers {url}; the URL serves a CSV (invented columns) for one day."""
    clock.now = 1718000000.0  # 2024-06-10
    new_sub(mgmt)
    url = ok(
        mgmt.get("/api/v1/broker/nd/rebase/download", params={"begin": "20240601", "end": "20240630", "tradeType": "1"})
    )["url"]
    assert url.startswith("http://sandbox.test/sandbox/v1/rebate/") and url.endswith(".csv")
    csv = mgmt.get(url)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0] == "Date,BrokerUID,UID,AccountName,BizLine,Volume(USDT),TotalFee(USDT),BrokerRebate(USDT)"
    assert len(lines) > 1 and all(",Spot," in line for line in lines[1:])
    clock.advance(86_400)
    assert mgmt.get(url).status_code == 404


def test_rebate_validates_parameters(mgmt: httpx.Client) -> None:
    """begin/end/tradeType are required; the span may not exceed 6 months."""
    fails(mgmt.get("/api/v1/broker/nd/rebase/download", params={"begin": "20240101", "end": "20240102"}), "400100")
    too_long = {"begin": "20240101", "end": "20240702", "tradeType": "1"}
    fails(mgmt.get("/api/v1/broker/nd/rebase/download", params=too_long), "400100",
          msg="the interval between begin and end must not exceed 6 months")  # fmt: skip
    ok(mgmt.get("/api/v1/broker/nd/rebase/download", params={**too_long, "end": "20240701"}))


def test_unknown_path_and_method_are_404(mgmt: httpx.Client) -> None:
    """Unknown paths, and known paths with another method, answer 404000 with HTTP 404."""
    fails(mgmt.get("/api/v1/broker/nd/nothing"), "404000", 404, msg="Url Not Found")
    fails(mgmt.put("/api/v1/broker/nd/account", json={}), "404000", 404)


def test_invalid_json_body_is_400100(mgmt: httpx.Client) -> None:
    """A POST body that is not a JSON object fails with 400100."""
    headers = {"Content-Type": "application/json"}
    fails(mgmt.post("/api/v1/broker/nd/account", content=b"{nope", headers=headers), "400100", msg="Invalid JSON body")
    fails(mgmt.post("/api/v1/broker/nd/account", content=b"[1]", headers=headers), "400100")


def test_stats_count_requests_and_codes(mgmt: httpx.Client, exchange: Exchange) -> None:
    """The state's stats count requests per endpoint and responses per code."""
    new_sub(mgmt)
    fails(mgmt.post("/api/v1/broker/nd/account", json={}), "400100")
    stats = exchange.state_snapshot()["stats"]
    assert stats["requests"]["add_sub_account"] == 2
    assert stats["responses"] == {"200000": 1, "400100": 1}
