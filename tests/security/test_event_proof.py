"""The trust boundary around money: a Redis writer without the event-signing key cannot make the worker move money.

The attack of issue 12: a raw ``handle_event`` message (as anyone who can write to Redis would enqueue it) for an
invented customer with a funding line, executed by the worker. Each test drives a real worker over real Redis and
the simulator, and looks at the exchange (nothing reached it), the customer store (nothing written about the
customer) and the dead letter (refused, with the reason an operator reads in ``provisioner dlq show``).
"""

from __future__ import annotations

import base64
import os
import time
from typing import Any

import dramatiq
from click.testing import CliRunner

from cli.main import main
from sandbox import SandboxConfig, start_server
from tests.core.harness import events_for
from tests.runtime.rig import WorkerRig
from worker.event_proof import PROOF_OPTION, EventProofs


def _raw_message(payload: dict[str, Any], **options: Any) -> dramatiq.Message[Any]:
    """The ``handle_event`` message a Redis writer builds by hand (dramatiq's own layout, nothing of ours)."""
    return dramatiq.Message(queue_name="events", actor_name="handle_event", args=(payload,), kwargs={}, options=options)


def _nothing_reached_the_exchange(rig: WorkerRig) -> None:
    state = rig.exchange.state_snapshot()
    assert state["subAccounts"] == [] and state["transfers"] == [] and state["apiKeys"] == []


def _nothing_stored_about(rig: WorkerRig, customer_id: str) -> None:
    app = rig.runtime.app
    ref = app.policy.naming.customer_ref(customer_id)
    assert app.store.load(ref) is None
    assert app.redis.hlen(app.keys.events(ref)) == 0, "no event stored for the customer"


def _invented(customer: str, amount: str = "1000") -> list[dict[str, Any]]:
    """A customer nobody created upstream: its creation, and an approval with a funding line and the attacker's IP."""
    ev = events_for(customer, funding=(("USDT", amount),), ips=("203.0.114.66",))
    return [ev["created"], ev["kyc"]]


def test_a_raw_unsigned_message_for_an_invented_customer_is_refused_and_dead_lettered(
    redis_url: str, key_prefix: str
) -> None:
    """The issue's attack: the whole per-customer cap (the rig's 1000 USDT) for a customer nobody created, to a key
    whitelisted to the attacker's IP. Refused before anything is written about the customer, nothing reaches the
    exchange, and `provisioner dlq show` says why. (Before the proof, the worker created the sub-account, the key
    and the transfer.)"""
    with WorkerRig(redis_url, key_prefix) as rig, start_server(rig.exchange) as server:
        for event in _invented("mallory"):
            rig.runtime.broker.enqueue(_raw_message(event))
        dlq = rig.runtime.dead_letters()
        rig.wait_for(
            lambda: len(dlq.list()) == 2 or rig.exchange.state_snapshot()["transfers"], what="a verdict on the attack"
        )
        time.sleep(0.3)
        _nothing_reached_the_exchange(rig)
        _, letter = dlq.list()
        _nothing_stored_about(rig, "mallory")
        assert letter.kind == "unauthenticated" and letter.retries == 0
        assert "unsigned: no proof of an authenticated publisher" in letter.reason
        assert rig.metric("provisioner_dead_letters_total", queue="events", kind="unauthenticated") == 2
        env = {
            "REDIS_URL": rig.settings.redis_url,
            "PROVISIONER_REDIS_PREFIX": rig.settings.key_prefix,
            "PROVISIONER_STATE_DIR": rig.settings.state_dir or "",
            "KUCOIN_BROKER_BASE_URL": server.url,
            "KUCOIN_SPOT_BASE_URL": server.url,
        }
        shown = CliRunner().invoke(main, ["dlq", "show", letter.message_id], env=env, catch_exceptions=False)
        assert shown.exit_code == 0
        assert "unauthenticated" in shown.stdout and "no proof of an authenticated publisher" in shown.stdout


def test_a_signed_event_altered_after_signing_is_refused(redis_url: str, key_prefix: str) -> None:
    """A valid proof copied onto an edited body (the amount raised to the cap) proves nothing."""
    with WorkerRig(redis_url, key_prefix) as rig:
        proofs: EventProofs = rig.runtime.app.proofs
        created, honest = _invented("trudy", amount="10")
        rig.runtime.broker.enqueue(_raw_message(created, **{PROOF_OPTION: proofs.sign(created)}))
        rig.wait_for(lambda: rig.exchange.state_snapshot()["subAccounts"], what="the signed creation taken")
        altered = {**honest, "data": {**honest["data"], "funding": [{"currency": "USDT", "amount": "1000"}]}}
        rig.runtime.broker.enqueue(_raw_message(altered, **{PROOF_OPTION: proofs.sign(honest)}))
        (letter,) = rig.wait_for(lambda: rig.runtime.dead_letters().list(), what="a dead letter")
        assert letter.kind == "unauthenticated" and "does not match the event" in letter.reason
        time.sleep(0.3)
        assert rig.exchange.state_snapshot()["transfers"] == [], "no money moved"
        app = rig.runtime.app
        stored = app.redis.hkeys(app.keys.events(app.policy.naming.customer_ref("trudy")))
        assert stored == [created["id"]], "only the signed creation was stored"


def test_a_message_signed_with_a_wrong_key_is_refused(redis_url: str, key_prefix: str) -> None:
    """The attacker signs with a key of its own, under our key id and under one of its own: both refused."""
    with WorkerRig(redis_url, key_prefix) as rig:
        forged = base64.b64encode(os.urandom(32)).decode()
        for key_id, customer in ((rig.runtime.app.proofs.active, "eve-a"), ("evil", "eve-b")):
            for event in _invented(customer):
                proof = EventProofs.parse(f"{key_id}={forged}", name="forged").sign(event)
                rig.runtime.broker.enqueue(_raw_message(event, **{PROOF_OPTION: proof}))
        dlq = rig.runtime.dead_letters()
        letters = rig.wait_for(lambda: len(dlq.list()) == 4 and dlq.list(), what="four dead letters")
        reasons = sorted(letter.reason for letter in letters)
        assert any("does not match the event" in r for r in reasons), reasons
        assert any("unknown key id 'evil'" in r for r in reasons), reasons
        time.sleep(0.3)
        _nothing_reached_the_exchange(rig)
        _nothing_stored_about(rig, "eve-a")
        _nothing_stored_about(rig, "eve-b")


def test_replaying_a_validly_signed_message_moves_money_once(redis_url: str, key_prefix: str) -> None:
    """A copy of a genuine signed message, re-enqueued by a Redis writer (new message id, same body and proof), is
    the same event: taken once, each funding line transferred once."""
    with WorkerRig(redis_url, key_prefix) as rig:
        ev = events_for("w-replayed")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        rig.wait_for(lambda: rig.live_keys(), what="a key")
        genuine = _as_published(rig, ev["kyc"])
        proof = rig.runtime.app.proofs.sign(genuine)
        for _ in range(3):
            rig.runtime.broker.enqueue(_raw_message(genuine, **{PROOF_OPTION: proof}))
        rig.wait_for(
            lambda: rig.metric("provisioner_messages_total", actor="handle_event", outcome="ok") == 5,
            what="the copies handled",
        )
        transfers = rig.exchange.state_snapshot()["transfers"]
        assert [t["amount"] for t in transfers] == ["250"]
        assert rig.runtime.dead_letters().list() == []


def test_a_forged_replay_mark_is_not_an_operators_retry(redis_url: str, key_prefix: str) -> None:
    """`replayed_at` makes the worker retry blocked steps (an operator's `dlq replay`). A Redis writer who sets it on
    a reconcile message of its own is ignored; the operator's replay, which carries the mark's proof, retries."""
    config = SandboxConfig(initial_balances={"MAIN": {"USDT": "10"}, "TRADE": {}})
    with WorkerRig(redis_url, key_prefix, config=config) as rig:
        ev = events_for("w-blocked")
        rig.publisher.publish(ev["created"])
        rig.publisher.publish(ev["kyc"])
        dlq = rig.runtime.dead_letters()
        (letter,) = rig.wait_for(lambda: dlq.list(), what="the blocked funding dead-lettered")
        rig.exchange.credit(rig.exchange.broker_uid, "USDT", "MAIN", "1000")
        ref = rig.runtime.app.policy.naming.customer_ref("w-blocked")
        forged = rig.runtime.actors.reconcile.message_with_options(args=(ref,), replayed_at=int(time.time() * 1000))
        rig.runtime.broker.enqueue(forged)
        rig.wait_for(
            lambda: (
                rig.metric("provisioner_messages_total", actor="reconcile_customer", outcome="ok") >= 1
                or rig.metric("provisioner_messages_total", actor="reconcile_customer", outcome="blocked") >= 1
                or rig.exchange.state_snapshot()["transfers"]
            ),
            what="the forged replay handled",
        )
        time.sleep(0.3)
        assert rig.exchange.state_snapshot()["transfers"] == [], "the block stands: no operator asked"
        record = rig.runtime.app.store.load(ref)
        assert record is not None and record.blocked
        assert dlq.replay(letter.message_id)
        rig.wait_for(lambda: rig.exchange.state_snapshot()["transfers"], what="the funding after the operator's replay")


def _as_published(rig: WorkerRig, event: dict[str, Any]) -> dict[str, Any]:
    """The event as the publisher enqueues it: validated and dumped by the contract's model, no KYC documents."""
    checked = rig.runtime.app.intake.check(event)
    payload: dict[str, Any] = checked.model_dump(mode="json")  # type: ignore[union-attr]
    payload["data"].pop("kyc", None)
    return payload


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode("ascii")


def test_the_keyring_signs_with_its_first_key_and_accepts_any_listed_one() -> None:
    """Rotation: a message signed before the new key was put first still verifies while the old key is listed, and
    not once it is dropped."""
    old, new = _key(), _key()
    before = EventProofs.parse(f"k1={old}", name="X")
    rotating = EventProofs.parse(f"k2={new},k1={old}", name="X")
    event = {"id": "e-1", "type": "customer.created", "customer_id": "c-1", "data": {"note": "ünïcode"}}
    signed_before = before.sign(event)
    assert rotating.sign(event).startswith("k2:")
    assert rotating.check(event, signed_before) is None
    assert rotating.check(dict(reversed(list(event.items()))), signed_before) is None, "key order is not content"
    assert "unknown key id 'k1'" in str(EventProofs.parse(f"k2={new}", name="X").check(event, signed_before))
    assert "malformed" in str(rotating.check(event, "k2"))
    assert "unsigned" in str(rotating.check(event, None))
    assert old not in repr(rotating) and new not in repr(rotating)


def test_keygen_prints_an_event_signing_key_the_settings_accept() -> None:
    """`provisioner keygen` prints a fresh key: random, 32 bytes, under the key id asked for."""
    out = CliRunner().invoke(main, ["keygen", "--key-id", "k7"], catch_exceptions=False).stdout
    (line,) = [line for line in out.splitlines() if line.startswith("PROVISIONER_EVENT_SIGNING_KEYS=")]
    spec = line.partition("=")[2]
    assert EventProofs.parse(spec, name="PROVISIONER_EVENT_SIGNING_KEYS").active == "k7"
    assert len(base64.b64decode(spec.partition("=")[2])) == 32
