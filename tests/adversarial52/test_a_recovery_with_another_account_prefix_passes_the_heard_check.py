"""fca3798's guard against a recovery from a shell of another naming — ``misnamed_refs``: the ``--heard`` file's
``customer_ref``s must be derived by the shell's naming — checks only half of what the naming fingerprint covers.
A shell with the deployment's ``PROVISIONER_NAME_SECRET`` but another ``PROVISIONER_ACCOUNT_PREFIX`` derives the same
refs (``Naming.customer_ref`` does not involve the prefix), passes the check, and after a loss records its own
fingerprint (``<mac>:<other prefix>``): the deployment's workers and API are then refused with ``NamingMismatch``.

Scenario: a deployment with ``PROVISIONER_ACCOUNT_PREFIX=nd`` (the default) pays a customer. Redis loses everything;
the workers halt. The on-call runs ``provisioner recover --yes --heard received.jsonl`` from a shell that has the
right secret but another prefix (a staging profile's ``PROVISIONER_ACCOUNT_PREFIX``, or the variable unset where the
deployment sets one) — exactly the "shell of another naming" fca3798 meant the ``--heard`` check to catch.

What happens: ``misnamed_refs`` finds nothing wrong (every ref is derived), the recovery lists the broker's
sub-accounts ("1 listed, 0 named like ours": the only hint), records the shell's fingerprint (Redis held none after
the loss, so nothing is "replaced" and the report says nothing of it) and says "the halt is lifted. Start the
workers". The deployment's workers are then refused: "PROVISIONER_NAME_SECRET (or PROVISIONER_ACCOUNT_PREFIX) differs
... Give this process the deployment's secret" — which they have. Workers of the shell's environment would be
accepted and, not finding any sub-account by its prefixed name, would open a second one per customer and pay again.

Why it is wrong: the ``--heard`` file is the evidence fca3798 chose to tell the deployment's naming from another
before recording it after a loss; the fingerprint it records covers the prefix too, so the check lets through a
naming that the fingerprint itself then calls another deployment's — and locks the deployment's own processes out.

Suggested fix: check the prefix half as well before recording: the sub-accounts the exchange lists for the
``--heard`` file's customers (their ``sub_account_uid`` in ``customer.provisioned``/``api_key.*`` events, or the
``account_names`` of their ``customer_id``s) must be named with the shell's prefix; and refuse (or demand
confirmation) when the exchange lists sub-accounts but none is "named like ours" while the file names customers.

Likelihood: low (a loss of Redis, then a recovery from a shell whose prefix differs), but it is the case the
fix was written for, half-covered; the deployment stays down until a second recovery from a correctly set shell.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.adversarial49.helpers import other_group
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, second_host
from worker.heard import live_keys_from_events, misnamed_refs, outcomes_from_events, refusals_from_events
from worker.recovery import RecoveryError, recover
from worker.store.epoch import NamingMismatch, StateLost

pytestmark = pytest.mark.redis


def test_a_recovery_with_another_account_prefix_passes_the_heard_check(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    shell = good = None
    try:
        ev = events_for("adv52-prefix")
        (ref, _) = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert len(rig.state()["subAccounts"]) == 1 and len(rig.state()["transfers"]) == 1
        received = rig.outbound()  # what the upstream kept: the --heard file
        assert any(e.get("customer_ref") == ref for e in received)

        lose_everything(rig)
        shell = other_group(rig, redis_url, key_prefix, PROVISIONER_ACCOUNT_PREFIX="stg")
        # `provisioner recover --yes --heard received.jsonl` from the shell, as recover_cmd runs it
        refused = bool(misnamed_refs(received, shell.policy.naming))
        report = None
        if not refused:
            with contextlib.suppress(RecoveryError, NamingMismatch):
                report = recover(
                    shell,
                    reason="test: recovery from a shell of another account prefix",
                    heard=outcomes_from_events(received),
                    heard_keys=live_keys_from_events(received),
                    heard_refusals=refusals_from_events(received),
                )
            refused = report is None

        good = second_host(rig, same_host=True)  # the deployment's worker, started as the recovery says
        started: object = None
        try:
            good.state.establish(init=True)
        except NamingMismatch as exc:
            started = exc
        except StateLost:
            pass  # the refused recovery left the state lost: the deployment's own recovery comes next
        assert refused, (
            f"a recovery from a shell of another account prefix passed the --heard check and recorded its naming "
            f"({report.sub_accounts if report else '?'} listed, {report.ours if report else '?'} named like ours)"
        )
        assert started is None, f"the deployment's own worker is refused after the recovery: {started}"
    finally:
        for app in (shell, good):
            if app is not None:
                app.close()
        rig.close()
