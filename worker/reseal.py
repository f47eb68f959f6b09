"""Re-sealing what is held at rest under the keyring's active key, so that an old key can be dropped.

``PROVISIONER_ENCRYPTION_KEYS`` seals with its first key and opens with any listed one. Rotating is: put the new
key first (every worker), run ``provisioner keys reseal``, and only when it reports nothing left under the old key,
remove the old key. Dropping a key that still seals something leaves those values unopenable: an issued key's
secret can no longer be verified, and held KYC documents block the customer's KYC step (``worker.provisioning
.kyc_steps``) until the key is put back or the approval is published again with its documents.

What is re-sealed, per customer (``{p}:customers``):

- the secret and passphrase of each key in the customer's record (``KeyRecord.sealed``): under the customer's
  lock, through the fenced commit, with a journal line ``keys.resealed`` (actor ``operator``);
- the KYC documents held for submission (``{p}:c:{ref}:docs``): under the same lock, each field replaced only if
  it still holds what was read (a compare-and-set).

Not re-sealed: event messages still queued or dead-lettered with documents sealed by the keyring before the edge
sealed them (``$sealed``, from before that upgrade); those were opened with any listed key, so keep the old key
until none is left.

The pass is resumable: its position (a ``ZSCAN`` cursor of ``{p}:customers``) and its counts are kept in
``{p}:reseal`` after every batch, so a pass that is stopped continues where it was; a pass for another active
key starts over. A customer that is busy (a reconcile holds its lock) is noted in ``{p}:reseal:busy`` and tried
again at the end. Re-sealing is idempotent: what is already under the active key is left alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

from handlers.journal import JournalAction
from handlers.records import CustomerRecord, SealedSecret
from worker.crypto import CryptoError, Keyring
from worker.ports import StorePorts
from worker.store.customers import CommitRejected, JournalEntry
from worker.store.lock import CustomerLock

__all__ = ["ResealPorts", "ResealProgress", "reseal", "reseal_record"]

_CAS_FIELD = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0
"""
_BUSY_TRIES = 5
"""How many times a busy customer is tried at the end of a pass (a reconcile holds a lock for seconds at most)."""


class ResealPorts(StorePorts, Protocol):
    """What a re-sealing pass reads and writes: the keyring, the customers' store, locks, held documents and due
    schedule, the clock. ``worker.bootstrap.App`` is one."""

    @property
    def keyring(self) -> Keyring: ...
    @property
    def clock(self) -> Callable[[], float]: ...


@dataclass
class ResealProgress:
    """Where a pass stands: customers looked at, what was re-sealed, and what could not be."""

    active: str
    total: int = 0
    """Customers known when the pass (or its latest resumption) began."""
    scanned: int = 0
    records: int = 0
    """Customer records rewritten."""
    keys: int = 0
    """API-key secrets re-sealed."""
    documents: int = 0
    """Held KYC documents re-sealed."""
    busy: list[str] = field(default_factory=list)
    """Customers still busy after the retries: run the command again."""
    unopenable: dict[str, list[str]] = field(default_factory=dict)
    """Customer ref → key ids it holds values under that the keyring does not have."""
    done: bool = False

    def line(self) -> str:
        """One line for a human (never a secret)."""
        return (
            f"{self.scanned}/{self.total} customers looked at; re-sealed under {self.active!r}: {self.keys} key "
            f"secrets in {self.records} records, {self.documents} KYC documents; {len(self.busy)} busy, "
            f"{len(self.unopenable)} with values under keys we no longer have"
        )


def reseal_record(record: CustomerRecord, keyring: Keyring) -> tuple[CustomerRecord, list[int], set[str]]:
    """The record with every key's sealed secret under ``keyring``'s active key: (new record, generations
    re-sealed, key ids of values that do not open). A value that does not open is left as it is."""
    missing: set[str] = set()
    resealed: list[int] = []
    keys = []
    for key in record.keys:
        sealed = key.sealed
        if sealed is not None and sealed.key_id != keyring.active:
            try:
                sealed = keyring.reseal(sealed)
                resealed.append(key.generation)
            except CryptoError:  # a key we no longer have (or a token that does not open): left as it is
                missing.add(sealed.key_id)
        keys.append(key if sealed is key.sealed else key.model_copy(update={"sealed": sealed}))
    if not resealed:
        return record, [], missing
    return record.model_copy(update={"keys": tuple(keys)}), resealed, missing


def reseal(
    app: ResealPorts,
    *,
    batch: int = 100,
    max_batches: int | None = None,
    on_progress: Callable[[ResealProgress], None] = lambda progress: None,
    sleep: Callable[[float], None] = time.sleep,
) -> ResealProgress:
    """Re-seal every customer's held values under ``app.keyring``'s active key, resuming a stopped pass.

    Calls ``on_progress`` after each batch of ``batch`` customers. With ``max_batches``, stops after that many
    (the pass is resumed by the next call). Returns the pass's progress; ``done`` once every customer was looked at
    and none is left busy (the saved position is then cleared). Raises ``StateLost`` when a record's commit finds
    Redis is not the state this process established (the pass stops there; its position is kept).
    """
    r, k = app.redis, app.keys
    saved = r.hgetall(k.reseal)
    progress = ResealProgress(active=app.keyring.active)
    cursor = 0
    if saved and saved.get("active") == app.keyring.active:
        restored = json.loads(saved["progress"])
        progress = ResealProgress(**{**restored, "busy": [], "done": False})
        cursor = int(saved["cursor"])
    else:
        r.delete(k.reseal, k.reseal_busy)
    progress.total = max(progress.total, int(r.zcard(k.customers)))
    cas = r.register_script(_CAS_FIELD)
    batches = 0
    while True:
        cursor, refs = r.zscan(k.customers, cursor, count=batch)
        for member, _ in refs:
            ref = str(member)
            if not _customer(app, ref, progress, cas):
                r.sadd(k.reseal_busy, ref)
            progress.scanned += 1
        r.hset(
            k.reseal, mapping={"progress": json.dumps(asdict(progress)), "active": progress.active, "cursor": cursor}
        )
        on_progress(progress)
        batches += 1
        if cursor == 0:
            break
        if max_batches is not None and batches >= max_batches:
            return progress
    for attempt in range(_BUSY_TRIES):
        for ref in sorted(str(m) for m in r.smembers(k.reseal_busy)):
            if _customer(app, ref, progress, cas):
                r.srem(k.reseal_busy, ref)
        if not r.scard(k.reseal_busy):
            break
        sleep(0.2 * (attempt + 1))
    progress.busy = sorted(str(m) for m in r.smembers(k.reseal_busy))
    progress.done = not progress.busy
    if progress.done:
        r.delete(k.reseal, k.reseal_busy)
    on_progress(progress)
    return progress


def _customer(app: ResealPorts, ref: str, progress: ResealProgress, cas: Callable[..., int]) -> bool:
    """Re-seal one customer's record and held documents under its lock. Returns False when it is busy."""
    lock = CustomerLock(app.redis, app.keys, ref, ttl_ms=app.settings.lock_ttl_ms)
    if not lock.acquire():
        return False
    try:
        missing: set[str] = set()
        record = app.store.load(ref)
        if record is not None:
            new, generations, missing = reseal_record(record, app.keyring)
            if generations:
                now = int(app.clock() * 1000)
                assert lock.token is not None
                try:
                    committed = app.store.commit(
                        lock.token,
                        record,
                        new,
                        journal=[
                            JournalEntry(
                                now,
                                JournalAction.KEYS_RESEALED,
                                {
                                    "generations": generations,
                                    "from": sorted({k.sealed.key_id for k in record.keys if k.sealed is not None}),
                                    "to": app.keyring.active,
                                },
                                actor="operator",
                            )
                        ],
                        now_ms=now,
                    )
                except CommitRejected:
                    return False
                if committed.dirty:  # a run found it busy meanwhile: let it look again now
                    app.due.schedule(ref, now)
                progress.records += 1
                progress.keys += len(generations)
        missing |= _documents(app, ref, progress, cas)
        if missing:
            progress.unopenable[ref] = sorted(missing | set(progress.unopenable.get(ref, [])))
        return True
    finally:
        lock.release()


def _documents(app: ResealPorts, ref: str, progress: ResealProgress, cas: Callable[..., int]) -> set[str]:
    """Re-seal the KYC documents held for ``ref``; returns the key ids the keyring lacks."""
    key = app.keys.docs(ref)
    missing: set[str] = set()
    for event_id, raw in app.redis.hgetall(key).items():
        sealed = SealedSecret.model_validate_json(raw)
        if sealed.key_id == app.keyring.active:
            continue
        try:
            fresh = app.keyring.reseal(sealed)
        except CryptoError:
            missing.add(sealed.key_id)
            continue
        if cas(keys=[key], args=[event_id, raw, fresh.model_dump_json()]):
            progress.documents += 1
    return missing
