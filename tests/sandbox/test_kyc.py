"""Proxy KYC: submit, status lifecycle on a fake clock, listing and validation."""

from __future__ import annotations

import httpx
import pytest

from sandbox import Exchange
from tests.sandbox.conftest import FakeClock, kyc_body, new_sub
from tests.sandbox.kc import fails, ok

SUBMIT = "/api/kyc/ndBroker/proxyClient/submit"
STATUS = "/api/kyc/ndBroker/proxyClient/status/list"
PAGE = "/api/kyc/ndBroker/proxyClient/status/page"


def status_of(mgmt: httpx.Client, *uids: str) -> list[tuple[int, str, str | None]]:
    rows = ok(mgmt.get(STATUS, params={"clientUids": ",".join(uids)}))
    return [(r["clientUid"], r["status"], r["rejectReason"]) for r in rows]


def test_kyc_moves_none_process_pass(mgmt: httpx.Client, clock: FakeClock) -> None:
    """NONE before submission, PROCESS after, PASS once kyc_review_ms (2000) has elapsed; clientUid is an int."""
    uid = new_sub(mgmt)
    assert status_of(mgmt, uid) == [(int(uid), "NONE", None)]
    assert ok(mgmt.post(SUBMIT, json=kyc_body(uid))) is None
    assert status_of(mgmt, uid) == [(int(uid), "PROCESS", None)]
    clock.advance(1.999)
    assert status_of(mgmt, uid)[0][1] == "PROCESS"
    clock.advance(0.001)
    assert status_of(mgmt, uid) == [(int(uid), "PASS", None)]
    fails(mgmt.post(SUBMIT, json=kyc_body(uid)), "400100", msg="KYC already submitted")


def test_reject_then_resubmit(mgmt: httpx.Client, clock: FakeClock) -> None:
    """firstName "REJECT" ends in REJECT with a reason; a rejected uid may resubmit, a PROCESS one may not."""
    uid = new_sub(mgmt)
    ok(mgmt.post(SUBMIT, json=kyc_body(uid, firstName="REJECT")))
    fails(mgmt.post(SUBMIT, json=kyc_body(uid)), "400100")
    clock.advance(2)
    assert status_of(mgmt, uid) == [(int(uid), "REJECT", "frontPhoto:Picture is not clear/covered/incomplete")]
    ok(mgmt.post(SUBMIT, json=kyc_body(uid)))
    clock.advance(2)
    assert status_of(mgmt, uid)[0][1] == "PASS"


def test_kyc_reject_share_and_review_time_are_switches(
    mgmt: httpx.Client, exchange: Exchange, clock: FakeClock
) -> None:
    """kyc_reject_share 1.0 rejects everyone; kyc_review_ms sets the PROCESS duration."""
    exchange.update_config({"kyc_reject_share": 1.0, "kyc_review_ms": 10_000})
    uid = new_sub(mgmt)
    ok(mgmt.post(SUBMIT, json=kyc_body(uid)))
    clock.advance(9.9)
    assert status_of(mgmt, uid)[0][1] == "PROCESS"
    clock.advance(0.1)
    assert status_of(mgmt, uid)[0][1] == "REJECT"


def test_kyc_status_list_pages(mgmt: httpx.Client) -> None:
    """Get KYC Status List pages over submitted uids with pageNumber/pageSize and answers currentPage."""
    uids = [new_sub(mgmt, f"Account{i:02d}") for i in range(3)]
    for uid in uids:
        ok(mgmt.post(SUBMIT, json=kyc_body(uid)))
    page = ok(mgmt.get(PAGE, params={"pageNumber": 2, "pageSize": 2}))
    assert (page["currentPage"], page["pageSize"], page["totalNum"], page["totalPage"]) == (2, 2, 3, 2)
    assert [i["clientUid"] for i in page["items"]] == [int(uids[2])]
    assert ok(mgmt.get(PAGE))["pageSize"] == 100
    fails(mgmt.get(PAGE, params={"pageSize": 101}), "400100")


@pytest.mark.parametrize(
    ("overrides", "msg"),
    [
        ({"facePhoto": None}, "facePhoto is required"),
        ({"frontPhoto": "not-a-data-uri"}, "frontPhoto must be a base64 data URI of a PNG or JPG image"),
        ({"identityType": "selfie"}, "identityType must be one of idcard, drivinglicense, passport, bvn"),
        ({"birthDate": "31.01.1990"}, "birthDate must be a date in the format YYYY-MM-DD"),
        ({"issueCountry": "Germany"}, "issueCountry must be an ISO 3166 alpha-2 code"),
        ({"clientUid": "999999999"}, "clientUid 999999999 is not a sub-account of this broker"),
    ],
)
def test_submit_validation(mgmt: httpx.Client, overrides: dict[str, object], msg: str) -> None:
    """Each submit constraint fails with 400100 naming the field."""
    body = {**kyc_body(new_sub(mgmt)), **overrides}
    fails(mgmt.post(SUBMIT, json={k: v for k, v in body.items() if v is not None}), "400100", msg=msg)


def test_photos_are_conditional_on_identity_type(mgmt: httpx.Client) -> None:
    """backendPhoto is optional for passports; frontPhoto and backendPhoto for bvn."""
    passport = {
        k: v for k, v in kyc_body(new_sub(mgmt, "Account01"), identityType="passport").items() if k != "backendPhoto"
    }
    ok(mgmt.post(SUBMIT, json=passport))
    bvn = kyc_body(new_sub(mgmt, "Account02"), identityType="bvn")
    ok(mgmt.post(SUBMIT, json={k: v for k, v in bvn.items() if k not in ("frontPhoto", "backendPhoto")}))


def test_kyc_status_needs_our_uids(mgmt: httpx.Client) -> None:
    """Get KYC Status refuses uids that are not ours and an empty list."""
    fails(mgmt.get(STATUS, params={"clientUids": "123456789"}), "400100")
    fails(mgmt.get(STATUS, params={"clientUids": ","}), "400100")
