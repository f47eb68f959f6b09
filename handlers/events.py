"""The inbound event contract: what the broker's signup system publishes, validated strictly.

An event is one JSON object::

    {"id": "...", "type": "customer.kyc_approved", "customer_id": "...", "occurred_at": "2026-11-22T10:00:00Z",
     "data": {...}}

Unknown types and unknown fields are refused; strings and lists are bounded; amounts are decimal *strings*
(a JSON number is refused: floats lose money); timestamps are RFC 3339 in UTC within the intake window; IP
addresses are single, valid, globally routable addresses (``handlers.addresses``). ``parse_event`` is the only
door in: it raises ``EventRejected`` with the field path and the reason, and never anything else. ``schema()``
is the JSON Schema published in ``schema/events.schema.json``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from handlers.addresses import unroutable_reason
from handlers.event_patterns import AMOUNT_DECIMALS, AMOUNT_PATTERN, IP_PATTERN, TIMESTAMP_PATTERN
from handlers.rejections import EventRejected, rejection, require_utf8

__all__ = [
    "MAX_EVENT_BYTES",
    "MAX_PHOTO_BYTES",
    "MAX_PHOTO_CHARS",
    "CustomerCreated",
    "CustomerOffboarded",
    "Event",
    "EventRejected",
    "EventType",
    "FundingLine",
    "FundingRequested",
    "IntakePolicy",
    "IpChanged",
    "KeyRotationRequested",
    "KycApproved",
    "KycDocuments",
    "Permission",
    "field_paths",
    "parse_event",
    "schema",
]

MAX_PHOTO_BYTES = 2 * 1024 * 1024
"""The largest KYC photo, decoded: KuCoin's limit for each photo (a larger one the exchange would refuse). A
receiver may set a lower one (``IntakePolicy.max_photo_bytes``, the setting ``PROVISIONER_MAX_KYC_PHOTO_BYTES``)."""
MAX_PHOTO_CHARS = len("data:image/jpeg;base64,") + 4 * -(-MAX_PHOTO_BYTES // 3)
"""The longest photo as a base64 data URI (its ``maxLength`` in the schema)."""
MAX_PLAIN_EVENT_BYTES = 16 * 1024
"""Largest accepted event without KYC documents."""
MAX_EVENT_BYTES = 3 * MAX_PHOTO_CHARS + MAX_PLAIN_EVENT_BYTES
"""Largest accepted event (about 8.4 MB): three KYC photos of ``MAX_PHOTO_BYTES``, base64-encoded, plus the rest."""
MAX_FUNDING_LINES = 10
_TIMESTAMP = re.compile(
    r"^(?P<whole>[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.(?P<fraction>[0-9]{1,9}))?(?:Z|\+00:00)$"
)
"""An accepted ``occurred_at``: RFC 3339 in UTC, up to nine fractional digits (ASCII digits only)."""
MAX_IPS = 20


class EventType(StrEnum):
    CREATED = "customer.created"
    KYC_APPROVED = "customer.kyc_approved"
    IP_CHANGED = "customer.ip_changed"
    KEY_ROTATION_REQUESTED = "customer.key_rotation_requested"
    FUNDING_REQUESTED = "customer.funding_requested"
    OFFBOARDED = "customer.offboarded"


class Permission(StrEnum):
    """What a customer's key may do. Withdrawal is never grantable to a broker sub-account."""

    GENERAL = "general"
    SPOT = "spot"
    FUTURES = "futures"


@dataclass(frozen=True)
class IntakePolicy:
    """What intake checks against the outside world: the clock and the configured currencies."""

    now: datetime
    currencies: frozenset[str]
    max_age: timedelta = timedelta(days=365)
    max_skew: timedelta = timedelta(minutes=5)
    max_photo_bytes: int = MAX_PHOTO_BYTES
    """The largest KYC photo accepted, decoded (at most ``MAX_PHOTO_BYTES``)."""


class Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


def _ip(value: str, info: ValidationInfo) -> str:
    """One whitelisted address, in its normal form. With an intake policy it must also be one a trading key may be
    bound to (``handlers.addresses``); without one (re-reading a stored event) it is only parsed."""
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value[:64]!r} is not a valid IP address") from None
    if "%" in value:  # a zone index (fe80::1%eth0) means nothing in a whitelist
        raise ValueError(f"{value[:64]!r} is not a valid IP address (no zone index)")
    policy = info.context.get("policy") if isinstance(info.context, dict) else None
    if isinstance(policy, IntakePolicy) and (why := unroutable_reason(address)) is not None:
        raise ValueError(f"{address} cannot be bound to a trading key: it {why}")
    return str(address)


def _unique(values: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(set(values)) != len(values):
        raise ValueError("must not contain duplicates")
    return values


_AMOUNT = re.compile(rf"^(0|[1-9][0-9]{{0,15}})(\.[0-9]{{1,{AMOUNT_DECIMALS}}})?$")


def _amount(value: str) -> str:
    if not _AMOUNT.fullmatch(value):
        raise ValueError(f"must be a plain positive decimal string with at most {AMOUNT_DECIMALS} decimals")
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already rules this out
        raise ValueError("is not a decimal") from None
    if amount <= 0:
        raise ValueError("must be greater than zero")
    return value


IpAddress = Annotated[
    str, Field(min_length=2, max_length=45, json_schema_extra={"pattern": IP_PATTERN}), AfterValidator(_ip)
]
IpWhitelist = Annotated[
    tuple[IpAddress, ...],
    Field(min_length=1, max_length=MAX_IPS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_unique),
]
CustomerId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:@+/=-]+$")]
"""An upstream's opaque id: UUIDs, numbers, e-mail addresses, URNs, base64. No quotes, braces, spaces or
control characters, so nothing that looks like markup or JSON gets in."""


class FundingLine(Strict):
    currency: Annotated[str, Field(pattern=r"^[A-Z0-9]{2,16}$")]
    amount: Annotated[str, Field(max_length=32, json_schema_extra={"pattern": AMOUNT_PATTERN}), AfterValidator(_amount)]

    @field_validator("currency")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        policy = info.context.get("policy") if isinstance(info.context, dict) else None
        if isinstance(policy, IntakePolicy) and value not in policy.currencies:
            raise ValueError(f"unknown currency {value!r}; configured: {', '.join(sorted(policy.currencies))}")
        return value

    @property
    def decimal_amount(self) -> Decimal:
        return Decimal(self.amount)


Photo = Annotated[str, Field(max_length=MAX_PHOTO_CHARS, pattern=r"^data:image/(png|jpe?g);base64,[A-Za-z0-9+/=]+$")]
IsoDate = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]


class KycDocuments(Strict):
    """Identity documents for proxy KYC. Personal data: never logged, encrypted at rest, deleted once submitted."""

    first_name: Annotated[str, Field(min_length=1, max_length=64)]
    last_name: Annotated[str, Field(min_length=1, max_length=64)]
    issue_country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    birth_date: IsoDate
    identity_type: Literal["idcard", "drivinglicense", "passport", "bvn"]
    identity_number: Annotated[str, Field(min_length=1, max_length=64)]
    expire_date: IsoDate
    front_photo: Photo | None = None
    backend_photo: Photo | None = None
    face_photo: Photo

    @field_validator("front_photo", "backend_photo", "face_photo")
    @classmethod
    def _photo_size(cls, value: str | None, info: ValidationInfo) -> str | None:
        """With an intake policy, a photo must decode to at most ``policy.max_photo_bytes``."""
        policy = info.context.get("policy") if isinstance(info.context, dict) else None
        if value is not None and isinstance(policy, IntakePolicy):
            size = _decoded_size(value)
            if size > policy.max_photo_bytes:
                raise ValueError(
                    f"is a photo of {size} bytes; KYC photos are at most {policy.max_photo_bytes} bytes: downscale "
                    "or recompress it"
                )
        return value

    def __repr__(self) -> str:
        return "KycDocuments(<redacted>)"

    __str__ = __repr__


class EmptyData(Strict):
    pass


class KycApprovedData(Strict):
    permissions: Annotated[
        tuple[Permission, ...],
        Field(min_length=1, max_length=3, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_unique),
    ]
    ip_whitelist: IpWhitelist
    funding: Annotated[tuple[FundingLine, ...], Field(max_length=MAX_FUNDING_LINES)] = ()
    kyc: KycDocuments | None = None


class IpChangedData(Strict):
    ip_whitelist: IpWhitelist


class FundingRequestedData(Strict):
    """A top-up: new funding lines for an approved customer (same caps as the approval's lines). Each line is
    identified as ``<event id>#<index>`` in ``funding.completed`` / ``funding.refused``."""

    funding: Annotated[tuple[FundingLine, ...], Field(min_length=1, max_length=MAX_FUNDING_LINES)]


class EventBase(Strict):
    id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
    customer_id: CustomerId
    occurred_at: Annotated[str, Field(max_length=40, json_schema_extra={"pattern": TIMESTAMP_PATTERN})]

    @field_validator("occurred_at")
    @classmethod
    def _rfc3339_utc(cls, value: str, info: ValidationInfo) -> str:
        if not _TIMESTAMP.fullmatch(value):
            raise ValueError("must be an RFC 3339 timestamp in UTC, like 2026-11-22T10:00:00Z")
        try:
            moment = _parse_time(value)
        except ValueError as exc:
            raise ValueError(f"is not a valid timestamp: {exc}") from None
        policy = info.context.get("policy") if isinstance(info.context, dict) else None
        if isinstance(policy, IntakePolicy):
            if moment > policy.now + policy.max_skew:
                raise ValueError("lies in the future")
            if moment < policy.now - policy.max_age:
                raise ValueError(f"is older than {policy.max_age.days} days")
        return value

    @property
    def occurred(self) -> datetime:
        return _parse_time(self.occurred_at)

    _occurred_ns: int = PrivateAttr(default=0)

    def model_post_init(self, context: Any, /) -> None:
        self._occurred_ns = _epoch_ns(self.occurred_at)  # once: events are sorted by it on every fold

    @property
    def occurred_ns(self) -> int:
        """When the event occurred, in nanoseconds since the epoch: every fractional digit counts (RFC 3339 allows
        nine; a ``datetime`` keeps six)."""
        return self._occurred_ns

    @property
    def order_key(self) -> tuple[int, str]:
        """Events of one customer are ordered by when they occurred (to the nanosecond), then by id."""
        return (self.occurred_ns, self.id)


class CustomerCreated(EventBase):
    type: Literal[EventType.CREATED]
    data: EmptyData


class KycApproved(EventBase):
    type: Literal[EventType.KYC_APPROVED]
    data: KycApprovedData


class IpChanged(EventBase):
    type: Literal[EventType.IP_CHANGED]
    data: IpChangedData


class KeyRotationRequested(EventBase):
    type: Literal[EventType.KEY_ROTATION_REQUESTED]
    data: EmptyData


class FundingRequested(EventBase):
    type: Literal[EventType.FUNDING_REQUESTED]
    data: FundingRequestedData


class CustomerOffboarded(EventBase):
    type: Literal[EventType.OFFBOARDED]
    data: EmptyData


Event = Annotated[
    CustomerCreated | KycApproved | IpChanged | KeyRotationRequested | FundingRequested | CustomerOffboarded,
    Field(discriminator="type"),
]
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)


def _decoded_size(data_uri: str) -> int:
    """How many bytes a base64 data URI's payload decodes to."""
    payload = data_uri.partition(",")[2]
    return len(payload) * 3 // 4 - (len(payload) - len(payload.rstrip("=")))


def _parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment.astimezone(UTC)


def _epoch_ns(value: str) -> int:
    """An accepted ``occurred_at`` (UTC, up to nine fractional digits) as nanoseconds since the epoch."""
    found = _TIMESTAMP.fullmatch(value)
    if found is None:
        raise ValueError(f"not an accepted timestamp: {value[:40]!r}")
    seconds = int(_parse_time(found["whole"] + "+00:00").timestamp())
    return seconds * 1_000_000_000 + int(((found["fraction"] or "") + "000000000")[:9])


def parse_event(raw: str | bytes | dict[str, Any], policy: IntakePolicy | None) -> Event:
    """Validate one event from its JSON text (or an already decoded object).

    ``policy`` adds the checks that need the outside world (timestamp window, configured currencies); pass
    ``None`` only to re-read an event that was already accepted. Raises ``EventRejected`` naming the field.
    """
    text = raw if isinstance(raw, str | bytes) else json.dumps(raw, separators=(",", ":"))
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > MAX_EVENT_BYTES:
        raise EventRejected("$", f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}")
    if isinstance(text, bytes):
        require_utf8(text)
    try:
        event = _EVENT.validate_json(text, context={"policy": policy}, strict=True)
    except ValidationError as exc:
        raise rejection(exc.errors()[0], _TAGS) from None
    if size > MAX_PLAIN_EVENT_BYTES and not (isinstance(event, KycApproved) and event.data.kyc is not None):
        raise EventRejected("$", f"event is {size} bytes; without KYC documents the limit is {MAX_PLAIN_EVENT_BYTES}")
    return event


_TAGS = frozenset(t.value for t in EventType)


@cache
def field_paths() -> frozenset[str]:
    """Every field path the contract names, list indices left out (``data.funding.amount``): a bounded set, for
    labels that must not take values from the input."""
    document = schema()
    definitions: dict[str, Any] = document.get("$defs", {})
    paths: set[str] = set()

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, dict):
            return
        if isinstance(ref := node.get("$ref"), str):
            walk(definitions.get(ref.rsplit("/", 1)[-1]), prefix)
        for key in ("anyOf", "oneOf", "allOf"):
            for option in node.get(key, ()):
                walk(option, prefix)
        walk(node.get("items"), prefix)
        for name, child in node.get("properties", {}).items():
            paths.add(prefix + name)
            walk(child, f"{prefix}{name}.")

    walk(document, "")
    return frozenset(paths)


def schema() -> dict[str, Any]:
    """The JSON Schema of one event, for publishers in other languages."""
    document = _EVENT.json_schema(mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "https://github.com/kucoin-nd-provisioner/schema/events.schema.json"
    document["title"] = "Onboarding event"
    document["description"] = (
        "One onboarding event published to the provisioning worker. Amounts are decimal strings; timestamps are "
        "RFC 3339 in UTC; unknown fields are refused. Checked at intake beyond this schema: occurred_at within "
        "5 minutes ahead of and 365 days behind the receiver's clock; currencies among those configured; IP "
        "addresses of one whitelist distinct as addresses (::1 and 0::1 are the same) and each a globally routable "
        "unicast address: not unspecified, loopback, private, link-local, multicast, reserved, broadcast, "
        "documentation or shared address space, nor an IPv4-mapped IPv6 address; each KYC photo at most "
        f"{MAX_PHOTO_BYTES} bytes decoded, or the receiver's lower configured limit."
    )
    return document
