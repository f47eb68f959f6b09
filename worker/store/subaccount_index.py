"""The recovery's index of the broker's sub-accounts (``{prefix}:recovery:accounts``: name → uid and creation),
read from one whole listing: ``provisioner recover`` takes it at the loss, and a customer's audit takes it again
once a sub-account too new to be listed then must be listed (``worker.provisioning.audit_steps``)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import redis

from handlers.naming import Naming
from worker.exchange.models import SubAccount
from worker.store.keys import Keys

__all__ = ["write_sub_account_index"]

_INDEX_CHUNK = 500
"""Sub-accounts written to the index per round trip."""
_STAGED_TTL_S = 3600
"""A listing staged by a reader that died before it was done goes after this long."""


def write_sub_account_index(
    sub_accounts: Iterable[SubAccount], client: redis.Redis, keys: Keys, naming: Naming, *, now_ms: int
) -> tuple[int, int, dict[str, str]]:
    """Replace the recovery index (name → uid and creation) with ``sub_accounts``, the whole listing read at
    ``now_ms`` (kept in ``recovery_accounts_at``), in one step: the listing is staged under a key of this reader's
    own (expiring, should it die half-way), so readers at once — two audits, a recovery run again — each replace the
    index with a whole listing, never with parts of two. Returns (listed, named like ours, uid → name)."""
    key = keys.recovery_accounts
    by_uid: dict[str, str] = {}
    staged = f"{key}:new:{uuid.uuid4().hex}"
    batch: dict[Any, Any] = {}
    ours = 0
    for sub in sub_accounts:
        by_uid[sub.uid] = sub.account_name
        ours += naming.is_account_name(sub.account_name)
        batch[sub.account_name] = json.dumps({"uid": sub.uid, "at": sub.created_at})
        if len(batch) >= _INDEX_CHUNK:
            _stage(client, staged, batch)
            batch = {}
    if batch:
        _stage(client, staged, batch)
    with client.pipeline(transaction=True) as pipe:
        if by_uid:
            pipe.rename(staged, key)
            pipe.persist(key)
        else:
            pipe.delete(key)
        pipe.set(keys.recovery_accounts_at, str(now_ms))
        pipe.execute()
    return len(by_uid), ours, by_uid


def _stage(client: redis.Redis, staged: str, batch: dict[Any, Any]) -> None:
    with client.pipeline(transaction=True) as pipe:
        pipe.hset(staged, mapping=batch)
        pipe.expire(staged, _STAGED_TTL_S)
        pipe.execute()
