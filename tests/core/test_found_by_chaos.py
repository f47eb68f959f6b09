"""Worker faults the chaos run of issue 10 found (``bench/chaos.py``), each reproduced on one customer with real
Redis and the in-process simulator. These tests fail until the worker is fixed; the report of the run that found
each one is in the test's docstring."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from handlers.events import parse_event
from handlers.records import TransferIntent, TransferStatus
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.bootstrap import App, state_mirror
from worker.exchange import RetryableError
from worker.exchange.models import AccountType, Direction
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import declare_republished, recover
from worker.store.epoch import Mirror, MirrorEntry, StateGuard
from worker.verify import Violation, check


@pytest.fixture
def rig_redis(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def outbound(app: App) -> list[dict[str, Any]]:
    return [json.loads(fields["event"]) for _, fields in app.redis.xrange(app.keys.outbound)]


def told(rig: Rig, app: App, published: list[dict[str, Any]], heard: list[dict[str, Any]]) -> list[Violation]:
    """``worker.verify.check``'s verdict on what the upstream heard (``heard``) against the exchange."""
    return [
        v
        for v in check(
            [parse_event(e, None) for e in published],
            rig.state(),
            app.store.load,
            app.store.journal,
            naming=app.policy.naming,
            keyring=app.keyring,
            probe=rig.key_works,
            funding_caps=app.settings.funding_cap_per_customer,
            outbound=heard,
        )
        if v.invariant in ("the upstream was told the truth", "refused funding never sent")
    ]


def lose_the_answer_of_the_first_transfer(rig: Rig, ref: str) -> None:
    """Run until the first transfer request was committed and its answer dropped."""
    rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
    for _ in range(10):
        rig.run(ref)
        if rig.state()["stats"]["faults"].get("drop", 0):
            break
    rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 0.0}}}})
    assert rig.state()["stats"]["faults"].get("drop", 0) == 1


def test_a_lost_answer_of_a_transfer_that_failed_is_not_told_completed(redis_url: str, key_prefix: str) -> None:
    """Found by ``bench/chaos.py --customers 50 --kills 2 --quick`` (seed 1, ``--client-oid reject``, worker
    ``reject``, transfer failure share 0.02): customer ``…-00018``'s approval line was told ``funding.completed``
    while its only transfer was FAILURE. Journal: ``intent transfer`` → ``outcome_unknown`` (the answer was
    dropped) → ``intent transfer`` (re-sent under the same clientOid) → ``transfer.committed`` with evidence
    ``duplicate``, note "the exchange holds a transfer under this clientOid (clientOid duplicated)".

    Under ``reject`` the exchange refuses every repeat of a used clientOid, also that of a transfer which was
    accepted and then FAILED (docs/sandbox.md, "Its clientOid stays used"). "clientOid duplicated" proves that a
    transfer under the clientOid exists, not that it moved money: the worker must read that transfer's status
    (ledger / Get Transfer History) before it records the line committed and tells the upstream."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "reject", "transfer_failure_share": 1.0})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="reject")
    try:
        ev = events_for("chaos-failed-duplicate")
        published = [ev["created"], ev["kyc"]]
        ref, _ = rig.publish(*published)
        lose_the_answer_of_the_first_transfer(rig, ref)
        rig.settle(ref)
        assert [t["status"] for t in rig.state()["transfers"]] == ["FAILURE"], "the exchange moved nothing"
        line = rig.record(ref).transfers.get("chaos-failed-duplicate-kyc_approved#0")
        assert line is None or line.status is not TransferStatus.COMMITTED, f"recorded as paid: {line}"
        assert told(rig, rig.app, published, outbound(rig.app)) == []
    finally:
        rig.close()


@pytest.mark.parametrize(
    ("exchange_mode", "worker_mode", "context"),
    [("reject", "reject", "order_id"), ("dedupe", "unknown", "order_id"), ("accept", "unknown", "client_oid")],
)
def test_an_offboarding_republished_after_a_loss_does_not_refuse_a_line_already_paid(
    redis_url: str, key_prefix: str, exchange_mode: str, worker_mode: str, context: str
) -> None:
    """Found by ``bench/chaos.py --customers 50 --kills 2 --quick`` (seed 1, ``--client-oid reject``, state loss
    ``restart``): five offboarded customers (``…-00022``, ``…-00032``, ``…-00039``, ``…-00040``, ``…-00048``)
    whose lines were paid before Redis lost its state were told ``funding.refused`` ("the customer was offboarded
    before this line was funded") after the recovery, although the upstream had heard ``funding.completed`` for
    the same lines before the loss and the transfers stand on the exchange. Journal after the recovery:
    ``audited`` (sub-account found, keys without secret) → ``api_key.revoked`` → ``funding.refused`` for each
    line → ``balances_read`` → sweep → ``customer.closed``.

    ``handlers.planner._offboard`` refuses every line the (rebuilt) record does not know, without the evidence
    ``_funding`` looks for in a recovered record (``recovered_at_ms``): the money is swept back, but the upstream
    is told a paid line was never paid."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": exchange_mode, "ledger_context": context})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR=worker_mode)
    try:
        ev = events_for(f"chaos-paid-then-lost-{exchange_mode}")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        heard = outbound(rig.app)  # the upstream read the stream before Redis lost it
        assert [e["type"] for e in heard if e["type"].startswith("funding.")] == ["funding.completed"]
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            published = [ev["created"], ev["kyc"], ev["offboard"]]
            ref = redeliver(app, published)
            declare_republished(app)  # the on-call, once the upstream has re-published
            settle_with(rig, app, ref)
            assert app.store.load(ref).closed_at_ms is not None
            refused = [e["key"] for e in outbound(app) if e["type"] == "funding.refused"]
            assert refused == [], f"a paid line told refused: {refused}"
            assert told(rig, app, published, heard + outbound(app)) == []
        finally:
            app.close()
    finally:
        rig.close()


def test_a_failed_read_of_a_ledger_entrys_transfer_is_retried_not_left_to_an_operator(
    redis_url: str, key_prefix: str
) -> None:
    """Seen in the chaos run of the previous code (``bench/chaos.py --customers 50 --kills 2 --quick``, seed 1,
    ``reject`` exchange, worker ``unknown``): a dead letter "fund:…-00033-kyc_approved-1#0: transfer … of 100
    USDT: outcome unknown (the transfers behind these ledger entries could not be read: order …); check with
    KuCoin, then decide with `provisioner customer settle-transfer`".

    The ledger listed our lost transfer by its orderId; looking that order up (Get Transfer History) met one
    injected 5xx, and ``money_steps._counterparty`` turned the retryable error into "cannot tell", so a transfer
    the exchange's records do decide was blocked for a human. A retryable read error should be retried."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "order_id"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("chaos-lookup-5xx")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        lose_the_answer_of_the_first_transfer(rig, ref)
        rig.exchange.update_config({"faults": {"per_endpoint": {"get_transfer_history": {"5xx": 1.0}}}})
        for _ in range(10):  # up to the ledger judgement, which meets the failing lookup
            wake = rig.app.due.next_due_ms(ref)
            if wake is not None:
                rig.clock.advance_ms(max(0, wake - int(rig.clock() * 1000)))
            with contextlib.suppress(RetryableError):  # the actor would retry the message
                rig.run(ref)
            if rig.state()["stats"]["faults"].get("5xx", 0):
                break
        rig.exchange.update_config({"faults": {"per_endpoint": {"get_transfer_history": {"5xx": 0.0}}}})
        assert rig.state()["stats"]["faults"].get("5xx", 0) >= 1
        rig.settle(ref)
        record = rig.record(ref)
        assert [s for s, b in record.blocked.items() if b.manual] == [], record.blocked
        assert record.transfers["chaos-lookup-5xx-kyc_approved#0"].status is TransferStatus.COMMITTED
    finally:
        rig.close()


class _WriteDuringRead(Mirror):
    """This host's mirror, read while another worker process of the host commits a write and notes it before its
    exchange write (``StateGuard.persist``): what happens when a worker starts while the others are busy."""

    def __init__(self, mirror: Mirror, other_process_writes: Callable[[], None]) -> None:
        super().__init__(mirror.directory, mirror._identity)
        self._other = other_process_writes

    def read(self) -> MirrorEntry | None:
        self._other()
        return super().read()


def test_a_worker_starting_while_others_write_does_not_take_it_for_a_rollback(rig_redis: Rig) -> None:
    """Found by ``bench/chaos.py --customers 50 --kills 2 --quick --client-oid accept --ledger-context client_oid
    --state-loss flush`` (seed 1): two seconds after ``provisioner recover``, while the workers came out of their
    halted mode one by one and the first were already storing the re-published events, two workers halted the
    whole deployment again: "state lost (rolled_back): Redis is at write 122 of epoch 64d5…, but this host saw
    write 124" (events ``…-00011-created`` and ``…-00013-created``); the host's mirror held 124 (the ``.proc`` file
    of a busy worker process), and Redis lost nothing.

    ``StateGuard.establish`` reads Redis' write count first and the host's mirror second; a worker process of the
    same host that commits and notes its count in between (``persist``, before every exchange write) makes Redis
    look behind the mirror. Reading the mirror first would leave no such window."""
    rig = rig_redis
    ev = events_for("chaos-busy-host")
    ref, _ = rig.publish(ev["created"], ev["kyc"])
    rig.settle(ref)

    def another_process_writes() -> None:
        rig.publish(ev["ip"])  # a guarded write (the event is stored) ...
        rig.app.state.persist()  # ... noted in the host's mirror before its exchange write

    starting = StateGuard(
        rig.app.redis,
        rig.app.keys,
        _WriteDuringRead(state_mirror(rig.settings), another_process_writes),
        clock=rig.clock,
    )
    starting.establish()  # raises StateLost("rolled_back") although nothing was lost
    assert starting.epoch is not None and starting.epoch.id == rig.app.state.epoch.id


def test_an_operators_not_committed_on_a_recovered_record_lets_the_line_be_sent(
    redis_url: str, key_prefix: str
) -> None:
    """Found by ``bench/chaos.py --customers 50 --kills 2 --quick --client-oid accept --ledger-context none``
    (seed 4, worker ``unknown``, state loss ``restart``): after the recovery the on-call answered 295
    ``not_committed`` verdicts for 11 lines (54 for customer ``…-00000`` alone) and none was ever paid. Journal
    of ``…-00000``, every five seconds: ``blocked`` "fund:…-kyc_approved#0: transfer … of 25 USDT: outcome
    unknown (6 ledger entries of the same amount since the first send carry no orderId or clientOid …)" →
    operator ``transfer.not_committed`` → ``blocked`` (the same reason) → …

    A line of a recovered record is sent evidence-first: the ledger is searched before the send. Where the
    ledger names nothing (``none``) and other customers were paid the same amount, it is undecided, so the line
    is blocked for an operator; the operator's ``not_committed`` unblocks it, but the next plan searches the
    ledger first again and blocks it again. The verdict must be what lets the line go out (operator.py: "a funding
    line is sent again under the same clientOid")."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        waiting = events_for("chaos-waiting")
        paid = events_for("chaos-paid-first")
        (waiting_ref,) = rig.publish(waiting["created"])
        rig.settle(waiting_ref)  # its sub-account exists before the loss; its approval comes after
        paid_ref, _ = rig.publish(paid["created"], paid["kyc"])
        rig.settle(paid_ref)  # another customer paid the same 250 USDT: an anonymous entry in the ledger
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [waiting["created"], waiting["kyc"]])
            declare_republished(app)  # the on-call, once the upstream has re-published
            settle_with(rig, app, ref)
            step = "fund:chaos-waiting-kyc_approved#0"
            assert [s for s, b in app.store.load(ref).blocked.items() if b.manual] == [step]
            assert not [t for t in rig.state()["transfers"] if t["specialUid"] == app.store.load(ref).sub_account.uid]
            settle_transfer(app, ref, step, verdict=TransferVerdict.NOT_COMMITTED, who="on-call")
            settle_with(rig, app, ref)
            record = app.store.load(ref)
            assert [s for s, b in record.blocked.items() if b.manual] == [], "blocked again after the verdict"
            to_it = [t for t in rig.state()["transfers"] if t["specialUid"] == record.sub_account.uid]
            assert [t["amount"] for t in to_it] == ["250"]
        finally:
            app.close()
    finally:
        rig.close()


def test_a_ledger_judgement_with_many_lookups_completes_despite_transient_faults(
    redis_url: str, key_prefix: str
) -> None:
    """Found by the full-size ``bench/chaos.py`` (1 000 customers, seed 1, ``--client-oid reject``, ledger
    ``order_id``, state loss ``restart``, 10 % faults): after the recovery 414 transfer intents stayed pending for
    ten minutes (until the run was stopped) while the exchange served 38 166 ledger reads and 28 690 Get Transfer
    History lookups, and 13 532 reconcile messages piled up for 504 customers: a livelock.

    Judging a lost transfer from a ledger that names only orderIds looks up, one by one, every transfer of the
    same amount since the first send (up to ``MAX_ORDER_LOOKUPS``, 50). With hundreds of customers paid the same
    amounts, every judgement makes ~50 calls in a row, and a single transient error (a 5xx, a dropped answer, a
    429 burst) throws the run away and the next run starts from the first lookup again: at 10 % faults a judgement
    of 50 calls completes once in ~200 tries. Here: 40 other transfers of the same amount, 15 % 5xx on the
    lookups; the line must be settled within 40 runs (what was read should not be read again)."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "order_id", "seed": 3})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("chaos-many-lookups")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        lose_the_answer_of_the_first_transfer(rig, ref)
        for i in range(40):  # other customers paid the same amount: each entry must be looked up
            other = rig.app.exchange.sub_accounts.add(account_name=f"othercustomer{i:03d}")
            rig.app.exchange.transfers.transfer(
                currency="USDT",
                amount=Decimal(250),
                direction=Direction.OUT,
                account_type=AccountType.MAIN,
                special_uid=other.uid,
                special_account_type=AccountType.TRADE,
                client_oid=f"someone-else-{i}",
            )
        rig.exchange.update_config({"faults": {"per_endpoint": {"get_transfer_history": {"5xx": 0.15}}}})
        for _ in range(40):
            if rig.record(ref).pending is None:
                break
            wake = rig.app.due.next_due_ms(ref)
            if wake is not None:
                rig.clock.advance_ms(max(0, wake - int(rig.clock() * 1000)))
            with contextlib.suppress(RetryableError):  # the actor would retry the message
                rig.run(ref)
        lookups = rig.state()["stats"]["requests"].get("get_transfer_history", 0)
        assert rig.record(ref).pending is None, f"still unsettled after 40 runs and {lookups} lookups"
    finally:
        rig.close()


def test_after_a_loss_the_per_customer_cap_counts_lines_paid_before_it(redis_url: str, key_prefix: str) -> None:
    """Found by the full-size ``bench/chaos.py --client-oid accept --ledger-context client_oid --state-loss
    flush`` (1 000 customers, seed 1): customers ``…-00086``, ``…-00419`` and ``…-00531`` were paid 10 001, 10 051
    and 10 050 USDT against a per-customer cap of 10 000, and told ``funding.refused`` for lines that were paid.
    Journal of ``…-00086`` after the recovery: ``audited`` → ``transfer.accepted``/``committed`` for
    ``kyc_approved#0`` (100 USDT, sent evidence-first: the ledger shows nothing under its clientOid) →
    ``funding.refused`` for ``topup0#0`` (9 901 USDT, "per-customer cap … would be exceeded (already funded
    100)") — but ``topup0#0`` was paid before the loss, when ``kyc_approved#0`` (its transfer FAILED, then
    retried) was the one refused by the cap.

    After a loss the planner decides the cap from the rebuilt record, which knows only the lines found so far:
    a line refused before the loss is paid on top of one paid before it, and the one paid before is refused
    without the ledger being asked (``handlers.planner._funding``: the cap decision comes before the
    evidence-first search). Cap here 1 000 USDT: 100 (failed, retried, refused) + 901 (paid)."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "client_oid"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("chaos-cap-after-loss", funding=[("USDT", "100")])
        top_up = {
            "id": "chaos-cap-after-loss-topup0",
            "type": "customer.funding_requested",
            "customer_id": "chaos-cap-after-loss",
            "occurred_at": "2026-11-18T10:02:30Z",
            "data": {"funding": [{"currency": "USDT", "amount": "901"}]},
        }
        rig.exchange.update_config({"transfer_failure_share": 1.0})
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)  # the approval's line FAILED at the exchange: blocked for a retry
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.publish(top_up)
        rig.settle(ref)  # the top-up is paid (901)
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)  # the retried approval line no longer fits: refused by the cap
        paid = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["status"] == "SUCCESS"]
        assert [t["amount"] for t in paid] == ["901"]
        heard = outbound(rig.app)
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            published = [ev["created"], ev["kyc"], top_up]
            ref = redeliver(app, published)
            settle_with(rig, app, ref)
            paid = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["status"] == "SUCCESS"]
            assert sum(Decimal(t["amount"]) for t in paid) <= 1000, f"cap exceeded: {[t['amount'] for t in paid]}"
            assert told(rig, app, published, heard + outbound(app)) == []
        finally:
            app.close()
    finally:
        rig.close()


def test_after_a_loss_a_line_paid_under_a_later_attempt_is_not_paid_again(redis_url: str, key_prefix: str) -> None:
    """Found by the full-size ``bench/chaos.py --client-oid accept --ledger-context none`` (1 000 customers, seed
    1, state loss ``restart``): ten lines were paid twice (e.g. ``…-00033-topup0#0``, ``…-00126-kyc_approved#1``;
    two customers above the cap: 10 010 and 19 990 USDT). Before the loss the line's first transfer FAILED and the
    on-call's retry paid it under the next clientOid (attempt 1); the loss took the attempt count with it. After
    the recovery the worker asked only about attempt 0's clientOid — journal: ``blocked`` "transfer f5d9… of 5
    USDT: outcome unknown (58 ledger entries of the same amount … carry no orderId or clientOid …)" → operator
    ``transfer.not_committed`` (true: that transfer FAILED) → ``intent`` → ``transfer.accepted`` →
    ``transfer.committed``: the line's second payment.

    After a loss a line may have been sent under any attempt's clientOid; asking (or searching) only attempt 0's
    lets a truthful "that transfer did not happen" pay the line again."""
    config = SandboxConfig.from_dict({"duplicate_client_oid": "accept", "ledger_context": "none"})
    rig = Rig(redis_url, key_prefix, config=config, PROVISIONER_CLIENT_OID_BEHAVIOUR="unknown")
    try:
        ev = events_for("chaos-later-attempt")
        rig.exchange.update_config({"transfer_failure_share": 1.0})
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)  # attempt 0 FAILED: blocked for a retry
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)  # attempt 1 paid
        line = "chaos-later-attempt-kyc_approved#0"
        assert rig.record(ref).transfers[line].attempt == 1
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["created"], ev["kyc"]])
            for _ in range(5):  # the on-call answers what the worker asks, truthfully, from the exchange's records
                settle_with(rig, app, ref)
                record = app.store.load(ref)
                asked = [(s, b) for s, b in record.blocked.items() if b.manual and b.intent is not None]
                if not asked:
                    break
                for step, block in asked:
                    # every clientOid the block asks about (fix: the block names each attempt's, not attempt 0's)
                    oids = TransferIntent.of(block.intent).asked_about(block.intent.token)
                    assert len(oids) > 1, "after a loss the worker must ask about every attempt's clientOid"
                    under = [t for t in rig.state()["transfers"] if t["clientOid"] in oids]
                    done = [t for t in under if t["status"] == "SUCCESS"]
                    verdict = TransferVerdict.COMMITTED if done else TransferVerdict.NOT_COMMITTED
                    order = done[0]["orderId"] if done else None
                    oid = done[0]["clientOid"] if done else None
                    settle_transfer(app, ref, step, verdict=verdict, order_id=order, client_oid=oid, who="on-call")
            paid = [t for t in rig.state()["transfers"] if t["direction"] == "OUT" and t["status"] == "SUCCESS"]
            assert [t["amount"] for t in paid] == ["250"], "the line is paid once"
        finally:
            app.close()
    finally:
        rig.close()


def test_a_line_paid_just_before_a_loss_is_told_even_if_the_offboarding_closes_the_customer_first(
    redis_url: str, key_prefix: str
) -> None:
    """Found by the full-size ``bench/chaos.py`` (1 000 customers, seed 1, ``reject``, ledger ``order_id``, state
    loss ``restart``, at c077d13): customer ``…-00149``'s approval line (10 USDT) was paid just before Redis lost its
    state, and the upstream never heard ``funding.completed`` for it (the event was lost with the stream, or the
    transfer was still PROCESSING). After the recovery the re-published offboarding (urgent queue) was stored
    first; journal: ``customer.opened`` → ``audited`` → ``balances_read`` (TRADE USDT 10) → sweep → ``customer.closed``
    ("swept USDT 10"); the re-published ``customer.created`` and ``customer.kyc_approved`` then came to a closed
    customer and were answered ``event.ignored``. The line was paid and the upstream was never told so (nor that
    it was refused): the checker's "funding.completed iff a transfer for that line exists" fails.

    A record rebuilt after a loss knows only the events stored since; closing it on the offboarding alone leaves
    the lines of events that come back later unaccounted for."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("chaos-closed-first", funding=[("USDT", "10")])
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)  # paid; the upstream had not read funding.completed yet when Redis lost everything
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            ref = redeliver(app, [ev["offboard"]])  # the urgent queue: the offboarding is stored first
            settle_with(rig, app, ref)
            for event in (ev["created"], ev["kyc"]):
                app.intake.accept(event)  # then the rest of the re-publication
            declare_republished(app)  # the on-call, once the upstream has re-published
            settle_with(rig, app, ref)
            published = [ev["created"], ev["kyc"], ev["offboard"]]
            assert told(rig, app, published, outbound(app)) == []
        finally:
            app.close()
    finally:
        rig.close()
