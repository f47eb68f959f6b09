"""Shared helpers of the adversarial review's reproductions (real Redis + the in-process simulator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from handlers.events import parse_event
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from worker.verify import check


def approval(customer: str, name: str, minute: int, funding: list[tuple[str, str]]) -> dict[str, Any]:
    slug = "".join(ch if ch.isalnum() else "-" for ch in customer)
    return {
        "id": f"{slug}-{name}",
        "type": "customer.kyc_approved",
        "customer_id": customer,
        "occurred_at": f"2026-11-18T10:{minute:02d}:00Z",
        "data": {
            "permissions": ["general", "spot"],
            "ip_whitelist": ["203.0.114.10"],
            "funding": [{"currency": c, "amount": a} for c, a in funding],
        },
    }


def topup(customer: str, name: str, minute: int, funding: list[tuple[str, str]]) -> dict[str, Any]:
    slug = "".join(ch if ch.isalnum() else "-" for ch in customer)
    return {
        "id": f"{slug}-{name}",
        "type": "customer.funding_requested",
        "customer_id": customer,
        "occurred_at": f"2026-11-18T10:{minute:02d}:00Z",
        "data": {"funding": [{"currency": c, "amount": a} for c, a in funding]},
    }


def paid_to(rig: Rig, uid: str) -> list[dict[str, Any]]:
    """OUT transfers to ``uid`` that moved money (the exchange's truth; a FAILURE moved nothing)."""
    return [
        t
        for t in rig.state()["transfers"]
        if t["direction"] == "OUT" and t["specialUid"] == uid and t["status"] != "FAILURE"
    ]


def all_paid(rig: Rig) -> list[dict[str, Any]]:
    return [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["status"] != "FAILURE"]


def total(rows: list[dict[str, Any]]) -> Decimal:
    return sum((Decimal(t["amount"]) for t in rows), Decimal(0))


def outbound(app_or_rig: Any) -> list[dict[str, Any]]:
    """Every event on the outbound stream: what the upstream heard (or will)."""
    app = getattr(app_or_rig, "app", app_or_rig)
    return [json.loads(f["event"]) for _, f in app.redis.xrange(app.keys.outbound)]


def outbound_of(app_or_rig: Any, kind: str) -> list[dict[str, Any]]:
    return [e for e in outbound(app_or_rig) if e["type"] == kind]


def violations_after(rig: Rig, app: Any, published: list[dict[str, Any]], heard: list[dict[str, Any]]) -> list[Any]:
    """``provisioner verify``'s invariants over the rig's exchange, for ``app`` (a host after a loss) that was sent
    ``published``, the upstream having heard ``heard`` before the loss and the outbound stream since."""
    return check(
        [parse_event(e, None) for e in published],
        rig.state(),
        app.store.load,
        app.store.journal,
        naming=app.policy.naming,
        keyring=app.keyring,
        probe=rig.key_works,
        funding_caps=app.settings.funding_cap_per_customer,
        outbound=heard + outbound(app),
    )


def onboard_with_a_key(rig: Rig, customer: str) -> tuple[str, str]:
    ev = events_for(customer, funding=())
    ref, _ = rig.publish(ev["created"], ev["kyc"])
    rig.settle(ref)
    record = rig.record(ref)
    assert record.sub_account is not None and len(record.live_keys) == 1
    return ref, record.sub_account.uid


def set_faults(rig: Rig, endpoint: str, **rates: float) -> None:
    rig.exchange.update_config({"faults": {"per_endpoint": {endpoint: rates}}})


def snapshot_state(rig: Rig) -> dict[str, Any]:
    """Every key of the rig's prefix as Redis ``DUMP``s it: what a backup of this moment would restore."""
    r = rig.app.redis
    return {k: r.dump(k) for k in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000)}


def restore_state(rig: Rig, snapshot: dict[str, Any]) -> None:
    """Redis rolled back to ``snapshot``: the prefix's keys deleted, the snapshot's restored."""
    r = rig.app.redis
    for k in r.scan_iter(f"{rig.settings.key_prefix}:*", count=1000):
        r.delete(k)
    for k, value in snapshot.items():
        r.restore(k, 0, value, replace=True)


def stamped_now(rig: Rig, customer: str, name: str, funding: list[tuple[str, str]]) -> dict[str, Any]:
    """A top-up of ``customer`` whose ``occurred_at`` is the rig's present (``topup`` stamps a fixed minute)."""
    return {
        **topup(customer, name, 0, funding),
        "occurred_at": datetime.fromtimestamp(rig.clock(), tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def usdt_held(rig: Rig, uid: str) -> Decimal:
    """What sub-account ``uid`` holds of USDT, every wallet (the exchange's truth)."""
    sub = next(s for s in rig.state()["subAccounts"] if s["uid"] == uid)
    return sum((Decimal(rows.get("USDT", "0")) for rows in sub["balances"].values()), Decimal(0))


def slow_ledger_rig(redis_url: str, key_prefix: str, **settings: str) -> Rig:
    """The misconfiguration the README promises is never silent: an exchange that executes a repeated clientOid
    and lists its ledger 10 minutes late, while the worker is told ``unknown`` and a 60 s ledger lag; the Special
    Account holds 5 000 USDT. ``settings``: more worker settings (the caps)."""
    config = SandboxConfig.from_dict(
        {
            "duplicate_client_oid": "accept",
            "ledger_lag_ms": 600_000,
            "initial_balances": {"MAIN": {"USDT": "5000"}, "TRADE": {}},
        }
    )
    return Rig(
        redis_url,
        key_prefix,
        config=config,
        PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown",
        PROVISIONER_LEDGER_LAG_MS="60000",
        **settings,
    )
