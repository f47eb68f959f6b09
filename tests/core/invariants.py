"""Invariants of one customer over the simulator's state and our record (the test-side checker)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from handlers.journal import SETTLES_INTENT
from handlers.records import TransferStatus
from tests.core.harness import Rig


def check(
    rig: Rig,
    ref: str,
    *,
    offboarded: bool,
    funded: Decimal,
    credited: Decimal = Decimal(0),
    ips: list[str] | None = None,
) -> list[str]:
    """Return the violated invariants (empty = all hold)."""
    state = rig.state()
    record = rig.record(ref)
    problems: list[str] = []
    subs = [s for s in state["subAccounts"] if record.sub_account and s["uid"] == record.sub_account.uid]
    if len(state["subAccounts"]) != 1 or len(subs) != 1:
        problems.append(f"expected exactly one sub-account, exchange has {len(state['subAccounts'])}")
        return problems
    sub = subs[0]
    live = [k for k in state["apiKeys"] if k["deletedAt"] is None]
    recorded_live = {k.api_key: k for k in record.live_keys}
    for k in live:
        if k["apiKey"] not in recorded_live:
            problems.append(f"orphan key {k['apiKey']} ({k['label']}) live on the exchange, secret not held")
    for api_key, k in recorded_live.items():
        if api_key not in {x["apiKey"] for x in live}:
            problems.append(f"recorded key {api_key} is not live on the exchange")
        if k.sealed is None:
            problems.append(f"live key {api_key} has no sealed secret")
            continue
        held = rig.app.keyring.open(k.sealed)
        if not rig.key_works(api_key, held["secret"], held["passphrase"]):
            problems.append(f"held secret of {api_key} does not authenticate")
    if offboarded and live:
        problems.append(f"{len(live)} keys still live after offboarding")
    if not offboarded and len(live) != 1:
        problems.append(f"expected one live key, found {len(live)}")
    if ips is not None:
        for k in live:
            if sorted(k["ipWhitelist"]) != sorted(ips):
                problems.append(f"key {k['apiKey']} whitelist {k['ipWhitelist']} != {ips}")
    out = [t for t in state["transfers"] if t["direction"] == "OUT" and t["specialUid"] == sub["uid"]]
    if sum(Decimal(t["amount"]) for t in out) != funded:
        problems.append(f"funded {sum(Decimal(t['amount']) for t in out)} != {funded} ({len(out)} transfers)")
    if offboarded:
        swept = sum(
            Decimal(t["amount"]) for t in state["transfers"] if t["direction"] == "IN" and t["specialUid"] == sub["uid"]
        )
        if swept != funded + credited:
            problems.append(f"swept {swept} != funded {funded} + credited {credited}")
        leftovers = {w: v for w, rows in sub["balances"].items() for v in rows.values() if Decimal(v) != 0}
        if leftovers:
            problems.append(f"balances left after offboarding: {sub['balances']}")
        if record.closed_at_ms is None:
            problems.append("record not closed")
    if record.pending is not None:
        problems.append(f"intent still pending: {record.pending}")
    problems += _journal_accounts_for_writes(rig, ref, record)
    return problems


def _journal_accounts_for_writes(rig: Rig, ref: str, record: Any) -> list[str]:
    """Every intent in the journal is followed by an outcome for the same token."""
    journal = rig.app.store.journal(ref)
    open_tokens: dict[str, str] = {}
    for entry in journal:
        if entry["action"] == "intent":
            open_tokens[entry["token"]] = entry["kind"]
        elif entry["action"] in SETTLES_INTENT and open_tokens:
            open_tokens.popitem()
    committed = [t for t in record.transfers.values() if t.status is TransferStatus.COMMITTED]
    committed_entries = [e for e in journal if e["action"] == "transfer.committed"]
    problems = [f"journal: intent for {t} never settled" for t in open_tokens]
    if len(committed) != len(committed_entries):
        problems.append(f"journal has {len(committed_entries)} committed transfers, record {len(committed)}")
    return problems
