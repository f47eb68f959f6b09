"""Intents: an exchange write recorded *before* it is sent, with the details of its kind, typed.

An ``Intent`` is stored inside a ``CustomerRecord`` as ``{"kind", "token", "started_at_ms", "details"}``, with
``"first_at_ms"`` after them once the write was sent again, found unanswered again, or written again after it was
found not done (absent, it reads as ``started_at_ms``). Its ``details`` are one type per ``IntentKind``
(``DETAILS``), chosen by the intent's ``kind`` when a record is read:

=====================  ===========================  ===========================================================
kind                   details                      written by
=====================  ===========================  ===========================================================
``create_sub_account`` ``CreateSubAccountDetails``  ``subaccount_steps.create_sub_account``
``issue_key``          ``IssueKeyDetails``          ``key_steps.issue_api_key``
``update_key``         ``UpdateKeyDetails``         ``key_steps.update_api_key``
``revoke_key``         ``RevokeKeyDetails``         ``key_steps.revoke_api_key``
``transfer``           ``TransferIntent``           ``money_steps`` (a funding line or a sweep)
``submit_kyc``         ``SubmitKycDetails``         ``kyc_steps.submit_kyc``
=====================  ===========================  ===========================================================

Stored format: the details of every kind but ``transfer`` are written with exactly the fields that were given
(``_Details``), as the plain dicts before these types were; a transfer's are written whole (every field, defaults
included), as they always were. Keys a details type does not know are ignored when read.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

__all__ = [
    "DETAILS",
    "CreateSubAccountDetails",
    "Intent",
    "IntentDetails",
    "IntentKind",
    "IssueKeyDetails",
    "RevokeKeyDetails",
    "SubmitKycDetails",
    "TransferIntent",
    "TransferPurpose",
    "UpdateKeyDetails",
]


class IntentKind(StrEnum):
    CREATE_SUB_ACCOUNT = "create_sub_account"
    ISSUE_KEY = "issue_key"
    UPDATE_KEY = "update_key"
    REVOKE_KEY = "revoke_key"
    TRANSFER = "transfer"
    SUBMIT_KYC = "submit_kyc"


class TransferPurpose(StrEnum):
    FUND = "fund"
    SWEEP = "sweep"


class _Details(BaseModel):
    """Details written with the fields given and no others (the stored dicts had no defaults)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @model_serializer(mode="wrap")
    def _as_given(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        given = self.model_fields_set
        return {name: value for name, value in handler(self).items() if name in given}


class CreateSubAccountDetails(_Details):
    attempt: int
    """The name attempt (``CustomerRecord.name_attempt``) whose account name is the intent's token."""
    refused: str | None = None
    """The exchange refused the create (its message): not trusted to mean "taken"; the listing decides."""
    account_limit: bool = False
    """The refusal was the broker's sub-account limit."""


class IssueKeyDetails(_Details):
    uid: str
    generation: int
    permissions: list[str]
    ip_whitelist: list[str]
    orphans_unsure: list[str] = []
    """Orphans (keys of this label whose secret we do not hold) whose delete went unanswered: told revoked once
    the listing no longer shows them."""


class UpdateKeyDetails(_Details):
    uid: str
    label: str
    permissions: list[str]
    ip_whitelist: list[str]


class RevokeKeyDetails(_Details):
    uid: str
    reason: str
    refused: str | None = None
    """The exchange refused the delete (its message)."""


class SubmitKycDetails(_Details):
    uid: str
    event_id: str


class TransferIntent(BaseModel):
    """The details of a ``TRANSFER`` intent."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    key: str
    purpose: TransferPurpose
    uid: str
    currency: str
    amount: Decimal
    direction: str
    sub_wallet: str
    broker_wallet: str
    day: str
    days: list[str] = []
    """Every UTC day whose Special Account cap holds a reservation for this line: each send reserves on its own
    day (a re-send after midnight counts on the day it may pay)."""
    last_send_days: list[str] = []
    """Of ``days``, those the latest send added (no earlier send reserved them): all a refused latest send gives
    back when an operator's verdict shows where the line's money moved (``operator._on_execution_day``)."""
    attempt: int = 0
    first_sent_ms: int = 0
    """When the first request under this clientOid may have left: evidence is looked for from then on (records
    older than this field: the intent's start)."""
    sends: int = 1
    evidence_first: bool = False
    """Sent where an earlier send under the same clientOid may exist that our records lost (a recovered record):
    a refusal then proves nothing either way."""
    refused: str | None = None
    """A re-send was refused for a reason other than "clientOid duplicated": not evidence; the ledger decides."""
    duplicate: bool = False
    """The exchange answered "clientOid duplicated": a transfer under this clientOid exists, but it may have
    FAILED; only the ledger tells whether it moved money."""
    operator_unsent: bool = False
    """An operator said the line's money never moved: a transfer the exchange still holds under this clientOid
    (seen as a duplicate, and not in the ledger) is a failed one, and the line goes on under a new clientOid."""
    earlier_send_ms: int = 0
    """When an earlier send of this line may have gone through (0: none): the result is searched for a double."""
    twins: int = 0
    """In a recovered record: other lines of the same currency and amount not judged yet (each may own a ledger
    entry this line's judgement would otherwise take for its own)."""
    sent_ms: int = 0
    """When this very request was sent (a re-send's, not the first's)."""
    order_id: str | None = None
    """The order the exchange gave this transfer, when it was blocked still not final (PROCESSING too long): an
    operator's verdict must agree with that order's status."""
    candidates: list[str] = []
    """After a loss of our state: every clientOid the line may have been sent under (our count of its attempts
    was lost), the intent's own first. An operator's verdict on the block answers for all of them."""

    def asked_about(self, token: str) -> list[str]:
        """The clientOids an operator's verdict on this transfer answers for: ``candidates``, else ``token``."""
        return list(self.candidates) or [token]

    @classmethod
    def of(cls, intent: Intent) -> TransferIntent:
        """The details of a transfer intent. Raises ``ValueError`` for an intent of another kind."""
        if not isinstance(intent.details, TransferIntent):
            raise ValueError(f"a {intent.kind} intent has no transfer details")
        return intent.details


IntentDetails = (
    CreateSubAccountDetails | IssueKeyDetails | UpdateKeyDetails | RevokeKeyDetails | TransferIntent | SubmitKycDetails
)

DETAILS: dict[IntentKind, type[IntentDetails]] = {
    IntentKind.CREATE_SUB_ACCOUNT: CreateSubAccountDetails,
    IntentKind.ISSUE_KEY: IssueKeyDetails,
    IntentKind.UPDATE_KEY: UpdateKeyDetails,
    IntentKind.REVOKE_KEY: RevokeKeyDetails,
    IntentKind.TRANSFER: TransferIntent,
    IntentKind.SUBMIT_KYC: SubmitKycDetails,
}
"""The details type of each kind of intent."""


class Intent(BaseModel):
    """An exchange write recorded *before* it is sent. While it stands, its outcome is unknown."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: IntentKind
    token: str
    """The write's deterministic identity: account name, key label, api key or clientOid."""
    started_at_ms: int
    """When the latest attempt at the write was recorded (or found unanswered): the settle delay counts from it
    (``planner._settle``). Restarted by every send again and every outcome unknown again."""
    details: IntentDetails
    """One type per ``kind`` (``DETAILS``)."""
    first_at_ms: int = 0
    """When the write was first recorded: kept while the same write (kind and token) is sent again, found
    unanswered again, or written again after it was found not done (``CustomerRecord.not_done``). The age of an
    unknown outcome (the pending index, ``UnknownOutcomesUnresolved``) and the bound on repeating a write
    (``planner.repeat_overdue``, ``planner.retry_overdue``) count from it. Given or read without it (records older
    than the field): ``started_at_ms``; written only when it differs from that (an intent never repeated is stored
    as before the field)."""

    @model_serializer(mode="wrap")
    def _first_when_earlier(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped: dict[str, Any] = handler(self)
        if self.first_at_ms == self.started_at_ms:
            dumped.pop("first_at_ms", None)
        return dumped

    @model_validator(mode="before")
    @classmethod
    def _details_of_kind(cls, data: Any) -> Any:
        """Read stored (or given) details as the type of the intent's kind, and ``first_at_ms`` as ``started_at_ms``
        when it is not given. Raises ``ValueError`` naming the field when ``kind`` is unknown or ``details`` are of
        another kind's type."""
        if isinstance(data, dict) and "first_at_ms" not in data and "started_at_ms" in data:
            data = {**data, "first_at_ms": data["started_at_ms"]}  # records older than the field
        if not isinstance(data, dict) or "kind" not in data:
            return data
        try:
            kind = IntentKind(data["kind"])
        except ValueError:
            known = ", ".join(k.value for k in IntentKind)
            raise ValueError(f"kind: unknown intent kind {data['kind']!r} (one of {known})") from None
        wanted = DETAILS[kind]
        details = data.get("details", {})
        if isinstance(details, BaseModel):
            if not isinstance(details, wanted):
                raise ValueError(f"details: a {kind} intent takes {wanted.__name__}, not {type(details).__name__}")
            return data
        if isinstance(details, dict) and wanted is TransferIntent and "first_sent_ms" not in details:
            details = {**details, "first_sent_ms": data.get("started_at_ms", 0)}  # records older than the field
        try:
            typed = wanted.model_validate(details)
        except ValidationError as exc:
            raise ValueError(f"details: not those of a {kind} intent: {exc}") from None
        return {**data, "details": typed}
