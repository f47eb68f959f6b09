"""After a loss of Redis, the first process of another ``PROVISIONER_NAME_SECRET`` that touches the state records
its own naming fingerprint — the next restart of a pod that 3f3be1c refused, or an on-call's ``provisioner state
show`` / dry-run ``provisioner recover`` on a worker host — and from then on the deployment's own ``provisioner
recover`` and workers are refused with ``NamingMismatch``, whose message tells the on-call to give them the *wrong*
secret.

Scenario: a deployment pays a customer. A pod of another secret (the premise of 3f3be1c: a manifest or secret store
carrying another value) is refused at start and crash-loops, restarted every few minutes. Redis loses everything
(restart without persistence), which takes the ``naming`` field of ``{p}:state`` with it. The pod restarts first;
then the on-call runs the deployment's own ``provisioner recover --yes``.

What happens: ``provisioner worker`` waits for a sound state with ``StateGuard.establish(init=True)``, whose first
step is ``check_naming(..., record=True)``: Redis holds no ``naming`` any more, so the stray pod's fingerprint is
written (HSETNX) before the loss is even detected (it then raises ``StateLost``: traces on the exchange). The
deployment's recovery calls ``diagnose`` → ``establish(init=False)`` → ``check_naming`` and raises
``NamingMismatch`` ("... differs from the one this deployment's state was built with ... Give this process the
deployment's secret"): the good deployment cannot recover, its workers cannot start, and the message names the
stray secret as "the deployment's". No command resets the field (only a hand-made ``HDEL {p}:state naming``). The
same happens when the first to look is a read-only ``provisioner state show`` or ``provisioner recover`` without
``--yes`` from a shell of another secret on a worker host (its mirror sends ``diagnose`` into ``establish``). And the
stray process's own ``provisioner recover --yes`` would be accepted, rebuilding a deployment that names nobody.

Why it is wrong: the fingerprint is meant to protect the deployment's naming; after a loss — exactly when the state
is rebuilt and processes of every origin start touching it — it is adopted from whoever comes first, even from a
process that is then refused and from a read-only diagnosis. The operator's recovery, which states the deployment,
cannot override it.

Suggested fix: record the fingerprint only where a fresh epoch is actually created (``_create``, with the epoch's
HSETNX) and in ``StateGuard.recover`` (the operator's recovery states the naming, replacing a stray one, and says
so); never in ``diagnose`` / ``establish(init=False)`` nor before a ``StateLost``; keep it in the host mirror too and
compare with it when Redis has none, so a process of another naming on a host that saw the deployment is refused
even after a loss.

Likelihood: low (a loss of Redis while a mis-configured process is around), but the outcome is a deployment that
cannot recover, with advice that — if followed — names every customer anew (a second sub-account, key and payment
each).
"""

from __future__ import annotations

import pytest

from tests.adversarial49.helpers import other_group
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import lose_everything, second_host
from worker.recovery import recover
from worker.store.epoch import NamingMismatch, StateLost

pytestmark = pytest.mark.redis

OTHER_SECRET = "stray-pod-name-secret-0123456789abcdefXYZ"


def test_after_a_loss_a_process_of_another_secret_locks_out_the_deployment(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    stray = good = None  # stray: a crash-looping pod of another secret (a host of its own)
    try:
        ev = events_for("adv50-lockout")
        ref, _ = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert len(rig.state()["subAccounts"]) == 1 and len(rig.state()["transfers"]) == 1
        assert rig.app.redis.hget(rig.app.keys.state, "naming") is not None, "the deployment's naming is recorded"

        lose_everything(rig)
        stray = other_group(rig, redis_url, key_prefix, PROVISIONER_NAME_SECRET=OTHER_SECRET)
        # the refused pod's next restart: `provisioner worker` waits for a sound state (``establish(init=True)``)
        with pytest.raises(StateLost):
            stray.state.establish(init=True)

        good = second_host(rig, same_host=True)  # the deployment's own `provisioner recover --yes`
        try:
            recover(good, reason="test: Redis lost everything")
        except NamingMismatch as refused:
            pytest.fail(f"the deployment's own recovery is refused (another secret touched the state): {refused}")
        good.state.establish(init=True)  # its workers start
        with pytest.raises(NamingMismatch):
            stray.state.establish(init=True)  # the stray pod stays refused
    finally:
        for app in (stray, good):
            if app is not None:
                app.close()
        rig.close()
