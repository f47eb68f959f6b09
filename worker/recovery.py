"""Recovering from a lost or rolled-back state, and adopting sub-accounts an older system created.

``recover`` is what ``provisioner recover`` runs once an operator has looked at why the workers halted:

1. it lists every sub-account of the broker on the exchange (the recovery index ``{p}:recovery:accounts``: name →
   uid), so that each customer's sub-account can be found by the names we derive for it;
2. it records adopted sub-accounts (a mapping of customer id → sub-account uid, for a broker migrating onto this
   worker), each as a record holding only that sub-account;
3. it keeps the funding outcomes the upstream heard before the loss, when given (``worker.heard``);
4. it starts a ``recovered`` state epoch and lifts the halt.

Once the upstream has re-published its events, the on-call declares it (``provisioner recover --republished``,
``declare_republished``): until then every funding line of a recovered customer not recorded is looked for before
it is decided, whatever its ``occurred_at`` says, since a line paid before the loss and not re-published yet is
unknown to the caps, and a re-published line may carry a new ``occurred_at``.

The ledger lists a transfer only after its lag (``PROVISIONER_LEDGER_LAG_MS``), so the day's caps ``recover``
seeds may miss a transfer in flight at the loss: it stores from when every transfer sent before the loss is listed
(the recovery's time plus the transfer settle delay, ``{p}:recovery:caps_due_at``), and until the caps are seeded
again from a ledger read made since, no funding line is sent for any customer, new ones included
(``worker.provisioning.caps_steps``).

Nothing is sent to the exchange here. The workers then audit every customer record before acting on it
(``worker.provisioning.audit_steps``): the sub-account is found by name, keys are listed (a key whose secret is
lost is replaced and revoked after the rotation grace), the outcomes the upstream heard are recorded, and every
funding line not recorded is looked for in the Special Account's ledger, then sent evidence-first (the exchange is
asked before money moves) — or, when the recovery was not given what the upstream heard, held for an operator
(it may have been refused before the loss). Re-delivered events therefore create no second sub-account, key or
transfer. The upstream should re-publish its events for the period the state lost (or all of them): duplicates
are harmless.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import structlog

from handlers.daily_cap import LEDGER_SKEW_MS
from handlers.journal import JournalAction
from handlers.planner import Policy
from handlers.records import CustomerRecord, SubAccountRecord
from worker.exchange import ExchangeClient
from worker.exchange.errors import ExchangeError
from worker.heard import HeardOutcome, nothing_lost, store_heard, store_refusals
from worker.ports import StorePorts
from worker.provisioning.caps_steps import seed_caps_from_ledger
from worker.provisioning.money_steps import ledger_line
from worker.store.customers import JournalEntry
from worker.store.epoch import Epoch, StateGuard
from worker.store.ledger import FundingLedger
from worker.store.lock import CustomerLock
from worker.store.subaccount_index import write_sub_account_index

__all__ = [
    "Adoption",
    "RecoveryError",
    "RecoveryPorts",
    "RecoveryReport",
    "declare_republished",
    "index_sub_accounts",
    "read_adoptions",
    "recover",
]

_log = structlog.get_logger(__name__)

_INDEX_CHUNK = 500
_DAY_MS = 86_400_000


class RecoveryPorts(StorePorts, Protocol):
    """What a recovery reads and writes: the state guard, the customers' store, locks and due schedule, the daily
    funding ledger, the exchange's sub-accounts and ledger, the naming policy and the clock.
    ``worker.bootstrap.App`` is one."""

    @property
    def ledger(self) -> FundingLedger: ...
    @property
    def state(self) -> StateGuard: ...
    @property
    def exchange(self) -> ExchangeClient: ...
    @property
    def policy(self) -> Policy: ...
    @property
    def clock(self) -> Callable[[], float]: ...


DECLARATION_BUSY_MARK_MS = 10 * 60_000
"""How long a declaration's dirty flag stays up (far beyond a run's lock time-to-live): a customer's next run
within it looks once more at what it planned."""


class RecoveryError(Exception):
    """The recovery cannot go ahead as asked (a bad mapping, a sub-account that does not exist, a busy customer)."""


@dataclass(frozen=True)
class Adoption:
    customer_id: str
    uid: str


@dataclass
class RecoveryReport:
    detected: str
    """What was wrong with the state (or ``ok``)."""
    sub_accounts: int = 0
    ours: int = 0
    adopted: list[str] = field(default_factory=list)
    epoch: Epoch | None = None
    seeded: dict[str, str] = field(default_factory=dict)
    """``YYYYMMDD:currency`` → what the Special Account's ledger shows moved out that day (the day's cap use)."""
    heard: int | None = None
    """Funding outcomes the upstream heard, recorded (``None``: not given)."""
    heard_complete: bool = False
    """Whether a line the heard outcomes do not mention counts as never decided."""
    seeded_heard: int = 0
    """Heard payments counted on a daily cap because the ledger did not list them yet when the caps were seeded."""
    caps_due_at_ms: int | None = None
    """After a loss: from when the ledger lists every transfer sent before it (the transfer settle delay, its lag
    included). No funding line is sent, for any customer, until the day's caps are seeded again from it."""
    naming_replaced: str | None = None
    """The naming fingerprint this recovery replaced with its own (a stray process's, recorded meanwhile)."""


def check_recovery_naming(app: RecoveryPorts, *, replace_naming: bool) -> str | None:
    """Whether this process may recover the deployment as it names customers: the naming fingerprint its state
    records, when another than this process's and ``replace_naming`` says a stray recovery recorded it (to be
    replaced); ``None`` when they agree or none is recorded. Raises ``RecoveryError`` for another one without
    ``replace_naming``, and with it when the state's own customers disprove this process's naming (a sample of
    records whose ref its secret does not derive from their customer id: the recorded naming is the deployment's,
    this shell's is not)."""
    recorded, mine = app.state.recorded_naming(), app.state.naming_fingerprint
    if recorded is None or mine is None or recorded == mine:
        return None
    if not replace_naming:
        raise RecoveryError(
            f"the deployment's state records naming fingerprint {recorded}, this shell's is {mine}: this shell's "
            "PROVISIONER_NAME_SECRET (or PROVISIONER_ACCOUNT_PREFIX) is not the deployment's; recover from a shell "
            f"that has it. Only if {recorded} was recorded by a stray recovery (from a shell of another secret) "
            "run again with --replace-naming, from a shell with the deployment's secret"
        )
    refs = [
        r.decode() if isinstance(r, bytes) else str(r)
        for r in app.redis.zrange(app.keys.customers, 0, NAMING_SAMPLE - 1)
    ]
    naming = app.policy.naming
    for ref, record in app.store.load_many(refs).items():
        if not record.customer_id.startswith("erased:") and naming.customer_ref(record.customer_id) != ref:
            raise RecoveryError(
                f"--replace-naming refused: the state's customers were named by the recorded naming {recorded}, "
                f"not by this shell's (customer ref {ref}): this shell's PROVISIONER_NAME_SECRET is not the "
                "deployment's"
            )
    return recorded


NAMING_SAMPLE = 50
"""How many of the state's customers ``--replace-naming`` checks against this process's naming."""


def read_adoptions(path: Path) -> list[Adoption]:
    """``customer_id,uid`` lines (a header line ``customer_id,uid`` is allowed). Raises ``RecoveryError`` naming the
    line of a malformed row."""
    adoptions: list[Adoption] = []
    with path.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            if not row or (number == 1 and [c.strip().lower() for c in row] == ["customer_id", "uid"]):
                continue
            if len(row) != 2 or not row[0].strip() or not row[1].strip().isdigit():
                raise RecoveryError(f"{path}:{number}: expected customer_id,uid (uid all digits)")
            adoptions.append(Adoption(row[0].strip(), row[1].strip()))
    customers = [a.customer_id for a in adoptions]
    if len(set(customers)) != len(customers):
        raise RecoveryError(f"{path}: a customer id appears twice")
    uids = [a.uid for a in adoptions]
    if len(set(uids)) != len(uids):
        raise RecoveryError(f"{path}: a sub-account uid appears twice")
    return adoptions


def declare_republished(app: RecoveryPorts, *, stamps_kept: bool = False) -> int:
    """The on-call's word that the upstream has re-published every event from before the last recovery after a
    loss: from now on a funding line whose event occurred later is new (sent without being looked for), every line
    the caps must count is known, and a transfer the ledger does not tie to a line by its clientOid may be judged
    by elimination. Until then every unrecorded line of a recovered customer is looked for first, and a line whose
    judgement would rest on elimination (or whose event is stamped after the loss) waits. ``stamps_kept``: the
    re-publication kept every event's own ``occurred_at``, so a line stamped after the loss is new too. Every
    customer is made due at once. Returns the time declared (ms). Raises ``RecoveryError`` when no recovery after
    a loss is open. The day's caps are seeded again from the ledger here; declared once the ledger lists every
    transfer sent before the loss (``RecoveryReport.caps_due_at_ms``), this is the re-seed funding waits for, else
    the first line decided after that moment re-seeds them (``worker.provisioning.caps_steps``)."""
    if app.redis.get(app.keys.recovery_lost_at) is None:
        raise RecoveryError("no recovery after a loss of our state to close: nothing to declare")
    now_ms = int(app.clock() * 1000)
    # once the ledger lists every payment made before the loss (a transfer in flight at the loss included, which
    # recover's seed may have missed), this read counts as the re-seed. The declaration does not need it: turned
    # away (a 429, a 5xx, any refusal), the first funding line decided after that moment seeds the caps, and none is
    # sent before
    try:
        seed_daily_caps(app)
    except ExchangeError as exc:
        _log.warning("declaration: the daily caps were not seeded now; the first funding line decided will", error=exc)
    with app.redis.pipeline(transaction=True) as pipe:
        pipe.set(app.keys.recovery_republished_at, str(now_ms))
        if stamps_kept:
            pipe.set(app.keys.recovery_stamps_kept, "1")
        else:
            pipe.delete(app.keys.recovery_stamps_kept)
        pipe.execute()
    refs = [str(r) for r in app.redis.zrange(app.keys.customers, 0, -1)]
    # from outside the customers' locks: a run that planned before the declaration looks again (dirty flag)
    app.due.schedule_many(refs, now_ms, mark_busy_ms=DECLARATION_BUSY_MARK_MS)
    return now_ms


def index_sub_accounts(app: RecoveryPorts) -> tuple[int, int, dict[str, str]]:
    """List every sub-account on the exchange into the recovery index. Returns (listed, named like ours,
    uid → name)."""
    return write_sub_account_index(
        app.exchange.sub_accounts.iter_all(), app.redis, app.keys, app.policy.naming, now_ms=int(app.clock() * 1000)
    )


def recover(
    app: RecoveryPorts,
    *,
    reason: str,
    adoptions: Iterable[Adoption] = (),
    force: bool = False,
    heard: Iterable[HeardOutcome] | None = None,
    heard_complete: bool = False,
    heard_keys: Mapping[str, Iterable[str]] | None = None,
    heard_refusals: Mapping[str, Mapping[str, str]] | None = None,
    replace_naming: bool = False,
) -> RecoveryReport:
    """Rebuild what can be rebuilt from the exchange and start a recovered state epoch (see the module docstring).

    ``heard``: every ``funding.completed`` / ``funding.refused`` the upstream received before the loss
    (``worker.heard``); ``None`` when not known. ``heard_complete``: nothing was waiting for delivery at the loss,
    so a line ``heard`` does not mention was never decided. ``heard_keys``: per customer reference, the API keys
    the upstream holds live (``worker.heard.read_heard_keys``): one the exchange no longer lists is told revoked.
    ``heard_refusals``: the events the upstream was told refused (``worker.heard.refusals_from_events``), final
    for their ids: recorded again, so that their re-publication is refused again.
    Without ``force`` (or adoptions) a state that is fine
    is left alone. A state recording another naming fingerprint than this process's is refused — this process's
    ``PROVISIONER_NAME_SECRET`` (or account prefix) is not the deployment's — unless ``replace_naming`` says the
    recorded one is a stray recovery's (then the recovery runs as after a loss and records this one). Raises
    ``RecoveryError``."""
    adoptions = list(adoptions)
    recorded = check_recovery_naming(app, replace_naming=replace_naming)  # a stray recovery's, to be replaced
    problem = app.state.diagnose(check_names=False)
    detected = "ok" if problem is None else f"{problem.kind}: {problem.reason}"
    if recorded is not None and problem is None:
        detected = f"naming: {recorded} recorded by a stray recovery, replaced"
        force = True  # whatever that recovery rebuilt is rebuilt again, named as the deployment names
    report = RecoveryReport(detected)
    if detected == "ok" and not force and not adoptions:
        return report
    report.sub_accounts, report.ours, by_uid = index_sub_accounts(app)
    missing = [a.uid for a in adoptions if a.uid not in by_uid]
    if missing:
        raise RecoveryError(f"no such sub-account of this broker: {', '.join(missing[:10])}")
    _refuse_ours(app, adoptions, by_uid)
    # a sound state's day counts what it paid and will pay, unless an earlier loss's re-seed is still due (the day
    # may be a rolled-back one): then as after a loss
    sound = detected == "ok" and not force and app.ledger.reseed_due() is None
    report.seeded = seed_daily_caps(app, sound=sound)
    if heard is None and detected == "ok" and not force:
        report.heard = nothing_lost(app.redis, app.keys)  # adoptions only: what is known stays known
        report.heard_complete = app.redis.get(app.keys.recovery_heard_given) == "1"
    else:
        heard = None if heard is None else list(heard)
        stored = store_heard(app.redis, app.keys, heard, complete=heard_complete, live_keys=heard_keys)
        if heard_refusals:
            store_refusals(app.redis, app.keys, heard_refusals)
        lost_at = int(app.clock() * 1000)
        app.redis.set(app.keys.recovery_lost_at, str(lost_at))
        app.redis.delete(app.keys.recovery_republished_at, app.keys.recovery_stamps_kept)
        # the record of deliveries went with the loss: no key issued before counts as delivered unrecorded (a
        # dispatcher that ran on the empty Redis before this took it for a first deployment)
        # (whatever this shell's settings). Deliveries count as tracked again only once a dispatcher passes after
        # this (``{p}:wh:seen``): a restored one may predate `webhooks disable`, whose tombstone the loss took
        app.redis.delete(app.keys.webhook_seen)
        if not app.redis.exists(app.keys.webhook_disabled):
            app.redis.set(app.keys.webhook_recording_since, "0")
        # the ledger lists a transfer in flight at the loss only after its lag: the caps just seeded may miss it
        report.caps_due_at_ms = lost_at + app.policy.transfer_settled_ms
        app.ledger.await_reseed(due_at_ms=report.caps_due_at_ms)
        report.seeded_heard = count_heard_payments(app, heard or [])
        report.heard = None if heard is None else stored
        report.heard_complete = heard is not None and heard_complete
    report.epoch = app.state.recover(reason=reason, replace_naming=replace_naming)
    report.naming_replaced = recorded
    for adoption in adoptions:
        _adopt(app, adoption, by_uid[adoption.uid])
        report.adopted.append(adoption.customer_id)
    return report


def _refuse_ours(app: RecoveryPorts, adoptions: list[Adoption], by_uid: dict[str, str]) -> None:
    """An adopted sub-account must be an older system's: not one named the way we name our customers' (this
    customer's own included: adopting it would take the lines we paid into it for the previous system's, and
    ``recover`` finds it by its name without adopting), and not one another record of ours holds. Raises
    ``RecoveryError``."""
    naming = app.policy.naming
    for adoption in adoptions:
        name = by_uid[adoption.uid]
        if name in naming.account_names(adoption.customer_id):
            raise RecoveryError(
                f"sub-account {adoption.uid} ({name}) is {adoption.customer_id}'s own, created by us (named like "
                "ours), not an older system's: recover finds it without --adopt; remove the row"
            )
        if naming.is_account_name(name):
            raise RecoveryError(f"sub-account {adoption.uid} ({name}) is one of our customers', not an older system's")
    held = _held_uids(app)
    for adoption in adoptions:
        ref = naming.customer_ref(adoption.customer_id)
        holder = held.get(adoption.uid)
        if holder is not None and holder != ref:
            raise RecoveryError(f"sub-account {adoption.uid} is already another customer's ({holder})")


def _held_uids(app: RecoveryPorts) -> dict[str, str]:
    """Sub-account uid → the customer reference whose record holds it."""
    refs = [str(r) for r in app.redis.zrange(app.keys.customers, 0, -1)]
    records = app.store.load_many(refs, chunk=_INDEX_CHUNK)
    return {record.sub_account.uid: ref for ref, record in records.items() if record.sub_account is not None}


def seed_daily_caps(app: RecoveryPorts, *, sound: bool = False) -> dict[str, str]:
    """Rebuild today's and yesterday's use of the Special Account's daily caps from its ledger (transfers out to
    sub-accounts), so that a loss of our state does not reset them (``sound``: nothing was lost, an adoption: the
    day keeps the larger of its count and the ledger's). A read made once the ledger lists every transfer sent
    before the last loss (``FundingLedger.reseed_due``) lets funding lines be decided again. Returns what was
    seeded."""
    now_ms = int(app.clock() * 1000)
    seeded = seed_caps_from_ledger(
        app.exchange.assets,
        app.ledger,
        app.store,
        app.settings.currencies,
        now_ms,
        settled_ms=app.policy.transfer_settled_ms,
        sound=sound,
    )
    app.ledger.mark_reseeded(read_at_ms=now_ms)
    return seeded


def count_heard_payments(app: RecoveryPorts, heard: Iterable[HeardOutcome]) -> int:
    """Count on its day's Special Account cap every heard payment of today or yesterday that the ledger may not
    list yet (told within its lag, ``PROVISIONER_LEDGER_LAG_MS``, of now, or at an unknown time: then today), so
    the caps seeded from the ledger lose none and count none twice. Every customer's payments at once: the caps
    hold before any customer is re-published. Returns how many were counted."""
    now_ms = int(app.clock() * 1000)
    today = now_ms // _DAY_MS * _DAY_MS
    unlisted_after = now_ms - app.settings.ledger_lag_ms - LEDGER_SKEW_MS
    counted = 0
    for outcome in heard:
        told = outcome.occurred_ms
        if outcome.verdict != "completed" or (told is not None and (told < unlisted_after or told < today - _DAY_MS)):
            continue
        at = now_ms if told is None else told
        day = datetime.fromtimestamp(at / 1000, tz=UTC).strftime("%Y%m%d")
        app.ledger.reserve(
            day=day,
            line=ledger_line(outcome.customer_ref, outcome.key),
            currency=outcome.currency,
            amount=outcome.amount_decimal,
            cap=None,
        )
        counted += 1
    return counted


def _adopt(app: RecoveryPorts, adoption: Adoption, account_name: str) -> None:
    """A record for ``adoption`` holding only its sub-account, audited by the workers before anything is done."""
    ref = app.policy.naming.customer_ref(adoption.customer_id)
    lock = CustomerLock(app.redis, app.keys, ref, ttl_ms=app.settings.lock_ttl_ms)
    if not lock.acquire():
        raise RecoveryError(f"customer {adoption.customer_id} is being reconciled; run recover again")
    try:
        record = app.store.load(ref)
        if record is not None and record.sub_account is not None and record.sub_account.uid != adoption.uid:
            raise RecoveryError(
                f"customer {adoption.customer_id} already has sub-account {record.sub_account.uid}, not {adoption.uid}"
            )
        now = int(app.clock() * 1000)
        base = record or CustomerRecord.new(ref, adoption.customer_id)
        adopted = base.model_copy(
            update={
                "sub_account": SubAccountRecord(uid=adoption.uid, account_name=account_name, created_at_ms=now),
                "audited_epoch": None,
                "adopted_at_ms": base.adopted_at_ms or now,
            }
        )
        assert lock.token is not None
        app.store.commit(
            lock.token,
            record,
            adopted,
            journal=[JournalEntry(now, JournalAction.ADOPTED, {"uid": adoption.uid}, actor="operator")],
            now_ms=now,
        )
        app.due.schedule(ref, now)
    finally:
        lock.release()
