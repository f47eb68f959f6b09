"""``provisioner recover --yes --replace-naming`` from a shell of another ``PROVISIONER_NAME_SECRET`` takes over a
sound deployment whose every stored record proves the shell's naming is not the deployment's; a worker of the
shell's secret is then accepted and names the deployment's customers anew: a second sub-account, key and payment.

Scenario: a deployment runs soundly and has paid a customer. An on-call runs ``provisioner recover`` from a shell
whose environment carries another name secret (adv52's premise). 3815483 refuses it, with a message that ends
"Only if <recorded> was recorded by a stray recovery (from a shell of another secret) run again with
--replace-naming". The on-call, sure their shell is the right one (that is why they are in it), concludes the
recorded value is the stray one and does so.

What happens: ``check_recovery_naming`` returns the recorded fingerprint on the operator's word alone;
``recover`` forces a loss-mode recovery and ``StateGuard.recover(replace_naming=True)`` HSETs the shell's
fingerprint. The deployment's workers are refused from then on; a worker from the shell's environment is accepted,
and the re-publication (which ``recover`` asks for) through it stores every customer under a new ref (verified
here: a second record for the paid customer, accepted as NEW), whose reconcile names a second sub-account once the
recovery's waits pass (not driven to the end in this test).

Why it is wrong: the claim "the recorded value is a stray recovery's" is checkable, and the state refutes it here:
the customer records hold ``customer_id`` and ``ref`` (and sub-account names), and none is derived by the shell's
naming while all are derived by the recorded one. A stray recovery's fingerprint, by contrast, names no record
written before it. The flag turns one mis-configured shell back into the takeover 3815483 meant to close (adv52).

Suggested fix: with ``--replace-naming``, check the shell's naming against the stored records (a sample of
``{p}:customers``: ``naming.customer_ref(record.customer_id) == ref`` and the sub-account name among
``naming.account_names``); refuse if they were named otherwise, or if any record older than the recorded
fingerprint's recovery exists that the shell does not name. Also: refuse ``--replace-naming`` on a state that is
sound and not a recovered epoch (a fingerprint recorded by ``establish`` is the deployment's own).

Likelihood: low-medium (an operator in a mis-configured shell following the refusal's own escape hatch); the impact
is an outage plus double sub-accounts / payments for every re-published customer.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.adversarial49.helpers import other_group, settle_with
from tests.core.harness import Rig, events_for
from worker.recovery import RecoveryError, recover
from worker.store.epoch import NamingMismatch

pytestmark = pytest.mark.redis

SHELL_SECRET = "on-call-shell-name-secret-0123456789abcdefXYZ"


def test_replace_naming_from_a_stray_shell_takes_over_a_sound_deployment(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    shell = stray = None
    try:
        ev = events_for("adv53-replace-naming")
        (ref, _) = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert len(rig.state()["subAccounts"]) == 1 and len(rig.state()["transfers"]) == 1
        assert rig.app.state.diagnose() is None  # sound, running

        shell = other_group(rig, redis_url, key_prefix, PROVISIONER_NAME_SECRET=SHELL_SECRET)
        with pytest.raises(RecoveryError, match="--replace-naming"):
            recover(shell, reason="test: recover from a shell of another secret")  # refused, pointing to the flag
        report = None
        with contextlib.suppress(RecoveryError, NamingMismatch):
            report = recover(shell, reason="test: the on-call follows the hint", replace_naming=True)

        subs_before = len(rig.state()["subAccounts"])
        stray_started = False
        if report is not None and report.epoch is not None:
            stray = other_group(rig, redis_url, key_prefix, PROVISIONER_NAME_SECRET=SHELL_SECRET)
            with contextlib.suppress(NamingMismatch):
                stray.state.establish(init=True)
                stray_started = True
            if stray_started:  # the upstream re-publishes, as recover asks, and a stray worker takes it
                for event in (ev["created"], ev["kyc"]):
                    outcome = stray.intake.accept(event)
                    new_ref = getattr(outcome, "ref", None)
                if new_ref:
                    with contextlib.suppress(Exception):
                        settle_with(rig, stray, new_ref)
        assert report is None or report.epoch is None, (
            f"a sound deployment's naming fingerprint {report.naming_replaced} was replaced from a shell whose "
            f"naming derives none of its customers (stray worker accepted: {stray_started}; sub-accounts "
            f"{subs_before} -> {len(rig.state()['subAccounts'])}, transfers {len(rig.state()['transfers'])})"
        )
    finally:
        for app in (shell, stray):
            if app is not None:
                app.close()
        rig.close()
