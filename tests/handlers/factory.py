"""Builders for events and records in pure tests."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from handlers.events import Event, parse_event
from handlers.naming import Naming
from handlers.planner import Policy
from handlers.records import (
    CustomerRecord,
    KeyRecord,
    SealedSecret,
    SubAccountRecord,
    TransferPurpose,
    TransferRecord,
    TransferStatus,
)

NAMING = Naming("test-secret", prefix="nd")
POLICY = Policy(
    naming=NAMING,
    funding_caps={"USDT": Decimal("1000"), "BTC": Decimal("1")},
    key_max_age_ms=1_000_000,
    rotation_grace_ms=10_000,
    resolve_delay_ms=5_000,
)
CUSTOMER = "cust-1"
REF = NAMING.customer_ref(CUSTOMER)
UID = "226383154"


def at(minute: int) -> str:
    return f"2026-11-22T10:{minute:02d}:00Z"


def event(kind: str, eid: str, minute: int, customer: str = CUSTOMER, **data: Any) -> Event:
    return parse_event(
        {"id": eid, "type": kind, "customer_id": customer, "occurred_at": at(minute), "data": data}, None
    )


def created(eid: str = "e-created", minute: int = 0) -> Event:
    return event("customer.created", eid, minute)


def approved(
    eid: str = "e-kyc",
    minute: int = 1,
    ips: tuple[str, ...] = ("203.0.114.10",),
    permissions: tuple[str, ...] = ("general", "spot"),
    funding: tuple[tuple[str, str], ...] = (),
) -> Event:
    return event(
        "customer.kyc_approved",
        eid,
        minute,
        permissions=list(permissions),
        ip_whitelist=list(ips),
        funding=[{"currency": c, "amount": a} for c, a in funding],
    )


def ip_changed(eid: str, minute: int, *ips: str) -> Event:
    return event("customer.ip_changed", eid, minute, ip_whitelist=list(ips))


def rotation(eid: str, minute: int) -> Event:
    return event("customer.key_rotation_requested", eid, minute)


def offboarded(eid: str = "e-off", minute: int = 30) -> Event:
    return event("customer.offboarded", eid, minute)


def record(**update: Any) -> CustomerRecord:
    return CustomerRecord.new(REF, CUSTOMER).model_copy(update=update)


def with_sub(**update: Any) -> CustomerRecord:
    return record(sub_account=SubAccountRecord(uid=UID, account_name="nd0abc", created_at_ms=0), **update)


def key(
    generation: int = 0,
    *,
    created_at_ms: int = 0,
    ips: tuple[str, ...] = ("203.0.114.10",),
    permissions: tuple[str, ...] = ("general", "spot"),
    revoked: bool = False,
) -> KeyRecord:
    return KeyRecord(
        generation=generation,
        label=Naming.key_label(generation),
        api_key=f"key{generation}",
        permissions=permissions,
        ip_whitelist=ips,
        created_at_ms=created_at_ms,
        sealed=None if revoked else SealedSecret(key_id="k1", token="t"),
        revoked_at_ms=1 if revoked else None,
    )


def funded(
    key_: str,
    currency: str = "USDT",
    amount: str = "100",
    *,
    purpose: TransferPurpose = TransferPurpose.FUND,
    status: TransferStatus = TransferStatus.COMMITTED,
    wallet: str = "TRADE",
) -> TransferRecord:
    return TransferRecord(
        key=key_,
        purpose=purpose,
        client_oid="oid",
        currency=currency,
        amount=Decimal(amount),
        sub_wallet=wallet,
        status=status,
        at_ms=0,
    )
