"""The simulated exchange's domain state: accounts, balances, API keys, transfers, KYC, deposits.

Pure Python, no I/O and no clock: every time is passed in as epoch milliseconds, every identifier comes from a
seeded ``IdFactory``. Not thread-safe by itself; ``Exchange`` holds one lock around every use. Amounts are
``Decimal`` built from strings; a balance never goes below zero (``BusinessError``-style ``ApiError``).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.config import WALLETS
from sandbox.errors import business

__all__ = [
    "Account",
    "ApiKeyRecord",
    "ExchangeState",
    "IdFactory",
    "KycRecord",
    "RebateJob",
    "SubAccount",
    "TransferRecord",
    "fmt_amount",
]

INSUFFICIENT_BALANCE = "account.available.amount"
"""Message of the insufficient-balance error (code 400100), as ccxt maps KuCoin's transfer failures (facts §3.3)."""


def fmt_amount(value: Decimal) -> str:
    """Canonical decimal string without exponent or trailing zeros (``Decimal("1.50")`` -> ``"1.5"``)."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


class IdFactory:
    """Seeded identifiers in KuCoin's formats: 9-digit uids, 24-hex ObjectIds, UUID-like secrets."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"sandbox-ids:{seed}")

    def uid(self, taken: Iterable[str]) -> str:
        used = set(taken)
        while True:
            candidate = str(self._rng.randint(100_000_000, 999_999_999))
            if candidate not in used:
                return candidate

    def object_id(self, now_ms: int) -> str:
        """ObjectId-like: 8 hex digits of epoch seconds, then 16 random hex digits."""
        return f"{(now_ms // 1000) & 0xFFFFFFFF:08x}{self._rng.getrandbits(64):016x}"

    def secret(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def hex(self, digits: int) -> str:
        return f"{self._rng.getrandbits(digits * 4):0{digits}x}"


@dataclass(kw_only=True)
class Account:
    """An account (the broker's Special Account or a sub-account) with wallets MAIN and TRADE."""

    uid: str
    balances: dict[str, dict[str, Decimal]] = field(default_factory=lambda: {w: {} for w in WALLETS})

    def available(self, wallet: str, currency: str) -> Decimal:
        return self.balances[wallet].get(currency, Decimal(0))

    def adjust(self, wallet: str, currency: str, delta: Decimal) -> Decimal:
        """Add ``delta`` (may be negative); raises 400100 ``account.available.amount`` below zero."""
        new = self.available(wallet, currency) + delta
        if new < 0:
            raise business(INSUFFICIENT_BALANCE)
        self.balances[wallet][currency] = new
        return new

    def balances_json(self) -> dict[str, dict[str, str]]:
        return {w: {c: fmt_amount(a) for c, a in sorted(self.balances[w].items())} for w in WALLETS}


@dataclass(kw_only=True)
class SubAccount(Account):
    account_name: str
    created_at: int
    level: int = 0


@dataclass(kw_only=True)
class ApiKeyRecord:
    """An API key issued by Add SubAccount API. ``secret`` and ``passphrase`` never leave the exchange except
    the secret once, in the Add response. ``permissions`` are stored capitalised (``"General"``)."""

    uid: str
    api_key: str
    secret: str
    passphrase: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]
    created_at: int
    deleted_at: int | None = None

    @property
    def live(self) -> bool:
        return self.deleted_at is None


@dataclass(kw_only=True)
class TransferRecord:
    """One ND transfer. OUT moves (broker, account_type) -> (special_uid, special_account_type); IN reverses."""

    order_id: str
    client_oid: str
    currency: str
    amount: Decimal
    direction: str
    account_type: str
    special_uid: str
    special_account_type: str
    broker_uid: str
    created_at: int
    settles_at: int

    def status(self, now_ms: int) -> str:
        """PROCESSING until ``settles_at`` (switch ``transfer_processing_ms``), then SUCCESS."""
        return "PROCESSING" if now_ms < self.settles_at else "SUCCESS"

    @property
    def source(self) -> tuple[str, str]:
        if self.direction == "OUT":
            return self.broker_uid, self.account_type
        return self.special_uid, self.special_account_type

    @property
    def target(self) -> tuple[str, str]:
        if self.direction == "OUT":
            return self.special_uid, self.special_account_type
        return self.broker_uid, self.account_type

    def same_request(self, other: Mapping[str, Any]) -> bool:
        """Whether a repeated request (same clientOid) carries the same parameters."""
        return bool(
            self.currency == other["currency"]
            and self.amount == other["amount"]
            and self.direction == other["direction"]
            and self.account_type == other["account_type"]
            and self.special_uid == other["special_uid"]
            and self.special_account_type == other["special_account_type"]
        )


@dataclass(kw_only=True)
class KycRecord:
    """Proxy-KYC state of one sub-account: PROCESS until ``decides_at``, then ``outcome`` (PASS or REJECT)."""

    client_uid: str
    submitted_at: int
    decides_at: int
    outcome: str
    reject_reason: str | None
    attempts: int = 1

    def status(self, now_ms: int) -> str:
        return "PROCESS" if now_ms < self.decides_at else self.outcome

    def reason(self, now_ms: int) -> str | None:
        return self.reject_reason if self.status(now_ms) == "REJECT" else None


@dataclass(frozen=True)
class RebateJob:
    """A Get Broker Rebate request whose CSV is served at ``/sandbox/v1/rebate/<token>.csv`` for one day."""

    token: str
    begin: str
    end: str
    trade_type: str
    created_at: int


class ExchangeState:
    """All mutable state of one simulated exchange (one broker)."""

    def __init__(self, *, broker_uid: str, initial_balances: Mapping[str, Mapping[str, str]], seed: int) -> None:
        self.ids = IdFactory(seed)
        self.seed = seed
        self.broker = Account(uid=broker_uid)
        for wallet, amounts in initial_balances.items():
            for currency, amount in amounts.items():
                self.broker.balances[wallet][currency] = Decimal(amount)
        self.subaccounts: dict[str, SubAccount] = {}
        self._names: set[str] = set()
        self.api_keys: dict[str, ApiKeyRecord] = {}
        self._keys_by_uid: dict[str, list[ApiKeyRecord]] = {}
        self.transfers: dict[str, TransferRecord] = {}
        self._by_client_oid: dict[str, list[TransferRecord]] = {}
        self.kyc: dict[str, KycRecord] = {}
        self.deposits: list[dict[str, Any]] = []
        self.rebates: dict[str, RebateJob] = {}

    # --- accounts -------------------------------------------------------------------------------------------

    def account(self, uid: str) -> Account | None:
        """The broker's Special Account or one of its sub-accounts, by uid."""
        if uid == self.broker.uid:
            return self.broker
        return self.subaccounts.get(uid)

    def name_in_use(self, name: str) -> bool:
        """Whether one of our sub-accounts already has this name (compared case-insensitively)."""
        return name.casefold() in self._names

    def add_subaccount(self, name: str, now_ms: int) -> SubAccount:
        uid = self.ids.uid([self.broker.uid, *self.subaccounts])
        sub = SubAccount(uid=uid, account_name=name, created_at=now_ms)
        self.subaccounts[uid] = sub
        self._names.add(name.casefold())
        return sub

    # --- API keys -------------------------------------------------------------------------------------------

    def live_keys(self, uid: str) -> list[ApiKeyRecord]:
        return [k for k in self._keys_by_uid.get(uid, ()) if k.live]

    def issue_key(
        self,
        *,
        uid: str,
        passphrase: str,
        label: str,
        permissions: list[str],
        ip_whitelist: list[str],
        now_ms: int,
    ) -> ApiKeyRecord:
        record = ApiKeyRecord(
            uid=uid,
            api_key=self.ids.object_id(now_ms),
            secret=self.ids.secret(),
            passphrase=passphrase,
            label=label,
            permissions=permissions,
            ip_whitelist=ip_whitelist,
            created_at=now_ms,
        )
        self.api_keys[record.api_key] = record
        self._keys_by_uid.setdefault(uid, []).append(record)
        return record

    def live_key(self, uid: str, api_key: str) -> ApiKeyRecord | None:
        record = self.api_keys.get(api_key)
        if record is None or record.uid != uid or not record.live:
            return None
        return record

    # --- funds ----------------------------------------------------------------------------------------------

    def transfers_with_client_oid(self, client_oid: str) -> list[TransferRecord]:
        return list(self._by_client_oid.get(client_oid, ()))

    def transfer(
        self,
        *,
        client_oid: str,
        currency: str,
        amount: Decimal,
        direction: str,
        account_type: str,
        special_uid: str,
        special_account_type: str,
        now_ms: int,
        processing_ms: int,
    ) -> TransferRecord:
        """Move the funds at once (all or nothing) and record the transfer; raises 400100
        ``account.available.amount`` when the source wallet holds less than ``amount``."""
        record = TransferRecord(
            order_id=self.ids.object_id(now_ms),
            client_oid=client_oid,
            currency=currency,
            amount=amount,
            direction=direction,
            account_type=account_type,
            special_uid=special_uid,
            special_account_type=special_account_type,
            broker_uid=self.broker.uid,
            created_at=now_ms,
            settles_at=now_ms + processing_ms,
        )
        source_uid, source_wallet = record.source
        target_uid, target_wallet = record.target
        source, target = self.account(source_uid), self.account(target_uid)
        assert source is not None and target is not None
        source.adjust(source_wallet, currency, -amount)
        target.adjust(target_wallet, currency, amount)
        self.transfers[record.order_id] = record
        self._by_client_oid.setdefault(client_oid, []).append(record)
        return record

    def credit(self, uid: str, currency: str, wallet: str, amount: Decimal, *, now_ms: int, deposit: bool) -> Decimal:
        """Add ``amount`` (negative for a loss) to a wallet; with ``deposit`` also record an on-chain deposit
        that the deposit read endpoints return. Returns the new balance."""
        account = self.account(uid)
        if account is None:
            raise business(f"uid {uid} is neither the broker nor one of its sub-accounts")
        balance = account.adjust(wallet, currency, amount)
        if deposit:
            tx_hash = self.ids.hex(64)
            self.deposits.append(
                {
                    "uid": int(uid),
                    "hash": tx_hash,
                    "address": f"sandbox-{uid}-{currency.lower()}",
                    "memo": "",
                    "amount": fmt_amount(amount),
                    "fee": "0",
                    "currency": currency,
                    "isInner": False,
                    "walletTxId": f"{tx_hash}@sandbox",
                    "status": "SUCCESS",
                    "remark": "",
                    "chain": "sandbox",
                    "createdAt": now_ms,
                    "updatedAt": now_ms,
                }
            )
        return balance

    # --- KYC ------------------------------------------------------------------------------------------------

    def submit_kyc(self, uid: str, *, now_ms: int, review_ms: int, reject_reason: str | None) -> KycRecord:
        previous = self.kyc.get(uid)
        record = KycRecord(
            client_uid=uid,
            submitted_at=now_ms,
            decides_at=now_ms + review_ms,
            outcome="REJECT" if reject_reason else "PASS",
            reject_reason=reject_reason,
            attempts=previous.attempts + 1 if previous else 1,
        )
        self.kyc[uid] = record
        return record

    def kyc_status(self, uid: str, now_ms: int) -> tuple[str, str | None]:
        record = self.kyc.get(uid)
        if record is None:
            return "NONE", None
        return record.status(now_ms), record.reason(now_ms)


def seeded_fraction(seed: int, *parts: object) -> float:
    """A deterministic number in [0, 1) from the seed and ``parts`` (for shares such as taken names)."""
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
