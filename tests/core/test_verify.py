"""The invariant checker passes a correct end state and catches each kind of violation."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from decimal import Decimal

import pytest

from handlers.events import parse_event
from handlers.records import SealedSecret
from sandbox import SandboxConfig
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, redeliver, second_host, settle_with
from worker.bootstrap import App
from worker.exchange.models import AccountType, Direction, Permission
from worker.provisioning.operator import TransferVerdict, settle_transfer
from worker.recovery import Adoption, declare_republished, recover
from worker.verify import Violation, check


@pytest.fixture
def rig(redis_url: str, key_prefix: str) -> Iterator[Rig]:
    rig = Rig(redis_url, key_prefix)
    yield rig
    rig.close()


def run(rig: Rig, *lifecycles: list[dict]) -> list[dict]:
    published = []
    for events in lifecycles:
        for event in events:
            (ref,) = rig.publish(event)
            rig.settle(ref)
            published.append(event)
    return published


def verify(rig: Rig, published: list[dict]) -> list[Violation]:
    return rig.verify(published)


def lifecycle(name: str, *, offboard: bool) -> list[dict]:
    ev = events_for(name)
    return [ev["created"], ev["kyc"], ev["ip"], ev["rotate"]] + ([ev["offboard"]] if offboard else [])


def test_a_correct_end_state_has_no_violations(rig: Rig) -> None:
    never_created = {**events_for("ghost")["kyc"]}
    published = run(rig, lifecycle("v-live", offboard=False), lifecycle("v-gone", offboard=True), [never_created])
    assert verify(rig, published) == []


def test_an_orphan_key_is_caught(rig: Rig) -> None:
    published = run(rig, lifecycle("v-orphan", offboard=False))
    uid = rig.record(rig.app.policy.naming.customer_ref("v-orphan")).sub_account.uid
    rig.app.exchange.api_keys.add(
        uid=uid,
        passphrase="Passphrase123",
        ip_whitelist=["198.51.101.7"],
        permissions=[Permission.SPOT],
        label="prov-g0001",
    )
    found = {v.invariant for v in verify(rig, published)}
    assert "no key without a held secret" in found


def test_a_double_transfer_and_a_stray_transfer_are_caught(rig: Rig) -> None:
    rig.exchange.update_config({"duplicate_client_oid": "accept"})
    published = run(rig, lifecycle("v-double", offboard=False))
    record = rig.record(rig.app.policy.naming.customer_ref("v-double"))
    oid = record.transfers["v-double-kyc_approved#0"].client_oid
    for client_oid in (oid, "someone-elses"):
        rig.app.exchange.transfers.transfer(
            currency="USDT",
            amount=Decimal(250),
            direction=Direction.OUT,
            account_type=AccountType.MAIN,
            special_uid=record.sub_account.uid,
            special_account_type=AccountType.TRADE,
            client_oid=client_oid,
        )
    found = {v.invariant for v in verify(rig, published)}
    assert {"each funding line exactly once", "nothing else transferred"} <= found


def test_a_secret_that_is_not_the_issued_one_is_caught(rig: Rig) -> None:
    published = run(rig, lifecycle("v-secret", offboard=False))
    ref = rig.app.policy.naming.customer_ref("v-secret")
    record = rig.record(ref)
    (key,) = record.live_keys
    wrong = rig.app.keyring.seal({"secret": "not-the-secret", "passphrase": "nope"})
    forged = record.model_copy(
        update={"keys": tuple(k.model_copy(update={"sealed": wrong}) if k is key else k for k in record.keys)}
    )
    rig.app.redis.set(rig.app.keys.record(ref), forged.model_dump_json())
    assert "secret is what the exchange issued" in {v.invariant for v in verify(rig, published)}
    garbage = forged.model_copy(
        update={
            "keys": tuple(
                k.model_copy(update={"sealed": SealedSecret(key_id="dev1", token="gAAAAAbroken")}) for k in forged.keys
            )
        }
    )
    rig.app.redis.set(rig.app.keys.record(ref), garbage.model_dump_json())
    assert "secret decrypts" in {v.invariant for v in verify(rig, published)}


def test_balance_left_after_offboarding_and_a_second_sub_account_are_caught(rig: Rig) -> None:
    published = run(rig, lifecycle("v-left", offboard=True))
    uid = rig.record(rig.app.policy.naming.customer_ref("v-left")).sub_account.uid
    rig.exchange.credit(uid, "USDT", "TRADE", "1")
    assert "offboarded customers hold no balance" in {v.invariant for v in verify(rig, published)}
    rig.app.exchange.sub_accounts.add(account_name=rig.app.policy.naming.account_name("v-left", 1))
    assert "exactly one sub-account" in {v.invariant for v in verify(rig, published)}


def test_a_sub_account_for_a_customer_never_created_is_caught(rig: Rig) -> None:
    published = [events_for("v-never")["kyc"]]
    rig.app.exchange.sub_accounts.add(account_name=rig.app.policy.naming.account_name("v-never", 0))
    assert [v.invariant for v in verify(rig, published)] == ["none for customers never created"]


# --- top-ups, refusals, failed transfers, adoption, lost secrets, and what the upstream was told ---------------


def topup(customer: str, name: str, minute: int, funding: list[tuple[str, str]]) -> dict:
    """A ``customer.funding_requested`` of ``customer`` at 10:<minute> (``events_for``'s lifecycle is 10:00–10:04)."""
    return {
        "id": f"{customer}-{name}",
        "type": "customer.funding_requested",
        "customer_id": customer,
        "occurred_at": f"2026-11-18T10:{minute:02d}:00Z",
        "data": {"funding": [{"currency": c, "amount": a} for c, a in funding]},
    }


def told(rig: Rig, published: list[dict], outbound: list[dict] | None = None, app: App | None = None) -> set[str]:
    """The invariants `worker.verify.check` finds violated, given what the upstream received (default: all of
    ``{prefix}:outbound``)."""
    return {v.invariant for v in violations(rig, published, outbound, app)}


def violations(
    rig: Rig, published: list[dict], outbound: list[dict] | None = None, app: App | None = None
) -> list[Violation]:
    app = app or rig.app
    if outbound is None:
        outbound = [json.loads(fields["event"]) for _, fields in app.redis.xrange(app.keys.outbound)]
    return check(
        [parse_event(e, None) for e in published],
        rig.state(),
        app.store.load,
        app.store.journal,
        naming=app.policy.naming,
        keyring=app.keyring,
        probe=rig.key_works,
        funding_caps=app.settings.funding_cap_per_customer,
        outbound=outbound,
        daily_caps=app.settings.funding_cap_per_day,
    )


def send_under(rig: Rig, ref: str, client_oid: str, amount: str) -> None:
    """A transfer of ``amount`` USDT into the customer's sub-account under ``client_oid`` (not the worker's doing)."""
    rig.app.exchange.transfers.transfer(
        currency="USDT",
        amount=Decimal(amount),
        direction=Direction.OUT,
        account_type=AccountType.MAIN,
        special_uid=rig.record(ref).sub_account.uid,
        special_account_type=AccountType.TRADE,
        client_oid=client_oid,
    )


def test_a_top_up_line_counts_like_an_approval_line(rig: Rig) -> None:
    """A top-up is paid once and told once: clean; a second transfer under its clientOid is caught."""
    rig.exchange.update_config({"duplicate_client_oid": "accept"})
    published = run(rig, lifecycle("v-topup", offboard=False), [topup("v-topup", "more", 5, [("USDT", "100")])])
    assert told(rig, published) == set()
    ref = rig.app.policy.naming.customer_ref("v-topup")
    line = rig.record(ref).transfers["v-topup-more#0"]
    send_under(rig, ref, line.client_oid, "100")
    assert "each funding line exactly once" in told(rig, published)


def test_a_top_up_after_the_offboarding_is_refused_and_never_paid(rig: Rig) -> None:
    """The offboarding refuses the top-up that came after it: clean, and the upstream heard funding.refused. Paid
    anyway (a transfer under its clientOid): caught, both as money and as what the upstream was told."""
    rig.exchange.update_config({"duplicate_client_oid": "accept"})
    ev = events_for("v-late")
    late = topup("v-late", "late", 5, [("USDT", "100")])
    ref, _ = rig.publish(ev["created"], ev["kyc"])
    rig.settle(ref)
    rig.publish(ev["offboard"], late)
    rig.settle(ref)
    published = [ev["created"], ev["kyc"], ev["offboard"], late]
    record = rig.record(ref)
    assert record.transfers["v-late-late#0"].status.value == "refused"
    assert told(rig, published) == set()
    send_under(rig, ref, rig.app.policy.naming.funding_client_oid(ref, "v-late-late#0", 0), "100")
    found = {(v.invariant, v.detail) for v in violations(rig, published)}
    assert ("refused funding never sent", "v-late-late#0: 1 transfer(s)") in found
    assert ("the upstream was told the truth", "v-late-late#0: told funding.refused, but paid") in found


def test_what_the_upstream_was_told_must_match_the_exchange(rig: Rig) -> None:
    """Each way of misinforming the upstream is caught: a paid line never told, a refused line never told, a
    completion told for a line never paid, for a line no event asked for, with another amount, under two ids."""
    published = run(rig, [*lifecycle("v-told", offboard=False), topup("v-told", "big", 5, [("USDT", "5000")])])
    outbound = rig.outbound()
    assert told(rig, published, outbound) == set()
    completed = [e for e in outbound if e["type"] == "funding.completed"]
    refused = [e for e in outbound if e["type"] == "funding.refused"]
    assert [e["key"] for e in completed] == ["v-told-kyc_approved#0"]
    assert [e["key"] for e in refused] == ["v-told-big#0"], "5000 is above the per-customer cap of 1000"
    others = [e for e in outbound if e["type"] not in ("funding.completed", "funding.refused")]

    assert told(rig, published, others + refused) == {"the upstream was told the truth"}, "paid, never told"
    assert told(rig, published, others + completed) == {"the upstream was told the truth"}, "refused, never told"
    lie = {**completed[0], "id": f"funding.completed:x:{refused[0]['key']}", "key": refused[0]["key"]}
    lie |= {"amount": "5000"}
    assert told(rig, published, [*outbound, lie]) == {"the upstream was told the truth"}
    unknown = {**completed[0], "key": "v-told-nothing#0"}
    assert told(rig, published, [*outbound, unknown]) == {"the upstream was told the truth"}
    other_amount = {**completed[0], "amount": "249"}
    assert told(rig, published, others + refused + [other_amount]) == {"the upstream was told the truth"}
    second_id = {**completed[0], "id": completed[0]["id"] + "-again"}
    assert told(rig, published, [*outbound, second_id]) == {"one funding.completed per line"}
    assert told(rig, published, outbound + completed) == set(), "the same id twice is a copy, not a second message"


def test_a_line_blocked_for_an_operator_is_not_told_until_decided(rig: Rig) -> None:
    """The exchange may execute a repeat and its ledger names nothing: a lost transfer waits for an operator.
    While it waits, money moved and the upstream was not told; once the operator says committed, all holds."""
    rig.exchange.update_config({"duplicate_client_oid": "accept", "ledger_context": "none"})
    ev = events_for("v-blind")
    (ref,) = rig.publish(ev["created"])
    rig.settle(ref)
    rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 1.0}}}})
    rig.publish(ev["kyc"])
    rig.run(ref)
    rig.exchange.update_config({"faults": {"per_endpoint": {"transfer": {"drop": 0.0}}}})
    send_under(rig, ref, "someone-elses", "250")  # the same amount, anonymous in the ledger: undecidable
    rig.settle(ref)
    published = [ev["created"], ev["kyc"]]
    record = rig.record(ref)
    assert [s for s, b in record.blocked.items() if b.manual] == ["fund:v-blind-kyc_approved#0"]
    assert "the upstream was told the truth" in told(rig, published)
    settle_transfer(rig.app, ref, "fund:v-blind-kyc_approved#0", verdict=TransferVerdict.COMMITTED, who="test")
    rig.settle(ref)
    assert told(rig, published) == {"nothing else transferred"}, "only the foreign transfer is left to explain"


def test_a_failed_transfer_moved_nothing_and_a_retry_counts_under_any_attempt(redis_url: str, key_prefix: str) -> None:
    """The exchange reports the transfer FAILURE: the line is unpaid (caught) and not told. An operator's retry
    pays it under the next clientOid: clean. A transfer under a later attempt's clientOid (an attempt count lost
    with the state) is still this line's: a second one is caught as a double payment, not as a stray."""
    rig = Rig(redis_url, key_prefix, config=SandboxConfig.from_dict({"transfer_failure_share": 1.0}))
    try:
        ev = events_for("v-failed")
        published = [ev["created"], ev["kyc"]]
        ref, _ = rig.publish(*published)
        rig.settle(ref)
        assert [t["status"] for t in rig.state()["transfers"]] == ["FAILURE"]
        assert told(rig, published) == {"each funding line exactly once"}
        rig.exchange.update_config({"transfer_failure_share": 0.0})
        rig.run(ref, retry_blocked=True)
        rig.settle(ref)
        assert told(rig, published) == set()
        line = "v-failed-kyc_approved#0"
        assert rig.record(ref).transfers[line].attempt == 1
        send_under(rig, ref, rig.app.policy.naming.funding_client_oid(ref, line, 7), "250")
        assert "each funding line exactly once" in told(rig, published)
        assert "nothing else transferred" not in told(rig, published)
    finally:
        rig.close()


def test_an_adopted_sub_account_is_the_customers_one(rig: Rig) -> None:
    """A sub-account an older system created (and funded) is adopted: it is the customer's only sub-account, the
    older system's transfer is not ours to explain, lines from before the adoption are refused and told so, a
    later top-up is paid. A foreign transfer after the adoption is caught."""
    legacy = rig.app.exchange.sub_accounts.add(account_name="legacy2024abc")
    rig.app.exchange.transfers.transfer(
        currency="USDT",
        amount=Decimal(40),
        direction=Direction.OUT,
        account_type=AccountType.MAIN,
        special_uid=legacy.uid,
        special_account_type=AccountType.TRADE,
        client_oid="legacy-system-0001",
    )
    rig.clock.advance_ms(60_000)
    recover(rig.app, reason="test: migrating onto this worker", adoptions=[Adoption("v-adopted", legacy.uid)])
    rig.clock.advance_ms(120_000)
    ev = events_for("v-adopted")
    later = {**topup("v-adopted", "later", 0, [("USDT", "100")]), "occurred_at": "2026-11-18T11:08:00Z"}
    published = [ev["created"], ev["kyc"], later]
    (ref, _, _) = rig.publish(*published)
    rig.settle(ref)
    record = rig.record(ref)
    assert record.sub_account.uid == legacy.uid
    assert record.transfers["v-adopted-kyc_approved#0"].status.value == "refused"
    assert record.transfers["v-adopted-later#0"].status.value == "committed"
    assert told(rig, published) == set()
    send_under(rig, ref, "someone-elses", "5")
    assert told(rig, published) == {"nothing else transferred"}


def test_a_key_found_by_the_audit_after_a_loss_needs_no_issuance_in_the_new_journal(
    redis_url: str, key_prefix: str
) -> None:
    """After a total loss and recovery, the key whose secret was lost is replaced and revoked; the new journal
    never saw it issued. The end state is clean; a key issued by us without a journal line is still caught."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("v-lost")
        published = [ev["created"], ev["kyc"], ev["ip"]]
        ref, _, _ = rig.publish(*published)
        rig.settle(ref)
        lose_everything(rig)
        shutil.rmtree(rig.settings.state_dir or "", ignore_errors=True)
        app = second_host(rig, same_host=True)
        try:
            recover(app, reason="test: Redis restarted without persistence")
            redeliver(app, published)
            declare_republished(app)  # the on-call, once the upstream has re-published
            settle_with(rig, app, ref)
            record = app.store.load(ref)
            assert [k.sealed is None for k in record.keys] == [True, False] and len(record.live_keys) == 1
            assert told(rig, published, app=app) == set()
            journal = [e for e in app.store.journal(ref, count=10_000) if e["action"] != "api_key.issued"]
            found = told(rig, published, app=_Journal(app, journal))
            assert "journal accounts for every write" in found
        finally:
            app.close()
    finally:
        rig.close()


class _Journal:
    """An app whose journal reads are replaced by ``entries`` (what a journal missing a line would show)."""

    def __init__(self, app: App, entries: list[dict]) -> None:
        self._app = app
        self._entries = entries

    def __getattr__(self, name: str) -> object:
        if name == "store":
            return _JournalStore(self._app.store, self._entries)
        return getattr(self._app, name)


class _JournalStore:
    def __init__(self, store: object, entries: list[dict]) -> None:
        self._store = store
        self._entries = entries

    def load(self, ref: str) -> object:
        return self._store.load(ref)  # type: ignore[attr-defined]

    def journal(self, ref: str, count: int = 0) -> list[dict]:
        return self._entries


def test_a_line_refused_by_the_cap_but_paid_counts_against_the_cap(rig: Rig) -> None:
    """A top-up refused because it would pass the per-customer cap (250 + 901 > 1 000), paid all the same: caught
    as a refused line sent and as money above the cap."""
    rig.exchange.update_config({"duplicate_client_oid": "accept"})
    published = run(rig, lifecycle("v-cap", offboard=False), [topup("v-cap", "big", 5, [("USDT", "901")])])
    ref = rig.app.policy.naming.customer_ref("v-cap")
    assert rig.record(ref).transfers["v-cap-big#0"].status.value == "refused"
    assert told(rig, published) == set()
    send_under(rig, ref, rig.app.policy.naming.funding_client_oid(ref, "v-cap-big#0", 0), "901")
    assert {"refused funding never sent", "none above the caps"} <= told(rig, published)


def test_a_closed_customers_line_without_a_verdict_is_caught(rig: Rig) -> None:
    """Offboarded before its sub-account was created (the approval and the offboarding came first): each line is
    told refused before the close, clean. Without the refusal the upstream heard nothing of the line: caught.
    A top-up published after the close is reported ``event.ignored``, not a verdict: no violation for it."""
    ev = events_for("v-early")
    late = topup("v-early", "late", 9, [("USDT", "100")])
    (ref,) = rig.publish(ev["kyc"], ev["offboard"], ev["created"])[:1]
    rig.settle(ref)
    assert "closed" in str(rig.app.intake.accept(late))  # refused by the intake: event.ignored, no verdict
    published = [ev["created"], ev["kyc"], ev["offboard"], late]
    assert rig.record(ref).closed_at_ms is not None
    outbound = rig.outbound()
    assert [e["key"] for e in outbound if e["type"] == "funding.refused"] == ["v-early-kyc_approved#0"]
    assert told(rig, published, outbound) == set()
    silent = [e for e in outbound if e["type"] != "funding.refused"]
    assert "every line of a closed customer has a verdict" in told(rig, published, silent)


def test_the_special_accounts_daily_cap_is_checked_across_customers(rig: Rig) -> None:
    """Two customers paid 250 USDT each on the same day: within a daily cap of 500, clean; had the cap been 400,
    the day moved more than it allows: caught, naming the day (the worker's own caps never let this happen)."""
    published = run(rig, lifecycle("v-day-a", offboard=False), lifecycle("v-day-b", offboard=False))
    app = rig.app
    common = dict(naming=app.policy.naming, keyring=app.keyring, probe=rig.key_works, funding_caps={})
    events = [parse_event(e, None) for e in published]
    assert (
        check(events, rig.state(), app.store.load, app.store.journal, daily_caps={"USDT": Decimal(500)}, **common) == []
    )
    found = check(events, rig.state(), app.store.load, app.store.journal, daily_caps={"USDT": Decimal(400)}, **common)
    assert [(v.invariant, v.detail.split(":")[1].strip()) for v in found] == [
        ("none above the daily caps", "500 USDT > 400")
    ]


def test_an_event_told_ignored_needs_no_verdict_on_its_lines(rig: Rig) -> None:
    """An event that reached the customer during its closing run is reported ``event.ignored`` (and then listed
    among the events at the close): its lines get no verdict of their own, and verify does not ask for one (the
    chaos run at 1289bf0 took that for a violation)."""
    ev = events_for("v-ignored")
    (ref,) = rig.publish(ev["kyc"], ev["offboard"], ev["created"])[:1]
    rig.settle(ref)
    published = [ev["created"], ev["kyc"], ev["offboard"]]
    outbound = [e for e in rig.outbound() if e["type"] != "funding.refused"]
    assert "every line of a closed customer has a verdict" in told(rig, published, outbound)
    ignored = {
        "id": f"event.ignored:{ref}:{ev['kyc']['id']}",
        "type": "event.ignored",
        "customer_ref": ref,
        "event_id": ev["kyc"]["id"],
    }
    assert "every line of a closed customer has a verdict" not in told(rig, published, [*outbound, ignored])
