"""After a loss of Redis, ``provisioner recover --yes`` run from a shell of another ``PROVISIONER_NAME_SECRET``
succeeds, reports nothing amiss, and records *its* naming fingerprint (e6ddcf6: "the operator's recovery names the
deployment after a loss"); from then on the deployment's own workers, API and ``provisioner recover`` are refused
with ``NamingMismatch`` — and nothing but a hand-made ``HDEL {p}:state naming`` undoes it.

Scenario: a deployment pays a customer. Redis loses everything (restart without persistence), which takes the
``naming`` field of ``{p}:state`` with it; the workers halt. The on-call runs ``provisioner recover --yes`` from a
shell whose environment carries another name secret (an operator laptop or bastion profile, a staging secret
store: the very premise of 3f3be1c), even with a ``--heard`` file whose ``customer_ref``s this secret does not
derive from their ``customer_id``s. Noticing the workers still refuse to start, the on-call then runs the
deployment's own ``provisioner recover --yes`` from a worker host.

What happens: ``recover`` → ``StateGuard.recover`` → ``check_naming(record=True)``: Redis holds no ``naming``, so
the shell's fingerprint is written (HSETNX) and the recovery reports "listed 1 sub-account(s), 1 named like ours
... the halt is lifted" (``is_account_name`` checks only the prefix). The deployment's workers are refused
(``establish`` → ``NamingMismatch``: "Give this process the deployment's secret"), its API is not ready and admits
nothing. Its own recovery is refused too: ``recover`` → ``diagnose`` → ``establish(init=False)`` →
``check_naming(record=False)`` raises ``NamingMismatch`` (not a ``StateLost``: ``diagnose`` lets it through, the CLI
prints a traceback); ``StateGuard.recover`` itself only HSETNX-es, so it could not replace the stray value either.

Why it is wrong: the fingerprint exists to keep a process of another naming from acting; after a loss it is adopted
from whichever recovery comes first, without any check that its naming is the one the exchange and the upstream
know, and the deployment's own recovery — the operator's statement of the deployment — cannot override it. The
deployment stays down, and the message's advice (give the workers "the deployment's secret", i.e. the stray one)
would name every customer anew: a second sub-account, key and payment each.

Suggested fix: let ``StateGuard.recover`` *state* the naming (HSET, replacing a different value, and say so in the
report) and let ``diagnose`` report a ``NamingMismatch`` instead of raising it; before recording after a loss,
check the naming against what is known: the ``--heard`` file's ``customer_id`` → ``customer_ref`` pairs (a
mismatch is proof of another secret), the host mirror (keep the fingerprint there too), or require the on-call
to confirm the fingerprint (``--naming-fingerprint``) when Redis holds none.

Likelihood: low (a loss of Redis, then a recovery from a mis-configured shell), but the outcome is a deployment
that cannot recover with its own tools.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.adversarial49.helpers import other_group
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, second_host
from worker.recovery import RecoveryError, recover
from worker.store.epoch import NamingMismatch

pytestmark = pytest.mark.redis

SHELL_SECRET = "on-call-shell-name-secret-0123456789abcdefXYZ"


def test_a_recovery_with_another_name_secret_locks_out_the_deployment(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    shell = good = None
    try:
        ev = events_for("adv51-recover-shell")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert len(rig.state()["subAccounts"]) == 1 and len(rig.state()["transfers"]) == 1

        lose_everything(rig)
        shell = other_group(rig, redis_url, key_prefix, PROVISIONER_NAME_SECRET=SHELL_SECRET)
        # `provisioner recover --yes` from the mis-configured shell (refusing it would be a fix)
        with contextlib.suppress(RecoveryError, NamingMismatch):
            recover(shell, reason="test: recovery from a shell of another secret")

        good = second_host(rig, same_host=True)  # the deployment's own `provisioner recover --yes`
        try:
            # refused without the flag (it names the recorded value and the shell's), then the operator says so
            with pytest.raises(RecoveryError, match="--replace-naming"):
                recover(good, reason="test: the deployment's own recovery")
            report = recover(good, reason="test: the deployment's own recovery", replace_naming=True)
            assert report.naming_replaced is not None
        except NamingMismatch as refused:
            pytest.fail(f"the deployment's own recovery is refused after a stray recovery: {refused}")
        good.state.establish(init=True)  # its workers start
        with pytest.raises(NamingMismatch):
            shell.state.establish(init=True)  # and the shell's naming is the one refused
    finally:
        for app in (shell, good):
            if app is not None:
                app.close()
        rig.close()
