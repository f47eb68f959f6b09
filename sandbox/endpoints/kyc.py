"""Proxy KYC for sub-accounts (docs/kucoin-api.md §6.1-6.3).

Documented: the submit fields and formats (dates YYYY-MM-DD, identityType idcard|drivinglicense|passport|bvn,
photos as base64 data URIs of PNG/JPG up to 2 MB, frontPhoto optional for bvn, backendPhoto optional for
passport and bvn) and the statuses NONE/PROCESS/PASS/REJECT. Our choices: Submit moves NONE -> PROCESS, and
after ``kyc_review_ms`` the status reads PASS, or REJECT with a reason when firstName is "REJECT" or the uid
falls in the seeded ``kyc_reject_share`` (drawn again per attempt). A REJECTed uid may resubmit; a PROCESS or
PASS uid gets 400100. Get KYC Status takes at most 100 uids, all ours. The status list pages over the
sub-accounts that have submitted, in order of first submission.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

from sandbox.context import Context
from sandbox.errors import business
from sandbox.params import Params
from sandbox.state import seeded_fraction

__all__ = ["get_kyc_status", "get_kyc_status_list", "submit_kyc"]

REJECT_REASON = "frontPhoto:Picture is not clear/covered/incomplete"
ALREADY_SUBMITTED = "KYC already submitted"
_PHOTO = re.compile(r"^data:image/(png|jpe?g);base64,(?P<data>[A-Za-z0-9+/=\s]*)$", re.DOTALL)
_MAX_PHOTO_BYTES = 2 * 1024 * 1024


def _photo(params: Params, name: str, *, required: bool) -> None:
    value = params.string(name, required=required)
    if value is None:
        return
    found = _PHOTO.match(value)
    if not found:
        raise business(f"{name} must be a base64 data URI of a PNG or JPG image")
    try:
        size = len(base64.b64decode(found["data"], validate=False))
    except (binascii.Error, ValueError):
        raise business(f"{name} is not valid base64") from None
    if size == 0 or size > _MAX_PHOTO_BYTES:
        raise business(f"{name} must be a non-empty image of at most 2 MB")


def _our_uid(ctx: Context, uid: str) -> str:
    if uid not in ctx.state.subaccounts:
        raise business(f"clientUid {uid} is not a sub-account of this broker")
    return uid


def submit_kyc(ctx: Context) -> None:
    """POST /api/kyc/ndBroker/proxyClient/submit — submit a sub-account's KYC; data null; weight 1 (our choice)."""
    body = ctx.body
    uid = body.required("clientUid")
    first_name = body.required("firstName", max_len=64)
    body.required("lastName", max_len=64)
    country = body.required("issueCountry")
    if not re.fullmatch(r"[A-Z]{2}", country):
        raise business("issueCountry must be an ISO 3166 alpha-2 code")
    body.day("birthDate", fmt="%Y-%m-%d")
    identity_type = body.one_of("identityType", ("idcard", "drivinglicense", "passport", "bvn"))
    body.required("identityNumber", max_len=64)
    body.day("expireDate", fmt="%Y-%m-%d")
    _photo(body, "frontPhoto", required=identity_type != "bvn")
    _photo(body, "backendPhoto", required=identity_type not in ("passport", "bvn"))
    _photo(body, "facePhoto", required=True)
    _our_uid(ctx, uid)
    status, _ = ctx.state.kyc_status(uid, ctx.now_ms)
    if status in ("PROCESS", "PASS"):
        raise business(ALREADY_SUBMITTED)
    previous = ctx.state.kyc.get(uid)
    attempt = previous.attempts + 1 if previous else 1
    rejected = first_name == "REJECT" or (
        seeded_fraction(ctx.config.seed, "kyc", uid, attempt) < ctx.config.kyc_reject_share
    )
    ctx.state.submit_kyc(
        uid, now_ms=ctx.now_ms, review_ms=ctx.config.kyc_review_ms, reject_reason=REJECT_REASON if rejected else None
    )


def _item(ctx: Context, uid: str) -> dict[str, Any]:
    status, reason = ctx.state.kyc_status(uid, ctx.now_ms)
    return {"clientUid": int(uid), "status": status, "rejectReason": reason}


def get_kyc_status(ctx: Context) -> list[dict[str, Any]]:
    """GET /api/kyc/ndBroker/proxyClient/status/list?clientUids=a,b — plain array; weight 1 (our choice)."""
    uids = [u.strip() for u in ctx.query.required("clientUids").split(",") if u.strip()]
    if not uids or len(uids) > 100:
        raise business("clientUids must list 1-100 uids")
    return [_item(ctx, _our_uid(ctx, uid)) for uid in uids]


def get_kyc_status_list(ctx: Context) -> dict[str, Any]:
    """GET /api/kyc/ndBroker/proxyClient/status/page?pageNumber=&pageSize= — answers with ``currentPage``
    (documented quirk); pageSize default 100, max 100; weight 1 (our choice)."""
    page = ctx.query.integer("pageNumber", default=1, minimum=1)
    size = ctx.query.integer("pageSize", default=100, minimum=1, maximum=100)
    uids = list(ctx.state.kyc)
    start = (page - 1) * size
    return {
        "currentPage": page,
        "pageSize": size,
        "totalNum": len(uids),
        "totalPage": math.ceil(len(uids) / size),
        "items": [_item(ctx, uid) for uid in uids[start : start + size]],
    }
