"""The invariant checker: what the events asked for, against what the exchange (the simulator) and our records
hold. Behind ``provisioner verify`` and the chaos run.

Per customer of the published events:

- exactly one sub-account, among the names derived for it, recorded by us (none if it was never created;
  at most one if it was offboarded, none if the offboarding came before its creation was processed);
- the live keys on the exchange are exactly the recorded live keys; none after offboarding; otherwise one, with
  the newest permissions and IP whitelist, of the expected generation;
- every live key's secret is held, sealed, opens with our keys, and authenticates at the exchange as that key
  (so it is the secret the exchange issued); no live key without a held secret;
- each funding line (of approvals and top-ups) was transferred exactly once (or refused — by a cap, the
  offboarding, an adoption or an operator — and then not at all), never above the per-customer cap, nor, all
  customers together, above the Special Account's daily cap on any day the exchange executed them; nothing else
  was transferred to the sub-account; sweeps returned everything. A transfer the exchange reports FAILURE moved
  nothing and is not counted; a line's transfers are looked for under the clientOids of every attempt, since
  the record of how often an operator retried it can be lost with the state;
- offboarded customers hold no balance and their record is closed;
- no intent is left unsettled; the journal has an entry for every committed transfer, issued and revoked key,
  and every intent it records was settled (a key found on the exchange by the audit after a state loss was
  issued before the loss: its issuance is not in the new journal);
- the upstream was told the truth (given the outbound events it received): ``funding.completed`` for a line
  iff a transfer for that line exists on the exchange, under at most one event id, with the line's amount; no
  ``funding.refused`` for a line that was paid (unless a retry took the refusal back and ``funding.completed``
  followed it, ``handlers.refusals``); ``funding.refused`` for every line the record refuses; once the customer
  is closed, one of the two for every line of an event taken before the close;
- an adopted sub-account (``provisioner recover --adopt``) is the customer's one sub-account; transfers an older
  system made to it before the adoption are not ours to account for;
- across customers: no sub-account with one of our names that we do not know, and every dead letter has a
  reason.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from handlers import steps
from handlers.desired import DesiredState, fold
from handlers.events import Event, EventRejected, parse_event
from handlers.journal import SETTLES_INTENT
from handlers.naming import Naming
from handlers.records import CustomerRecord, TransferPurpose, TransferStatus
from worker.crypto import CryptoError, Keyring

__all__ = ["Violation", "check", "read_events"]

KeyProbe = Callable[[str, str, str], bool]
"""(api key, secret, passphrase) → whether the exchange accepts a request signed with them."""

MAX_FUNDING_ATTEMPTS = 20
"""ClientOid attempts of a funding line looked for on the exchange (an operator's retry moves to the next one)."""
AUDIT_REVOKE_REASON = "no longer on the exchange"
"""How the audit after a state loss marks a recorded key the exchange no longer has (no revocation of ours)."""


@dataclass(frozen=True)
class Violation:
    customer: str
    invariant: str
    detail: str

    def as_row(self) -> tuple[str, str, str]:
        return self.customer, self.invariant, self.detail


def read_events(lines: Iterable[str]) -> list[Event]:
    """The valid events among published JSON Lines (refused lines are ignored: they asked for nothing)."""
    events = []
    for line in lines:
        if line.strip():
            try:
                events.append(parse_event(line.strip(), None))
            except EventRejected:
                continue
    return events


def check(
    events: Iterable[Event],
    state: Mapping[str, Any],
    records: Callable[[str], CustomerRecord | None],
    journal: Callable[[str], list[dict[str, Any]]],
    *,
    naming: Naming,
    keyring: Keyring,
    probe: KeyProbe,
    funding_caps: Mapping[str, Decimal],
    dead_letters: Iterable[Mapping[str, Any]] = (),
    outbound: Iterable[Mapping[str, Any]] | None = None,
    daily_caps: Mapping[str, Decimal] | None = None,
) -> list[Violation]:
    """Every violated invariant (an empty list means all hold). ``outbound``: the events the upstream received
    from ``{prefix}:outbound`` (all of them, across a loss of the stream); ``None`` skips what it was told.
    ``daily_caps``: the Special Account's cap per currency and UTC day (``PROVISIONER_FUNDING_CAP_PER_DAY``):
    what the funding lines' transfers moved on each day the exchange executed them stays within it (``None``
    skips it)."""
    by_customer: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        by_customer[event.customer_id].append(event)
    told: dict[str, list[Mapping[str, Any]]] | None = None
    ignored: dict[str, set[str]] = defaultdict(set)
    if outbound is not None:
        told = defaultdict(list)
        for sent in outbound:
            if sent.get("type") in ("funding.completed", "funding.refused"):
                told[str(sent.get("customer_ref"))].append(sent)
            elif sent.get("type") == "event.ignored":  # reached a closed customer: no verdict on its lines
                ignored[str(sent.get("customer_ref"))].add(str(sent.get("event_id")))
    subs_by_name = {s["accountName"]: s for s in state["subAccounts"]}
    subs_by_uid = {s["uid"]: s for s in state["subAccounts"]}
    keys_by_uid: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for key in state["apiKeys"]:
        keys_by_uid[key["uid"]].append(key)
    transfers_by_uid: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for transfer in state["transfers"]:
        transfers_by_uid[transfer["specialUid"]].append(transfer)

    violations: list[Violation] = []
    ours: set[str] = set()
    by_day: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for customer, evs in sorted(by_customer.items()):
        names = naming.account_names(customer)
        ours |= names
        v = _Customer(
            customer,
            fold(evs),
            records(naming.customer_ref(customer)),
            names,
            subs_by_name,
            subs_by_uid,
            keys_by_uid,
            transfers_by_uid,
            keyring,
            probe,
            funding_caps,
            journal,
            naming,
            None if told is None else told.get(naming.customer_ref(customer), []),
            by_day=by_day,
            ignored=frozenset(ignored.get(naming.customer_ref(customer), ())),
        )
        violations += v.check()
    for (day, currency), total in sorted(by_day.items()):
        cap = None if daily_caps is None else daily_caps.get(currency)
        if cap is not None and total > cap:
            violations.append(Violation("-", "none above the daily caps", f"{day}: {total} {currency} > {cap}"))
    prefix_len = len(naming.account_name("x", 0)) - 17
    prefix = naming.account_name("x", 0)[:prefix_len]
    for name in subs_by_name:
        if name.startswith(prefix) and len(name) == prefix_len + 17 and name not in ours:
            violations.append(Violation("-", "no stray sub-account", f"{name} is ours by shape, not by any event"))
    for letter in dead_letters:
        reason = str(letter.get("reason") or "")
        if not reason or reason == "no reason recorded":
            violations.append(Violation("-", "dead letters have a reason", f"{letter.get('id')} has none"))
    return violations


@dataclass
class _Customer:
    customer: str
    desired: DesiredState
    record: CustomerRecord | None
    names: set[str]
    subs_by_name: Mapping[str, Mapping[str, Any]]
    subs_by_uid: Mapping[str, Mapping[str, Any]]
    keys_by_uid: Mapping[str, list[Mapping[str, Any]]]
    transfers_by_uid: Mapping[str, list[Mapping[str, Any]]]
    keyring: Keyring
    probe: KeyProbe
    caps: Mapping[str, Decimal]
    journal: Callable[[str], list[dict[str, Any]]]
    naming: Naming
    told: list[Mapping[str, Any]] | None
    paid: set[str] = field(default_factory=set)
    """Funding lines with a transfer on the exchange (filled by ``_money``)."""
    by_day: dict[tuple[str, str], Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    """What funding lines' transfers moved, by (UTC day of execution, currency), shared across customers."""
    ignored: frozenset[str] = frozenset()
    """Events the upstream was told ``event.ignored`` (they reached the customer closed)."""

    def fail(self, invariant: str, detail: str) -> Violation:
        return Violation(self.customer, invariant, detail)

    def check(self) -> list[Violation]:
        out = self._state()
        return out + self._told()

    def _state(self) -> list[Violation]:
        subs = [self.subs_by_name[n] for n in self.names if n in self.subs_by_name]
        d, record = self.desired, self.record
        adopted = record.sub_account if record is not None and record.adopted_at_ms is not None else None
        if adopted is not None and adopted.uid in self.subs_by_uid and adopted.account_name not in self.names:
            subs.append(self.subs_by_uid[adopted.uid])
        if not d.created and adopted is None:
            return [self.fail("none for customers never created", f"{len(subs)} sub-account(s)")] if subs else []
        if len(subs) > 1:
            return [self.fail("exactly one sub-account", f"{len(subs)}: {[s['uid'] for s in subs]}")]
        if record is None:
            return [self.fail("recorded", "no record for a created customer")]
        out: list[Violation] = []
        if record.pending is not None:
            out.append(self.fail("no unsettled intent", f"{record.pending.kind} {record.pending.token}"))
        if not subs:
            if not (d.offboarded and record.sub_account is None):
                out.append(self.fail("exactly one sub-account", "none on the exchange"))
            return out + self._closed_if_offboarded()
        sub = subs[0]
        if record.sub_account is None or record.sub_account.uid != sub["uid"]:
            out.append(
                self.fail(
                    "exactly one sub-account",
                    f"exchange has {sub['uid']}, record says {record.sub_account.uid if record.sub_account else None}",
                )
            )
        out += self._keys(sub["uid"]) + self._money(sub) + self._journal() + self._closed_if_offboarded()
        return out

    def _closed_if_offboarded(self) -> list[Violation]:
        if self.desired.offboarded and (self.record is None or self.record.closed_at_ms is None):
            return [self.fail("offboarded record closed", "not closed")]
        return []

    def _keys(self, uid: str) -> list[Violation]:
        assert self.record is not None
        out = []
        live = {k["apiKey"]: k for k in self.keys_by_uid.get(uid, []) if k.get("deletedAt") is None}
        recorded = {k.api_key: k for k in self.record.live_keys}
        for api_key in live.keys() - recorded.keys():
            out.append(self.fail("no key without a held secret", f"orphan key {api_key} ({live[api_key]['label']})"))
        for api_key in recorded.keys() - live.keys():
            out.append(self.fail("recorded keys are live", f"{api_key} recorded live, not on the exchange"))
        if self.desired.offboarded:
            if live:
                out.append(self.fail("no keys after offboarding", f"{len(live)} live"))
            return out
        access = self.desired.access
        if access is None:
            if live:
                out.append(self.fail("no key before KYC approval", f"{len(live)} live"))
            return out
        if len(live) != 1:
            out.append(self.fail("exactly the keys asked for", f"{len(live)} live keys, expected 1"))
        generation = self.desired.requested_rotations + self.record.age_rotations
        for api_key, key in live.items():
            if sorted(p.lower() for p in key["permissions"]) != sorted(access.permissions):
                out.append(self.fail("permissions as asked", f"{api_key}: {key['permissions']}"))
            if sorted(key["ipWhitelist"]) != sorted(access.ip_whitelist):
                out.append(
                    self.fail("newest IP whitelist", f"{api_key}: {key['ipWhitelist']} != {list(access.ip_whitelist)}")
                )
            if key["label"] != self.naming.key_label(generation):
                out.append(self.fail("rotation done", f"{api_key} is {key['label']}, expected generation {generation}"))
            held = recorded.get(api_key)
            if held is None:
                continue
            if held.sealed is None:
                out.append(self.fail("secret held", f"{api_key} has no sealed secret"))
                continue
            try:
                opened = self.keyring.open(held.sealed)
            except CryptoError as exc:
                out.append(self.fail("secret decrypts", f"{api_key}: {exc}"))
                continue
            if not self.probe(api_key, str(opened.get("secret")), str(opened.get("passphrase"))):
                out.append(self.fail("secret is what the exchange issued", f"{api_key} does not authenticate"))
        return out

    def _money(self, sub: Mapping[str, Any]) -> list[Violation]:
        assert self.record is not None
        out = []
        transfers = self.transfers_by_uid.get(sub["uid"], [])
        adopted_ms = self.record.adopted_at_ms
        outs = [
            t
            for t in transfers
            if t["direction"] == "OUT"
            and t["status"] != "FAILURE"
            and (adopted_ms is None or int(t["createdAt"]) >= adopted_ms)  # before it: the older system's
        ]
        by_oid = defaultdict(list)
        for t in outs:
            by_oid[t["clientOid"]].append(t)
        accounted: set[str] = set()
        funded: dict[str, Decimal] = defaultdict(Decimal)
        for line in self.desired.funding:
            attempts = max(self.record.retry_counts.get(steps.fund(line.key), 0) + 1, MAX_FUNDING_ATTEMPTS)
            oids = {self.naming.funding_client_oid(self.record.ref, line.key, a) for a in range(attempts)}
            done = [t for oid in oids for t in by_oid.get(oid, [])]
            accounted |= oids
            for t in done:  # whatever its verdict, it took room on the Special Account's day
                self.by_day[(_utc_day(int(t["createdAt"])), t["currency"])] += Decimal(t["amount"])
            if done:
                self.paid.add(line.key)
            mark = self.record.transfers.get(line.key)
            if mark is not None and mark.status is TransferStatus.REFUSED:
                if done:
                    out.append(self.fail("refused funding never sent", f"{line.key}: {len(done)} transfer(s)"))
                    for t in done:  # paid all the same: it counts against the cap
                        funded[t["currency"]] += Decimal(t["amount"])
                continue
            if self.desired.offboarded and mark is None and not done:
                continue  # offboarding came first: the line was rightly never funded
            if len(done) != 1:
                out.append(self.fail("each funding line exactly once", f"{line.key}: {len(done)} transfers"))
            for t in done:
                funded[t["currency"]] += Decimal(t["amount"])
                if Decimal(t["amount"]) != line.amount:
                    out.append(self.fail("amount as asked", f"{line.key}: {t['amount']} != {line.amount}"))
        stray = [t for t in outs if t["clientOid"] not in accounted]
        if stray:
            out.append(self.fail("nothing else transferred", f"{len(stray)} transfer(s) no event asked for"))
        for currency, total in funded.items():
            cap = self.caps.get(currency)
            if cap is not None and total > cap:
                out.append(self.fail("none above the caps", f"{total} {currency} > {cap}"))
        if self.desired.offboarded:
            left = {f"{w}:{c}": v for w, rows in sub["balances"].items() for c, v in rows.items() if Decimal(v) != 0}
            if left:
                out.append(self.fail("offboarded customers hold no balance", json.dumps(left)))
        return out

    def _journal(self) -> list[Violation]:
        assert self.record is not None
        entries = self.journal(self.record.ref)
        actions: dict[str, int] = defaultdict(int)
        for entry in entries:
            actions[str(entry.get("action"))] += 1
        out = []
        committed = sum(1 for t in self.record.transfers.values() if t.status is TransferStatus.COMMITTED)
        sweeps = sum(
            1
            for t in self.record.transfers.values()
            if t.status is TransferStatus.COMMITTED and t.purpose is TransferPurpose.SWEEP
        )
        if actions["transfer.committed"] < committed:
            out.append(
                self.fail(
                    "journal accounts for every write",
                    f"{committed} committed transfers ({sweeps} sweeps), "
                    f"{actions['transfer.committed']} in the journal",
                )
            )
        found = {str(k) for e in entries if e.get("action") == "audited" for k in e.get("keys_without_secret") or ()}
        ours = [k for k in self.record.keys if k.api_key not in found]
        if actions["api_key.issued"] < len(ours):
            out.append(
                self.fail(
                    "journal accounts for every write",
                    f"{len(ours)} keys issued by us, {actions['api_key.issued']} issued in the journal",
                )
            )
        revoked = sum(1 for k in self.record.keys if not k.live and k.revoke_reason != AUDIT_REVOKE_REASON)
        if actions["api_key.revoked"] < revoked:
            out.append(
                self.fail(
                    "journal accounts for every write",
                    f"{revoked} revoked keys, {actions['api_key.revoked']} in the journal",
                )
            )
        settled = sum(actions[a] for a in SETTLES_INTENT)
        if actions["intent"] > settled + actions["outcome_unknown"] + actions["orphan_keys_pending"]:
            out.append(self.fail("journal accounts for every write", f"{actions['intent']} intents, {settled} settled"))
        return out

    def _told(self) -> list[Violation]:
        """What the upstream heard of each funding line matches the exchange and our record."""
        if self.told is None:
            return []
        lines = {line.key: line for line in self.desired.funding}
        completed: dict[str, set[str]] = defaultdict(set)
        refused: set[str] = set()
        last: dict[str, str] = {}
        out = []
        for sent in self.told:
            key = str(sent.get("key"))
            line = lines.get(key)
            if line is None:
                out.append(self.fail("the upstream was told the truth", f"{sent.get('type')} for unknown line {key}"))
                continue
            last[key] = str(sent.get("type"))
            if sent.get("type") == "funding.refused":
                refused.add(key)
                continue
            completed[key].add(str(sent.get("id")))
            if Decimal(str(sent.get("amount"))) != line.amount or sent.get("currency") != line.currency:
                out.append(
                    self.fail(
                        "the upstream was told the truth",
                        f"{key}: told {sent.get('amount')} {sent.get('currency')}, asked {line.amount} {line.currency}",
                    )
                )
        for key, line in lines.items():
            if (key in completed) != (key in self.paid):
                told = "told funding.completed" if key in completed else "not told funding.completed"
                exists = "a transfer exists" if key in self.paid else "no transfer exists"
                out.append(self.fail("the upstream was told the truth", f"{key}: {told}, {exists}"))
            if len(completed.get(key, ())) > 1:
                out.append(self.fail("one funding.completed per line", f"{key}: ids {sorted(completed[key])}"))
            redecided = self.record is not None and self.record.redecided.get(key, 0) > 0
            if key in refused and key in self.paid and not (redecided and last.get(key) == "funding.completed"):
                # a refusal a retry took back is superseded by the funding.completed that followed it
                out.append(self.fail("the upstream was told the truth", f"{key}: told funding.refused, but paid"))
            mark = self.record.transfers.get(key) if self.record is not None else None
            if mark is not None and mark.status is TransferStatus.REFUSED and key not in refused:
                out.append(self.fail("the upstream was told the truth", f"{key}: refused, never told funding.refused"))
            if self._taken_before_close(line.event_id) and key not in completed and key not in refused:
                out.append(self.fail("every line of a closed customer has a verdict", f"{key}: never told"))
        return out

    def _taken_before_close(self, event_id: str) -> bool:
        """Whether the customer is closed and the event was taken before the close (one that reached it after, even
        during the closing run, is reported ``event.ignored`` instead of a verdict on each of its lines)."""
        record = self.record
        if record is None or record.closed_at_ms is None:
            return False
        return event_id in record.events_at_close and event_id not in self.ignored


def _utc_day(ms: int) -> str:
    """``YYYY-MM-DD`` of a time in ms since the epoch, UTC."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
