"""Request bodies and queries, validated against what KuCoin documents before anything is sent.

Each model renders itself as the exact JSON body or ordered query the endpoint takes (KuCoin's field names).
``build`` turns pydantic's error into a ``RequestValidationError`` naming the field and the reason, so a bad
argument never reaches the wire.
"""

from __future__ import annotations

import ipaddress
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from worker.exchange.errors import RequestValidationError
from worker.exchange.models import AccountType, Direction, Permission

__all__ = [
    "AddApiKeyRequest",
    "KycSubmission",
    "ModifyApiKeyRequest",
    "TransferRequest",
    "build",
    "format_amount",
    "validate_ip",
]

MAX_IPS = 20
"""Add/Modify SubAccount API accept at most 20 whitelisted addresses (docs/kucoin-api.md §6.8)."""
MAX_PHOTO_CHARS = 2 * 1024 * 1024 * 4 // 3 + 64
"""A KYC photo may be at most 2 MB, sent as a base64 data URI (4/3 of the bytes, plus its prefix)."""


def validate_ip(value: str) -> str:
    """Return ``value`` if it is one IPv4 or IPv6 address (no ranges, no masks); raise ``ValueError``."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid IP address") from None
    return value


def format_amount(amount: Decimal) -> str:
    """A Decimal as KuCoin wants it: plain notation, no exponent, no trailing zeros."""
    text = format(amount.normalize(), "f")
    return text


def _positive_amount(value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise ValueError("must be a positive, finite amount")
    return value


IpList = Annotated[list[Annotated[str, AfterValidator(validate_ip)]], Field(max_length=MAX_IPS)]
PermissionList = Annotated[list[Permission], Field(min_length=1, max_length=3)]
Label = Annotated[str, Field(min_length=4, max_length=32)]
Uid = Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]


class RequestModel(BaseModel):
    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def body(self) -> dict[str, Any]:
        """The JSON body, with KuCoin's field names, amounts as strings and absent fields left out."""
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        for name, value in self:
            if isinstance(value, Decimal):
                data[to_camel(name)] = format_amount(value)
        return data


class _KeyFields(RequestModel):
    uid: Uid
    ip_whitelist: IpList
    permissions: PermissionList
    label: Label

    @field_validator("permissions")
    @classmethod
    def _unique(cls, value: list[Permission]) -> list[Permission]:
        if len(set(value)) != len(value):
            raise ValueError("permissions must not repeat")
        return value


class AddApiKeyRequest(_KeyFields):
    passphrase: Annotated[str, Field(min_length=7, max_length=32, pattern=r"^\S+$")]


class ModifyApiKeyRequest(_KeyFields):
    api_key: Annotated[str, Field(min_length=1, max_length=64)]


class TransferRequest(RequestModel):
    currency: Annotated[str, Field(pattern=r"^[A-Z0-9]{1,16}$")]
    amount: Annotated[Decimal, AfterValidator(_positive_amount)]
    direction: Direction
    account_type: AccountType
    special_uid: Uid
    special_account_type: AccountType
    client_oid: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


def _iso_date(value: str) -> str:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date YYYY-MM-DD") from None
    return value


Photo = Annotated[str, Field(max_length=MAX_PHOTO_CHARS, pattern=r"^data:image/(png|jpe?g);base64,")]


class KycSubmission(RequestModel):
    """Submit KYC's body (docs/kucoin-api.md §6.1). Photos are data URIs; which are required depends on the id type."""

    client_uid: Uid
    first_name: Annotated[str, Field(min_length=1, max_length=64)]
    last_name: Annotated[str, Field(min_length=1, max_length=64)]
    issue_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    birth_date: Annotated[str, AfterValidator(_iso_date)]
    identity_type: Annotated[str, Field(pattern=r"^(idcard|drivinglicense|passport|bvn)$")]
    identity_number: Annotated[str, Field(min_length=1, max_length=64)]
    expire_date: Annotated[str, AfterValidator(_iso_date)]
    front_photo: Photo | None = None
    backend_photo: Photo | None = None
    face_photo: Photo

    @field_validator("backend_photo")
    @classmethod
    def _back_needed(cls, value: str | None, info: Any) -> str | None:
        if value is None and info.data.get("identity_type") in ("idcard", "drivinglicense"):
            raise ValueError("required for idcard and drivinglicense")
        return value

    @field_validator("front_photo")
    @classmethod
    def _front_needed(cls, value: str | None, info: Any) -> str | None:
        if value is None and info.data.get("identity_type") != "bvn":
            raise ValueError("required unless identityType is bvn")
        return value

    def __repr__(self) -> str:  # personal data: never in a log or traceback
        return f"KycSubmission(client_uid={self.client_uid!r}, ...)"

    __str__ = __repr__


def yyyymmdd(value: str, *, field: str, endpoint: str) -> date:
    """Parse a ``YYYYMMDD`` date argument or raise ``RequestValidationError`` naming ``field``."""
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except (TypeError, ValueError):
        raise RequestValidationError(f"{field} must be a date YYYYMMDD", field=field, endpoint=endpoint) from None


M = TypeVar("M", bound=BaseModel)


def build(model: type[M], endpoint: str, **fields: Any) -> M:
    """Validate ``fields`` into ``model``; raise ``RequestValidationError`` naming the first bad field."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        field = loc[0] if loc else "?"
        where = ".".join(loc) if loc else "?"
        raise RequestValidationError(f"{where}: {err['msg']}", field=field, endpoint=endpoint) from None


def check_range(value: int, low: int, high: int, *, field: str, endpoint: str) -> int:
    """Return ``value`` if ``low <= value <= high``, else raise ``RequestValidationError``."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RequestValidationError(f"{field} must be an integer from {low} to {high}", field=field, endpoint=endpoint)
    return value
