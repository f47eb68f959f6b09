"""The funding outcomes the upstream heard before our state was lost, given to ``provisioner recover --heard``.

After Redis loses its data, the exchange still shows every transfer that moved money (within its ledger's window),
but nothing shows a line that was *refused* — by an operator, a per-customer cap decided on what was paid then, its
attempts running out — or one paid longer ago than the ledger can be searched. Only we and the upstream knew; the
upstream kept every ``funding.completed`` and ``funding.refused`` it received (a webhook body or a Stream entry).

Given those, the recovery records them: each customer's audit writes a heard refusal as refused (never sent) and a
heard completion as committed (never sent again). A line asked for before the loss that neither the file mentions
nor the exchange shows paid was never decided *if the file is complete* — the upstream had received every outcome
written before the loss (no webhook delivery, no Stream entry was waiting: ``--heard-complete``); it is then sent
(evidence-first). Otherwise (a refusal may have been waiting for delivery, and was lost with Redis) such a line
waits for an operator (``settle-transfer``), as it does without any file.

Its ``event.refused`` events are final for their event ids: they are recorded again (``refusals_from_events``), so
that a refused event the upstream re-publishes after the loss is refused again, never paid.

The same file tells which API keys the upstream holds live: every ``api_key.issued`` not followed by its
``api_key.revoked``. A key revoked just before the loss, whose ``api_key.revoked`` was still waiting for delivery,
is gone from the exchange and from our records alike; the customer's audit tells the upstream it is revoked.

The file: JSON Lines (one event object per line) or one JSON array of events, exactly as received; a
``provisioning.failed`` of a ``double:<line>`` step marks that line's completion paid more than once; events of
other types are skipped. Outcomes are kept in ``{prefix}:recovery:heard`` (customer reference → JSON), live keys in
``{prefix}:recovery:heard_keys``, until the next recovery.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import redis

from handlers.naming import Naming
from handlers.refusals import retryable_reason
from worker.store.keys import Keys

__all__ = [
    "IN_DOUBT",
    "HeardError",
    "HeardOutcome",
    "heard_for",
    "heard_live_keys",
    "live_keys_from_events",
    "misnamed_refs",
    "nothing_lost",
    "outcomes_from_events",
    "outcomes_known",
    "read_heard",
    "read_received",
    "refusals_from_events",
    "store_heard",
    "store_refusals",
]

_TYPES = {"funding.completed": "completed", "funding.refused": "refused"}
IN_DOUBT = "in_doubt"
"""The verdict of a line the upstream was told blocked (``provisioning.failed`` of ``fund:<line>``) and never told
completed or refused since: it decides nothing, but the customer's outcomes are not all known (``outcomes_known``)."""


class HeardError(Exception):
    """The file of heard outcomes cannot be used: names the line (or event) and the field."""


@dataclass(frozen=True)
class HeardOutcome:
    customer_ref: str
    key: str
    """The funding line (``<event id>#<index>``)."""
    verdict: str
    """``completed``, ``refused`` or ``in_doubt`` (``IN_DOUBT``: told blocked, nothing since; no amount)."""
    currency: str
    amount: str
    reason: str | None = None
    client_oid: str | None = None
    order_id: str | None = None
    occurred_at: str | None = None
    """When the upstream was told (the event's ``occurred_at``), if it says."""
    paid_again: int | None = 0
    """How many more times the upstream was told the line was paid (``provisioning.failed`` of its ``double:``
    step, its ``second_payments``; ``None``: told so, without a count — counted once more): the rebuilt line counts
    that many more times on the per-customer cap (``TransferRecord.extra_paid``)."""

    @property
    def occurred_ms(self) -> int | None:
        if self.occurred_at is None:
            return None
        try:
            return int(datetime.fromisoformat(self.occurred_at.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None

    @property
    def amount_decimal(self) -> Decimal:
        return Decimal(self.amount)


def outcomes_from_events(events: Iterable[Mapping[str, Any]], *, where: str = "event") -> list[HeardOutcome]:
    """The funding outcomes among outbound events (others are skipped). Raises ``HeardError`` naming the event
    (``where`` and its position) and the missing or malformed field. A line heard both ways keeps its completion
    (money moved wins over a refusal: never paid again); heard refused twice, a final refusal wins over a cap's."""
    found: dict[tuple[str, str], HeardOutcome] = {}
    doubled: dict[tuple[str, str], int | None] = {}
    doubts: dict[tuple[str, str], HeardOutcome] = {}
    for number, event in enumerate(events, start=1):
        if not isinstance(event, Mapping):
            raise HeardError(f"{where} {number}: not a JSON object")
        blocked = _blocked_line(event)
        if blocked is not None:
            doubts[blocked] = HeardOutcome(
                customer_ref=blocked[0],
                key=blocked[1],
                verdict=IN_DOUBT,
                currency="",
                amount="0",
                reason=_text(event.get("reason")),
                occurred_at=_text(event.get("occurred_at")),
            )
            continue
        line = _doubled_line(event)
        if line is not None:
            ident, count = line
            told = doubled.get(ident, 0)
            # the largest count told wins; an event without one (``None``) stands only where no count was told
            doubled[ident] = (told or None) if count is None else max(told or 0, count)
            continue
        verdict = _TYPES.get(str(event.get("type", "")))
        if verdict is None:
            continue
        fields = {name: event.get(name) for name in ("customer_ref", "key", "currency", "amount")}
        for name, value in fields.items():
            if not isinstance(value, str) or not value:
                raise HeardError(f"{where} {number}: {event.get('type')} without {name}")
        try:
            amount = Decimal(str(fields["amount"]))
        except InvalidOperation:
            raise HeardError(f"{where} {number}: amount is not a decimal number") from None
        if not amount.is_finite() or amount <= 0:
            raise HeardError(f"{where} {number}: amount must be a positive number")
        outcome = HeardOutcome(
            customer_ref=str(fields["customer_ref"]),
            key=str(fields["key"]),
            verdict=verdict,
            currency=str(fields["currency"]),
            amount=str(fields["amount"]),
            reason=_text(event.get("reason")),
            client_oid=_text(event.get("client_oid")),
            order_id=_text(event.get("order_id")),
            occurred_at=_text(event.get("occurred_at")),
        )
        ident = (outcome.customer_ref, outcome.key)
        held = found.get(ident)
        if held is None or verdict == "completed" or (held.verdict == "refused" and _overrides(outcome, held)):
            found[ident] = outcome
    decided = [
        replace(o, paid_again=doubled[(o.customer_ref, o.key)])
        if o.verdict == "completed" and (o.customer_ref, o.key) in doubled
        else o
        for o in found.values()
    ]
    # a line told blocked and never told completed or refused since: its fate is not known to the upstream
    return decided + [o for ident, o in doubts.items() if ident not in found]


def _blocked_line(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(customer ref, line) of a ``provisioning.failed`` that blocked a funding line (its ``fund:<line>`` step: the
    exchange refused it, or its sends went unanswered and the ledger showed none — in doubt), else ``None``."""
    step, ref = event.get("step"), event.get("customer_ref")
    if event.get("type") != "provisioning.failed" or not isinstance(step, str) or not isinstance(ref, str) or not ref:
        return None
    kind, _, line = step.partition(":")
    return (ref, line) if kind == "fund" and line else None


def _doubled_line(event: Mapping[str, Any]) -> tuple[tuple[str, str], int | None] | None:
    """((customer ref, line), how many more payments or ``None``) of a ``provisioning.failed`` telling that a
    funding line was paid more than once (its ``double:<line>`` step, its ``second_payments``), else ``None``."""
    step, ref = event.get("step"), event.get("customer_ref")
    if event.get("type") != "provisioning.failed" or not isinstance(step, str) or not isinstance(ref, str):
        return None
    kind, _, line = step.partition(":")
    if kind != "double" or not line:
        return None
    count = event.get("second_payments")
    if isinstance(count, float) and count.is_integer():
        count = int(count)  # 3.0: a relay that re-encoded the number
    valid = isinstance(count, int) and not isinstance(count, bool) and 0 < count <= 1000
    return (ref, line), count if valid else None


def _overrides(refusal: HeardOutcome, held: HeardOutcome) -> bool:
    """Of two refusals heard for one line, a final one (an operator's, the offboarding's) wins over one a retry may
    take back (a cap's): the line was retried, then refused for good."""
    return retryable_reason(held.reason) and not retryable_reason(refusal.reason)


def live_keys_from_events(events: Iterable[Mapping[str, Any]], *, where: str = "event") -> dict[str, list[str]]:
    """Per customer reference, the API keys the upstream was told issued (``api_key.issued``) and not revoked
    (``api_key.revoked``, in any order: a revocation is final). Raises ``HeardError`` naming the event and the
    missing field."""
    issued: dict[str, set[str]] = {}
    revoked: set[tuple[str, str]] = set()
    for number, event in enumerate(events, start=1):
        kind = event.get("type") if isinstance(event, Mapping) else None
        if kind not in ("api_key.issued", "api_key.revoked"):
            continue
        assert isinstance(event, Mapping)
        ref, api_key = event.get("customer_ref"), event.get("api_key")
        for name, value in (("customer_ref", ref), ("api_key", api_key)):
            if not isinstance(value, str) or not value:
                raise HeardError(f"{where} {number}: {kind} without {name}")
        assert isinstance(ref, str) and isinstance(api_key, str)
        if kind == "api_key.issued":
            issued.setdefault(ref, set()).add(api_key)
        else:
            revoked.add((ref, api_key))
    live = {ref: sorted(k for k in keys if (ref, k) not in revoked) for ref, keys in issued.items()}
    return {ref: keys for ref, keys in live.items() if keys}


def refusals_from_events(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """Per customer reference, the events the upstream was told refused (``event.refused``, final for their id):
    event id → ``field\nreason``, as ``CustomerStore.record_refusal`` keeps them, so that a re-published refused
    event is refused again after the loss instead of taking effect. Refusals of input that named no customer we
    hold (no ``customer_ref``) or no event id are skipped: they concern nothing we could store."""
    refused: dict[str, dict[str, str]] = {}
    for event in events:
        if not isinstance(event, Mapping) or event.get("type") != "event.refused":
            continue
        ref, event_id = event.get("customer_ref"), event.get("event_id")
        if not (isinstance(ref, str) and ref and isinstance(event_id, str) and event_id):
            continue
        field_path, reason = event.get("field"), event.get("reason")
        if field_path == "id":
            continue  # an id reused with other content: the stored event answers for the id, not the refusal
        refused.setdefault(ref, {})[event_id] = f"{field_path or ''}\n{reason or ''}"
    return refused


def misnamed_refs(events: Iterable[Any], naming: Naming) -> list[str]:
    """What of the received events ``naming`` (this process's) would not have named: a ``customer_ref`` it does
    not derive from the event's ``customer_id`` (another ``PROVISIONER_NAME_SECRET``), or a
    ``sub_account.created``'s ``account_name`` it derives under another account prefix (a sub-account adopted
    from an older system, named by it, is not one). Events without both fields, or with a pseudonymised id
    (``erased:``), are skipped."""
    wrong: list[str] = []
    for event in events:
        if not isinstance(event, Mapping):
            continue
        customer_id, ref = event.get("customer_id"), event.get("customer_ref")
        if not (isinstance(customer_id, str) and isinstance(ref, str) and customer_id and ref):
            continue
        if customer_id.startswith("erased:"):
            continue
        if naming.customer_ref(customer_id) != ref:
            wrong.append(f"customer_ref {ref}")
            continue
        name = event.get("account_name")
        created = event.get("type") == "sub_account.created" and isinstance(name, str)
        if created and naming.named_otherwise(customer_id, str(name)):
            wrong.append(f"account_name {name}")
    return wrong


def store_refusals(client: redis.Redis, keys: Keys, refused: Mapping[str, Mapping[str, str]]) -> int:
    """Record the refusals ``refusals_from_events`` read (an earlier one recorded for an id stands). Returns how
    many events they cover."""
    pipe = client.pipeline(transaction=True)
    for ref, by_id in refused.items():
        for event_id, value in by_id.items():
            pipe.hsetnx(keys.refusals(ref), event_id, value)
        pipe.expire(keys.refusals(ref), Keys.REFUSALS_TTL_S)
    pipe.execute()
    return sum(len(by_id) for by_id in refused.values())


def read_heard(path: Path) -> list[HeardOutcome]:
    """Read a file of received events (JSON Lines or one JSON array): its funding outcomes. Raises ``HeardError``
    naming the line."""
    events, where = read_received(path)
    return outcomes_from_events(events, where=where)


def read_received(path: Path) -> tuple[list[Any], str]:
    """The events of a file of received events (JSON Lines or one JSON array), and how to name one of them in an
    error (``outcomes_from_events``, ``live_keys_from_events``). Raises ``HeardError`` naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HeardError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
    if text.lstrip().startswith("["):
        try:
            events = json.loads(text)
        except json.JSONDecodeError as exc:
            raise HeardError(f"{path}: not a JSON array (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(events, list):
            raise HeardError(f"{path}: not a JSON array")
        return events, f"{path}: event"
    parsed: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            parsed.append({})
            continue
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise HeardError(f"{path}:{number}: not JSON ({exc.msg})") from None
    return parsed, f"{path}: line"


def store_heard(
    client: redis.Redis,
    keys: Keys,
    outcomes: Iterable[HeardOutcome] | None,
    *,
    complete: bool = False,
    live_keys: Mapping[str, Iterable[str]] | None = None,
) -> int:
    """Replace what the last recovery was given. ``None``: the upstream's outcomes are not known. ``complete``:
    they are every outcome written before the loss (nothing was waiting for delivery), so a line they do not
    mention was never decided; else such a line, if unpaid, waits for an operator. ``live_keys``: per customer
    reference, the API keys the upstream holds live (``read_heard_keys``). Returns how many outcomes (completed or
    refused; lines heard blocked are stored too, not counted) were stored."""
    by_ref: dict[str, dict[str, dict[str, Any]]] = {}
    for outcome in outcomes or ():
        by_ref.setdefault(outcome.customer_ref, {})[outcome.key] = asdict(outcome)
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.recovery_heard, keys.recovery_heard_keys)
    pipe.set(keys.recovery_heard_given, "1" if outcomes is not None and complete else "0")
    if by_ref:
        pipe.hset(keys.recovery_heard, mapping={ref: json.dumps(lines) for ref, lines in by_ref.items()})
    held = {ref: sorted(set(api_keys)) for ref, api_keys in (live_keys or {}).items()}
    if any(held.values()):
        pipe.hset(keys.recovery_heard_keys, mapping={ref: json.dumps(k) for ref, k in held.items() if k})
    pipe.execute()
    return sum(1 for lines in by_ref.values() for o in lines.values() if o["verdict"] != IN_DOUBT)


def nothing_lost(client: redis.Redis, keys: Keys) -> int:
    """A recovery of a sound state (adoptions only) learns no outcome: what an earlier recovery was given stands,
    and where there never was one, our records hold every outcome. Returns how many heard outcomes stand."""
    client.set(keys.recovery_heard_given, "1", nx=True)
    return sum(len(json.loads(raw)) for raw in client.hvals(keys.recovery_heard))


def heard_for(client: redis.Redis, keys: Keys, customer_ref: str) -> tuple[bool, list[HeardOutcome]]:
    """Whether every outcome the upstream heard is known (given to a recovery, or never lost), and those of
    ``customer_ref`` a recovery was given (``outcomes_known`` says whether they are all known for that customer)."""
    given, raw = client.get(keys.recovery_heard_given), client.hget(keys.recovery_heard, customer_ref)
    lines: dict[str, dict[str, Any]] = json.loads(raw) if raw else {}
    return given in (None, "1"), [HeardOutcome(**fields) for fields in lines.values()]


def outcomes_known(given: bool, heard: Iterable[HeardOutcome]) -> bool:
    """Whether a customer's funding outcomes are all known: the heard file is complete (``given``) and none of the
    customer's lines was told blocked without an outcome since (``IN_DOUBT``: its fate may have been sent again
    past the ledger's silence, so a line the ledger does not show waits for an operator, as without the file)."""
    return given and not any(o.verdict == IN_DOUBT for o in heard)


def heard_live_keys(client: redis.Redis, keys: Keys, customer_ref: str) -> list[str]:
    """The API keys of ``customer_ref`` the upstream held live at the loss, as the last recovery was told."""
    raw = client.hget(keys.recovery_heard_keys, customer_ref)
    return [str(k) for k in json.loads(raw)] if raw else []


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
