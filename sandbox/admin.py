"""The sandbox admin API (not KuCoin's): unauthenticated, loopback clients only, never faulted.

- ``GET /sandbox/v1/state`` -> ``Exchange.state_snapshot()``
- ``POST /sandbox/v1/config`` with a JSON patch -> the new config (400 with a message naming a bad field)
- ``POST /sandbox/v1/credit`` ``{"uid", "currency", "wallet", "amount", "deposit"?}`` -> ``{"uid", "currency",
  "wallet", "balance"}`` (simulates a customer's deposit or trading result; uid may be the broker's)
- ``POST /sandbox/v1/activity`` -> apply the customer activity due up to now: ``{"applied": {kind: n},
  "totals": {kind: n}}`` (kinds ``trades``, ``deposits``, ``skipped``)
- ``GET /sandbox/v1/rebate/<token>.csv`` -> the CSV behind a Get Broker Rebate URL (404 once expired)

Errors answer ``{"code": "400100" | "403000" | "404000", "msg": ...}`` with HTTP 400/403/404.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import TYPE_CHECKING, Any

from sandbox.rebate import REBATE_TTL_MS, render_rebate_csv
from sandbox.state import fmt_amount
from sandbox.wire import SimOutcome, SimRequest, json_body

if TYPE_CHECKING:
    from sandbox.app import Exchange

__all__ = ["handle_admin"]

_REBATE = re.compile(r"^/sandbox/v1/rebate/(?P<token>[0-9a-f]+)\.csv$")


def _json(status: int, payload: Any) -> SimOutcome:
    return SimOutcome(status, (("Content-Type", "application/json"),), json_body(payload))


def _error(status: int, code: str, msg: str) -> SimOutcome:
    return _json(status, {"code": code, "msg": msg})


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def handle_admin(exchange: Exchange, request: SimRequest) -> SimOutcome:
    """Answer one admin request."""
    if not _is_loopback(request.client_ip):
        return _error(403, "403000", "the sandbox admin API is served to loopback clients only")
    route = (request.method, request.path)
    if route == ("GET", "/sandbox/v1/state"):
        return _json(200, exchange.state_snapshot())
    if route == ("GET", "/sandbox/v1/ratelimit"):
        return _json(200, exchange.rate_limits())
    if route == ("POST", "/sandbox/v1/config"):
        patch = _body(request)
        if not isinstance(patch, dict):
            return _error(400, "400100", "the body must be a JSON object")
        try:
            return _json(200, exchange.update_config(patch))
        except (ValueError, TypeError) as exc:
            return _error(400, "400100", str(exc))
    if route == ("POST", "/sandbox/v1/credit"):
        return _credit(exchange, _body(request))
    if route == ("POST", "/sandbox/v1/activity"):
        applied = exchange.run_activity()
        totals = exchange.state_snapshot()["stats"]["activity"]
        return _json(200, {"applied": applied, "totals": totals})
    found = _REBATE.match(request.path)
    if request.method == "GET" and found:
        with exchange.lock:
            job = exchange.state.rebates.get(found["token"])
            if job is None or exchange.now_ms() >= job.created_at + REBATE_TTL_MS:
                return _error(404, "404000", "rebate file not found or expired")
            text = render_rebate_csv(job, exchange.state)
        return SimOutcome(200, (("Content-Type", "text/csv; charset=utf-8"),), text.encode())
    return _error(404, "404000", "Url Not Found")


def _body(request: SimRequest) -> Any:
    try:
        return json.loads(request.body or b"{}")
    except (ValueError, UnicodeDecodeError):
        return None


def _credit(exchange: Exchange, body: Any) -> SimOutcome:
    if not isinstance(body, dict):
        return _error(400, "400100", "the body must be a JSON object")
    fields = {name: body.get(name) for name in ("uid", "currency", "wallet", "amount")}
    missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        return _error(400, "400100", f"missing or non-string fields: {', '.join(missing)}")
    deposit = body.get("deposit", False)
    if not isinstance(deposit, bool):
        return _error(400, "400100", "deposit must be true or false")
    try:
        balance = exchange.credit(
            str(fields["uid"]), str(fields["currency"]), str(fields["wallet"]), str(fields["amount"]), deposit=deposit
        )
    except ValueError as exc:
        return _error(400, "400100", str(exc))
    return _json(
        200,
        {
            "uid": fields["uid"],
            "currency": fields["currency"],
            "wallet": fields["wallet"],
            "balance": fmt_amount(balance),
        },
    )
