"""Reading the upstream's view of a customer (``GET /v1/customers/{customer_id}``): the shell around
``handlers.customer_view``. Reads only; needs the name secret (customer refs) and Redis, nothing sealed."""

from __future__ import annotations

import json
from typing import Any

from handlers.customer_view import CustomerView, LastChange, customer_view
from handlers.desired import DesiredState, fold
from handlers.naming import Naming
from worker.runtime.admission import awaiting_admitted
from worker.store.customers import CustomerStore
from worker.store.ledger import FundingLedger
from worker.store.recovery_marks import undeclared_since

__all__ = ["read_customer_view"]


def read_customer_view(store: CustomerStore, naming: Naming, customer_id: str) -> CustomerView | None:
    """The customer's view, or ``None`` when nothing of it is known: never accepted, or accepted at the edge with
    every such message gone unstored (a dead letter purged or expired: a re-send is accepted again). A customer
    whose events were admitted at the edge, are still held, and are not yet stored by a worker shows as
    ``received``. Raises ``redis.RedisError``."""
    ref = naming.customer_ref(customer_id)
    snapshot = store.snapshot(ref)
    if not snapshot.events and snapshot.record is None:
        if not awaiting_admitted(store.redis, store.keys, ref):
            return None
        return customer_view(customer_id, DesiredState.empty(), None, None)
    desired = fold(snapshot.events, documents_held=snapshot.documents)
    declared = True
    if snapshot.record is not None and snapshot.record.recovered_at_ms is not None:
        at = store.redis.get(store.keys.recovery_republished_at)
        declared = at is not None and int(at) >= snapshot.record.recovered_at_ms
    caps_counted = FundingLedger(store.redis, store.keys).reseed_due() is None
    unplaced = snapshot.record is None or snapshot.record.sub_account is None
    recovery_open = unplaced and undeclared_since(store.redis, store.keys) is not None
    return customer_view(
        customer_id,
        desired,
        snapshot.record,
        _last_change(store, ref),
        republication_declared=declared,
        caps_counted=caps_counted,
        recovery_open=recovery_open,
    )


def _last_change(store: CustomerStore, ref: str) -> LastChange | None:
    rows: Any = store.redis.xrevrange(store.keys.journal(ref), count=1)
    if not rows:
        return None
    entry = json.loads(rows[0][1]["entry"])
    return LastChange(at_ms=int(entry.get("at_ms", 0)), action=str(entry.get("action", "")))
