"""API keys of sub-accounts (docs/kucoin-api.md §6.8-6.11).

Documented: label 4-32 chars; ipWhitelist at most 20 entries; permissions only ``general``/``spot``/``futures``
(lower-case in requests, capitalised in responses); the secret is returned only by Add SubAccount API; Get and
Modify return masked IPs (``"127.**.1"``); Delete takes query parameters and returns ``true``. Our choices:
passphrase 7-32 chars without spaces (the ordinary sub-account rule as analog), at least one permission, a cap
of ``max_keys_per_subaccount`` live keys, and 400100 for an unknown/deleted key or a uid that is not ours. A new
key appears in Get SubAccount API only ``listing_lag_ms`` after it was issued (default 0); a deleted key leaves
the listing at once.
"""

from __future__ import annotations

from typing import Any

from sandbox.context import Context
from sandbox.errors import business
from sandbox.state import ApiKeyRecord

__all__ = [
    "add_sub_account_api",
    "delete_sub_account_api",
    "get_sub_account_api",
    "mask_ip",
    "modify_sub_account_api",
]

PERMISSIONS = {"general": "General", "spot": "Spot", "futures": "Futures"}
KEY_LIMIT = "api key count exceeds the limit"
NOT_OUR_UID = "uid is not a sub-account of this broker"
KEY_NOT_FOUND = "apiKey does not exist"


def mask_ip(ip: str) -> str:
    """KuCoin's masking in key listings: first and last group kept (``203.0.113.154`` -> ``203.**.154``)."""
    sep = ":" if ":" in ip else "."
    parts = [p for p in ip.split(sep) if p]
    if len(parts) < 2:
        return ip
    return f"{parts[0]}{sep}**{sep}{parts[-1]}"


def _our_uid(ctx: Context, uid: str) -> str:
    if uid not in ctx.state.subaccounts:
        raise business(NOT_OUR_UID)
    return uid


def _permissions(ctx: Context) -> list[str]:
    raw = ctx.body.string_list("permissions", max_items=len(PERMISSIONS) * 4)
    if not raw:
        raise business("permissions must not be empty")
    result: list[str] = []
    for name in raw:
        if name not in PERMISSIONS:
            raise business(f"permissions: {name} is not allowed (only general, spot, futures)")
        if PERMISSIONS[name] not in result:
            result.append(PERMISSIONS[name])
    return result


def _listing(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "uid": record.uid,
        "label": record.label,
        "apiKey": record.api_key,
        "apiVersion": 3,
        "permissions": list(record.permissions),
        "ipWhitelist": [mask_ip(ip) for ip in record.ip_whitelist],
        "createdAt": record.created_at,
    }


def add_sub_account_api(ctx: Context) -> dict[str, Any]:
    """POST /api/v1/broker/nd/account/apikey — issue a key; the only response carrying ``secretKey``; weight 3."""
    uid = ctx.body.required("uid")
    passphrase = ctx.body.required("passphrase")
    if not 7 <= len(passphrase) <= 32 or any(c.isspace() for c in passphrase):
        raise business("passphrase length must be 7-32 and contain no spaces")
    ips = ctx.body.ip_list("ipWhitelist")
    permissions = _permissions(ctx)
    label = ctx.body.required("label", min_len=4, max_len=32)
    _our_uid(ctx, uid)
    if len(ctx.state.live_keys(uid)) >= ctx.config.max_keys_per_subaccount:
        raise business(KEY_LIMIT)
    record = ctx.state.issue_key(
        uid=uid, passphrase=passphrase, label=label, permissions=permissions, ip_whitelist=ips, now_ms=ctx.now_ms
    )
    return {
        "uid": record.uid,
        "label": record.label,
        "apiKey": record.api_key,
        "secretKey": record.secret,
        "apiVersion": 3,
        "permissions": list(record.permissions),
        "ipWhitelist": list(record.ip_whitelist),
        "createdAt": record.created_at,
    }


def get_sub_account_api(ctx: Context) -> list[dict[str, Any]]:
    """GET /api/v1/broker/nd/account/apikey — live keys of ``uid`` (optionally one ``apiKey``), plain array,
    masked IPs, no secret; keys issued less than ``listing_lag_ms`` ago are not listed yet; weight 2."""
    uid = _our_uid(ctx, ctx.query.required("uid"))
    api_key = ctx.query.string("apiKey", required=False)
    listed_until = ctx.now_ms - ctx.config.listing_lag_ms
    return [
        _listing(k)
        for k in ctx.state.live_keys(uid)
        if k.created_at <= listed_until and (api_key is None or k.api_key == api_key)
    ]


def modify_sub_account_api(ctx: Context) -> dict[str, Any]:
    """POST /api/v1/broker/nd/account/update-apikey — replace ipWhitelist, permissions and label; weight 3."""
    uid = ctx.body.required("uid")
    api_key = ctx.body.required("apiKey")
    ips = ctx.body.ip_list("ipWhitelist")
    permissions = _permissions(ctx)
    label = ctx.body.required("label", min_len=4, max_len=32)
    _our_uid(ctx, uid)
    record = ctx.state.live_key(uid, api_key)
    if record is None:
        raise business(KEY_NOT_FOUND)
    record.ip_whitelist = ips
    record.permissions = permissions
    record.label = label
    return _listing(record)


def delete_sub_account_api(ctx: Context) -> bool:
    """DELETE /api/v1/broker/nd/account/apikey?uid=&apiKey= — revoke a key (it then fails with 400003); weight 3.

    Deleting an unknown or already deleted key fails with 400100 (our choice; not idempotent)."""
    uid = ctx.query.required("uid")
    api_key = ctx.query.required("apiKey")
    record = ctx.state.live_key(_our_uid(ctx, uid), api_key)
    if record is None:
        raise business(KEY_NOT_FOUND)
    record.deleted_at = ctx.now_ms
    return True
