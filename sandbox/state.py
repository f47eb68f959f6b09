"""The simulated exchange's domain state: accounts, balances, API keys, transfers, KYC, deposits, ledgers.

Pure Python, no I/O and no clock: every time is passed in as epoch milliseconds, every identifier comes from a
seeded ``IdFactory``. Not thread-safe by itself; ``Exchange`` holds one lock around every use. Amounts are
``Decimal`` built from strings; a balance never goes below zero (``BusinessError``-style ``ApiError``).

Every movement the spot ledger shows (docs/kucoin-api.md §8.3) is written as a ``LedgerEntry`` by the method
that moves the money: ``transfer`` (one BROKER_TRANSFER entry on each side), ``record_deposit`` (DEPOSIT) and
``trade`` (two TRADE_EXCHANGE entries). A bare ``credit`` without a deposit is an out-of-band adjustment the
ledger does not show, like the opening balances.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.config import WALLETS
from sandbox.errors import business
from sandbox.ledger import BROKER_TRANSFER, DEPOSIT, TRADE_EXCHANGE, Ledger, context_of
from sandbox.values import IdFactory, fmt_amount, seeded_fraction

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
    "seeded_fraction",
]

INSUFFICIENT_BALANCE = "account.available.amount"
"""Message of the insufficient-balance error (code 400100), as ccxt maps KuCoin's transfer failures
(docs/kucoin-api.md §3.3)."""
TRANSFER_FAILED = "sandbox: transfer failed"
"""``reason`` of a transfer that failed after it was accepted (switch ``transfer_failure_share``)."""


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
    """One ND transfer. OUT moves (broker, account_type) -> (special_uid, special_account_type); IN reverses.

    A ``failed`` transfer was accepted (it has an orderId) but moved nothing: PROCESSING, then FAILURE."""

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
    failed: bool = False

    def status(self, now_ms: int) -> str:
        """PROCESSING until ``settles_at`` (switch ``transfer_processing_ms``), then SUCCESS (or FAILURE)."""
        if now_ms < self.settles_at:
            return "PROCESSING"
        return "FAILURE" if self.failed else "SUCCESS"

    def reason(self, now_ms: int) -> str | None:
        """Why a FAILURE failed; None in every other status."""
        return TRANSFER_FAILED if self.status(now_ms) == "FAILURE" else None

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
        self.ledger = Ledger(seed)
        self._credits_due: list[tuple[int, str, TransferRecord, str]] = []
        """Credits of transfers that reach their target when they complete: (settles_at, order id, record,
        ledger context), in the order they were made."""

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

    def _move(
        self, account: Account, wallet: str, currency: str, delta: Decimal, *, biz_type: str, now_ms: int, context: str
    ) -> Decimal:
        """Adjust a wallet by ``delta`` and write its ledger entry; returns the new balance (raises like
        ``Account.adjust``)."""
        balance = account.adjust(wallet, currency, delta)
        self.ledger.write(
            uid=account.uid,
            wallet=wallet,
            currency=currency,
            delta=delta,
            balance=balance,
            biz_type=biz_type,
            now_ms=now_ms,
            context=context,
        )
        return balance

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
        failure_share: float = 0.0,
        ledger_context: str = "order_id",
        credit_on_completion: bool = False,
    ) -> TransferRecord:
        """Move the funds at once (all or nothing), write one BROKER_TRANSFER ledger entry on each side and
        record the transfer; raises 400100 ``account.available.amount`` when the source wallet holds less than
        ``amount``. With ``credit_on_completion`` the source is debited at once and the target credited (its
        ledger entry written) only when the transfer completes, ``processing_ms`` later (``settle_credits``).

        A seeded share ``failure_share`` of transfers (decided per orderId) is accepted but fails afterwards: it
        is recorded, moves nothing and writes no ledger entry. ``ledger_context`` (``order_id``, ``client_oid``,
        ``none``) decides what the entries' ``context`` carries.
        """
        order_id = self.ids.object_id(now_ms)
        failed = failure_share > 0 and seeded_fraction(self.seed, "transfer-failure", order_id) < failure_share
        record = TransferRecord(
            order_id=order_id,
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
            failed=failed,
        )
        source_uid, source_wallet = record.source
        target_uid, target_wallet = record.target
        source, target = self.account(source_uid), self.account(target_uid)
        assert source is not None and target is not None
        if source.available(source_wallet, currency) < amount:
            raise business(INSUFFICIENT_BALANCE)
        if not failed:
            fields = {"orderId": order_id}
            if ledger_context == "client_oid":
                fields["clientOid"] = client_oid
            context = context_of(fields) if ledger_context != "none" else ""
            self._move(
                source, source_wallet, currency, -amount, biz_type=BROKER_TRANSFER, now_ms=now_ms, context=context
            )
            if credit_on_completion and processing_ms > 0:
                self._credits_due.append((record.settles_at, order_id, record, context))
            else:
                self._move(
                    target, target_wallet, currency, amount, biz_type=BROKER_TRANSFER, now_ms=now_ms, context=context
                )
        self.transfers[record.order_id] = record
        self._by_client_oid.setdefault(client_oid, []).append(record)
        return record

    def settle_credits(self, now_ms: int) -> int:
        """Credit the targets of the transfers completed by ``now_ms`` whose money reaches them on completion (each
        once, its ledger entry stamped at the completion). Returns how many were credited."""
        due = [c for c in self._credits_due if c[0] <= now_ms]
        if not due:
            return 0
        self._credits_due = [c for c in self._credits_due if c[0] > now_ms]
        for settles_at, _order_id, record, context in due:
            target_uid, target_wallet = record.target
            target = self.account(target_uid)
            assert target is not None
            self._move(
                target,
                target_wallet,
                record.currency,
                record.amount,
                biz_type=BROKER_TRANSFER,
                now_ms=settles_at,
                context=context,
            )
        return len(due)

    def credit(self, uid: str, currency: str, wallet: str, amount: Decimal, *, now_ms: int, deposit: bool) -> Decimal:
        """Add ``amount`` (negative for a loss) to a wallet; with ``deposit`` (positive amounts only) record an
        on-chain deposit that the deposit read endpoints and the ledger return. Returns the new balance."""
        account = self.account(uid)
        if account is None:
            raise business(f"uid {uid} is neither the broker nor one of its sub-accounts")
        if deposit:
            if amount <= 0:
                raise business("a deposit amount must be greater than 0")
            return self.record_deposit(account, currency, wallet, amount, now_ms=now_ms, tx_hash=self.ids.hex(64))
        return account.adjust(wallet, currency, amount)

    def record_deposit(
        self, account: Account, currency: str, wallet: str, amount: Decimal, *, now_ms: int, tx_hash: str
    ) -> Decimal:
        """A SUCCESS on-chain deposit of ``amount`` (> 0): credited, listed by the deposit endpoints, and written
        to the ledger as DEPOSIT. Returns the new balance."""
        context = context_of({"txId": f"{tx_hash}@sandbox"})
        balance = self._move(account, wallet, currency, amount, biz_type=DEPOSIT, now_ms=now_ms, context=context)
        self.deposits.append(
            {
                "uid": int(account.uid),
                "hash": tx_hash,
                "address": f"sandbox-{account.uid}-{currency.lower()}",
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

    def trade(
        self,
        account: Account,
        *,
        sell: str,
        sell_amount: Decimal,
        buy: str,
        buy_amount: Decimal,
        now_ms: int,
        order_id: str,
        trade_id: str,
    ) -> None:
        """A filled spot trade in the TRADE wallet: ``sell_amount`` of ``sell`` out, ``buy_amount`` of ``buy``
        in, two TRADE_EXCHANGE ledger entries (no fee). Raises 400100 when the wallet holds too little."""
        if account.available("TRADE", sell) < sell_amount:
            raise business(INSUFFICIENT_BALANCE)
        context = context_of({"symbol": f"{sell}-{buy}", "orderId": order_id, "tradeId": trade_id})
        self._move(account, "TRADE", sell, -sell_amount, biz_type=TRADE_EXCHANGE, now_ms=now_ms, context=context)
        self._move(account, "TRADE", buy, buy_amount, biz_type=TRADE_EXCHANGE, now_ms=now_ms, context=context)

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
