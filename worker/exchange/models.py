"""Typed, frozen results of exchange calls. Amounts are ``Decimal``; every id is a ``str``.

KuCoin returns uids as strings in sub-account payloads and as integers in transfer, deposit and KYC payloads
(docs/kucoin-api.md §7 item 10); ``Id`` normalises both to strings. Secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError
from pydantic.alias_generators import to_camel

__all__ = [
    "AccountType",
    "ApiKey",
    "ApiKeyCreated",
    "ApiKeyModified",
    "Balance",
    "BrokerInfo",
    "Deposit",
    "Direction",
    "KycState",
    "KycStatus",
    "LedgerDirection",
    "LedgerEntry",
    "LedgerPage",
    "Page",
    "Permission",
    "RebateLink",
    "SubAccount",
    "SubAccountBalances",
    "TransferDetail",
    "TransferOrder",
    "TransferStatus",
    "Withdrawal",
    "boolean",
    "list_of",
    "modified",
]


def _to_str(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Id = Annotated[str, BeforeValidator(_to_str)]
"""An identifier that KuCoin sends either as a string or as an integer."""


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Permission(StrEnum):
    """What a broker may grant a sub-account key (never withdrawal). Requests use lower case."""

    GENERAL = "general"
    SPOT = "spot"
    FUTURES = "futures"


class Direction(StrEnum):
    OUT = "OUT"
    """Special Account → sub-account."""
    IN = "IN"
    """Sub-account → Special Account."""


class AccountType(StrEnum):
    MAIN = "MAIN"
    TRADE = "TRADE"


class TransferStatus(StrEnum):
    """Get Transfer History's status, read in any letter case (documented in upper case)."""

    PROCESSING = "PROCESSING"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"

    @classmethod
    def _missing_(cls, value: object) -> TransferStatus | None:
        return cls.__members__.get(value.upper()) if isinstance(value, str) else None


class KycState(StrEnum):
    NONE = "NONE"
    PROCESS = "PROCESS"
    PASS = "PASS"  # noqa: S105 - a KYC verdict, not a password
    REJECT = "REJECT"


T = TypeVar("T")


class Page(Model, Generic[T]):
    current_page: int
    page_size: int
    total_num: int
    total_page: int
    items: tuple[T, ...]


class SubAccount(Model):
    account_name: str
    uid: Id
    created_at: int
    level: int = 0


def _lower(values: object) -> object:
    if isinstance(values, list | tuple):
        return tuple(str(v).lower() for v in values)
    return values


class ApiKey(Model):
    """A sub-account API key as listed (IP addresses come back masked, e.g. ``127.**.1``; no secret)."""

    uid: Id
    label: str
    api_key: str
    api_version: int = 3
    permissions: Annotated[tuple[str, ...], BeforeValidator(_lower)]
    ip_whitelist: tuple[str, ...] = ()
    created_at: int


class ApiKeyCreated(Model):
    """The response of Add SubAccount API: the only time the exchange shows the secret. Only ``apiKey`` and
    ``secretKey`` are required: the rest is what we asked for, and a field missing from the answer must not throw
    away a secret shown once (the key would be deleted as an orphan and issued again, the same way, for ever)."""

    api_key: str
    secret_key: SecretStr
    uid: Id | None = None
    label: str | None = None
    api_version: int = 3
    permissions: Annotated[tuple[str, ...], BeforeValidator(_lower)] = ()
    ip_whitelist: tuple[str, ...] = ()
    created_at: int | None = None


class ApiKeyModified(Model):
    """The answer of Modify SubAccount API. Nothing of it is needed (the request said what the key now is): its
    fields are kept where they read well, and an answer that does not (a field missing, ``null``) is no reason to
    doubt a write the envelope (200000) says was applied — doubting it repeats it for ever (``modified``)."""

    api_key: str | None = None
    uid: Id | None = None
    label: str | None = None
    permissions: Annotated[tuple[str, ...], BeforeValidator(_lower)] = ()
    ip_whitelist: tuple[str, ...] = ()
    created_at: int | None = None


def modified(data: Any) -> ApiKeyModified:
    """A parser for Modify SubAccount API's ``data`` that never refuses it (see ``ApiKeyModified``)."""
    try:
        return ApiKeyModified.model_validate(data)
    except ValidationError:
        return ApiKeyModified()


class TransferOrder(Model):
    order_id: str


class TransferDetail(Model):
    order_id: str
    currency: str
    amount: Decimal
    from_uid: Id
    from_account_type: str
    from_account_tag: str | None = None
    to_uid: Id
    to_account_type: str
    to_account_tag: str | None = None
    status: TransferStatus
    reason: str | None = None
    created_at: int


class Deposit(Model):
    uid: Id | None = None
    hash: str | None = None
    address: str | None = None
    memo: str | None = None
    amount: Decimal
    fee: Decimal | None = None
    currency: str
    is_inner: bool | None = None
    wallet_tx_id: str | None = None
    status: str
    remark: str | None = None
    chain: str | None = None
    created_at: int
    updated_at: int | None = None


class Withdrawal(Deposit):
    id: str


class BrokerInfo(Model):
    account_size: int
    max_account_size: int | None = None
    level: int


class KycStatus(Model):
    client_uid: Id
    status: KycState
    reject_reason: str | None = None


class Balance(Model):
    currency: str
    balance: Decimal
    available: Decimal
    holds: Decimal = Decimal(0)


class SubAccountBalances(Model):
    """KuCoin's "Get sub-account Detail - Balance", read with the Special Account's trading key."""

    sub_user_id: Id
    sub_name: str | None = None
    main_accounts: tuple[Balance, ...] = ()
    trade_accounts: tuple[Balance, ...] = ()
    margin_accounts: tuple[Balance, ...] = ()
    trade_hf_accounts: tuple[Balance, ...] = Field(default=(), alias="tradeHFAccounts")

    def wallet(self, account_type: AccountType) -> dict[str, Balance]:
        """Balances of one wallet by currency (MAIN = main accounts, TRADE = trade accounts)."""
        rows = self.main_accounts if account_type is AccountType.MAIN else self.trade_accounts
        return {b.currency: b for b in rows}


class RebateLink(Model):
    url: str


class LedgerDirection(StrEnum):
    """Which way a ledger entry moved money for the account whose ledger it is (lower case, unlike transfers)."""

    IN = "in"
    OUT = "out"


_MAX_CONTEXT_CHARS = 4096
"""A ledger context longer than this is not decoded (KuCoin's are a few short ids)."""


def _context_text(value: object) -> object:
    """KuCoin sends ``context`` as a JSON string; anything else (an object in old examples) is kept as its
    compact JSON text, so an odd context never makes a whole ledger page unreadable."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), default=str)


def _field_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, separators=(",", ":"), default=str)


class LedgerEntry(Model):
    """One line of an account's spot ledger ("Get Account Ledgers - Spot/Margin", docs/kucoin-api.md §8.3).

    ``amount`` is positive and ``direction`` gives its sign. ``balance`` is the wallet's balance after the entry
    on the simulator, but KuCoin's SDK calls the field deprecated: never use it as evidence. ``biz_type`` and
    ``account_type`` are open sets (``BROKER_TRANSFER``, ``DEPOSIT``, ``TRADE_EXCHANGE``, ...; ``MAIN``,
    ``TRADE``, ...), so they are plain strings.
    """

    id: Id
    currency: str
    amount: Decimal
    fee: Decimal = Decimal(0)
    balance: Decimal = Decimal(0)
    account_type: str
    biz_type: str
    direction: LedgerDirection
    created_at: int
    context: Annotated[str | None, BeforeValidator(_context_text)] = None

    def context_fields(self) -> dict[str, str]:
        """The ``context`` decoded into a flat ``{name: text}`` (e.g. ``{"orderId": "..."}``); ``{}`` when it is
        empty, too long, or not an object. Accepts JSON and the single-quoted form of some KuCoin examples.
        Never raises. Non-string values are rendered as text (numbers as digits, objects as compact JSON);
        null values are left out."""
        text = (self.context or "").strip()
        if not text or len(text) > _MAX_CONTEXT_CHARS:
            return {}
        decoded: object = None
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            try:
                decoded = ast.literal_eval(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return {}
        if not isinstance(decoded, dict):
            return {}
        fields = {str(name): _field_text(value) for name, value in decoded.items()}
        return {name: value for name, value in fields.items() if value is not None}


class LedgerPage(Page[LedgerEntry]):
    """One page of a ledger query (newest first)."""


M = TypeVar("M", bound=BaseModel)


def list_of(model: type[M]) -> Callable[[Any], tuple[M, ...]]:
    """A parser for a plain JSON array of ``model`` items; ``null`` is an error, not an empty list."""

    def parse(data: Any) -> tuple[M, ...]:
        if not isinstance(data, list):
            raise TypeError(f"expected a list, got {type(data).__name__}")
        return tuple(model.model_validate(item) for item in data)

    return parse


def boolean(data: Any) -> bool:
    """A parser for a JSON boolean ``data``."""
    if not isinstance(data, bool):
        raise TypeError(f"expected a boolean, got {type(data).__name__}")
    return data
