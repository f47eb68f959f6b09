"""``provisioner recover --yes`` run from a shell of another ``PROVISIONER_NAME_SECRET`` against a *sound*, running
deployment is no longer refused: since fca3798 ``diagnose`` turns the ``NamingMismatch`` into a
``StateLost("changed")``, so ``recover`` takes the sound state for a lost one (no ``--force`` needed), starts a
recovered epoch, and ``StateGuard.recover`` *replaces* the deployment's naming fingerprint with the stray one. At
once the deployment's running processes fail every refusal (``NamingMismatch``; its API, whose admission script
compares the fingerprint per call, admits nothing), each of its processes is refused on restart, and a process of
the stray secret is the one accepted.

Scenario: a deployment runs soundly and has paid a customer. An on-call looks at it from a shell whose environment
carries another name secret (an operator laptop or bastion profile, a staging secret store: the premise of
3f3be1c). ``provisioner state show`` / ``provisioner recover`` (dry run) there say
"state: changed: PROVISIONER_NAME_SECRET differs ..." and "recovery would: ... start a recovered state epoch and
lift the halt. Run again with --yes." — so the on-call does. No ``--heard`` file is given (it is optional), so the
only check of fca3798 against the shell's naming (``misnamed_refs``) never runs.

What happens: ``worker.recovery.recover`` → ``diagnose`` → ``changed`` → the loss branch (``recovery_lost_at`` set,
funding stopped for every customer until the caps are re-seeded, every customer audited) → ``StateGuard.recover``
HSETs the shell's fingerprint. The running workers adopt the recovered epoch (``recovered_from`` is theirs) and go
on, but a refusal they record now raises ``NamingMismatch`` (``_RECORD_REFUSAL`` compares the fingerprint, fca3798),
the API's admission answers ``NAMING`` for every event (not ready), and the next worker to restart is refused
("give this process the deployment's secret" — the stray one now). A worker started with the shell's secret is
accepted: a group of it (3f3be1c's rollout scenario) would name every customer anew — a second sub-account, key and
payment each. Only another ``recover`` from a shell with the right secret undoes it (another loss-mode recovery).

Why it is wrong: before fca3798 a process of another secret could never act on a sound deployment (3f3be1c:
"refused before it names anyone"); ``recover``'s replacement was meant for a *lost* state, where a stray value may
have been recorded meanwhile — on a sound state the recorded fingerprint is the deployment's own, proved by every
write since, and a configuration error of one shell is taken as the deployment's statement. The "replaced the
recorded naming fingerprint" line of the report comes after the damage.

Suggested fix: in ``recover`` (and ``diagnose``), tell a naming mismatch apart from a loss: when the state is
otherwise sound (epoch present, mirror agrees, not halted) refuse the recovery with the ``NamingMismatch`` message,
with or without ``--force``/``--adopt``; replace a recorded fingerprint only when the state proves lost (kind
``missing``/``traces``/``rolled_back``/``halted``...), and even then only with a confirmation naming the old value.

Likelihood: low-medium (one mis-configured operator shell and an on-call following the tool's own dry-run advice);
the effect is an outage of a deployment that was sound (intake stops at once) and the door opened to the naming
the fingerprint exists to keep out.
"""

from __future__ import annotations

import contextlib

import pytest

from tests.adversarial49.helpers import other_group
from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import second_host
from worker.intake import Refused
from worker.recovery import RecoveryError, recover
from worker.store.epoch import NamingMismatch

pytestmark = pytest.mark.redis

SHELL_SECRET = "on-call-shell-name-secret-0123456789abcdefXYZ"


def test_a_stray_recovery_takes_over_a_sound_deployment(redis_url: str, key_prefix: str) -> None:
    rig = Rig(redis_url, key_prefix)
    shell = good = stray = None
    try:
        ev = events_for("adv52-sound-takeover")
        (ref, _) = rig.publish(ev["created"], ev["kyc"])
        rig.settle(ref)
        assert len(rig.state()["subAccounts"]) == 1 and len(rig.state()["transfers"]) == 1
        assert rig.app.state.diagnose() is None  # sound, running

        shell = other_group(rig, redis_url, key_prefix, PROVISIONER_NAME_SECRET=SHELL_SECRET)
        # `provisioner recover --yes` from the mis-configured shell: no --force, no --adopt, no --heard
        report = None
        with contextlib.suppress(RecoveryError, NamingMismatch):
            report = recover(shell, reason="test: recover from a shell of another secret")

        # the deployment's running worker refuses an event (the upstream's clock ran fast): its refusal is recorded
        future = {**events_for("adv52-other")["created"], "occurred_at": "2099-01-01T00:00:00Z"}
        running: object
        try:
            running = rig.app.intake.accept(future)
        except NamingMismatch as exc:
            running = exc
        # a worker of the deployment restarts; a worker started from the shell's environment
        good = second_host(rig, same_host=True)
        restarted: object = None
        try:
            good.state.establish(init=True)
        except NamingMismatch as exc:
            restarted = exc
        stray = other_group(rig, redis_url, key_prefix, PROVISIONER_NAME_SECRET=SHELL_SECRET)
        stray_started = True
        try:
            stray.state.establish(init=True)
        except NamingMismatch:
            stray_started = False

        assert report is None or report.epoch is None, (
            f"a sound deployment was 'recovered' from a shell of another secret ({report.detected[:60]}...), "
            f"its naming fingerprint {report.naming_replaced} replaced"
        )
        assert isinstance(running, Refused), f"the running deployment cannot record a refusal: {running}"
        assert restarted is None, f"the deployment's own worker is refused on restart: {restarted}"
        assert not stray_started, "a worker of the shell's name secret is accepted on the deployment"
    finally:
        for app in (shell, good, stray):
            if app is not None:
                app.close()
        rig.close()
