"""The chaos run's on-call engineer: what a human does with the worker's blocked customers and its lost state.

- ``OnCall.round``: every customer with a blocked step (``{prefix}:blocked``). A transfer blocked for a manual
  verdict (the exchange's records could not tell) is decided from the truth — the simulator's record of a
  transfer under that clientOid: SUCCESS → committed (with its orderId), none or only FAILURE → not committed, or
  refused where the customer was offboarded, PROCESSING → look again later — through
  ``worker.provisioning.operator.settle_transfer``, as ``provisioner customer settle-transfer`` would. A funding
  line blocked because the exchange reported its transfer FAILURE is retried (``provisioner customer retry``:
  the next clientOid). Each round builds its app afresh, as each CLI invocation would, so a recovery in between
  is seen; while the state is lost every tool refuses (``StateLost``) and the round does nothing.
- ``OnCall.halted``: the workers halted (the ``StateLost`` alert) although no loss was caused: a false alarm the
  run counts as a violation; on-call recovers anyway (``provisioner recover``), since the workers wait for it.
- ``recover``: ``provisioner recover --yes --json`` as a subprocess with the run's environment (re-run until it
  gets through the exchange's faults), with the older system's sub-accounts to adopt.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import redis

from handlers import steps
from handlers.records import IntentKind, TransferIntent
from worker.bootstrap import build_app
from worker.provisioning.operator import OperatorError, TransferVerdict, settle_transfer
from worker.settings import Settings
from worker.store.epoch import StateLost

__all__ = ["OnCall", "recover"]

ROOT = Path(__file__).resolve().parents[1]
MAX_VERDICTS = 3
"""Verdicts the on-call gives on one blocked transfer before escalating instead."""


class OnCall:
    def __init__(
        self,
        settings: Settings,
        transfers: Callable[[], list[Mapping[str, Any]]],
        offboarded: Callable[[str], bool],
        log: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._transfers = transfers
        self._offboarded = offboarded
        self._log = log
        self.decisions: Counter[str] = Counter()
        self.retries = 0
        self.refusals: Counter[str] = Counter()
        """Why a tool refused to act (state lost, customer busy, ...)."""
        self.decided: list[dict[str, Any]] = []
        self.given_up: set[str] = set()
        """Steps blocked again after ``MAX_VERDICTS`` verdicts on the same transfer: left blocked (escalated)."""
        self._asked: Counter[tuple[str, str, str]] = Counter()

    def halted(self) -> str | None:
        """Why the workers are halted (the state's ``halted`` field), or ``None``."""
        try:
            app = build_app(self._settings)
        except redis.RedisError:
            return None
        try:
            return app.redis.hget(app.keys.state, "halted") or None
        except redis.RedisError:
            return None
        finally:
            app.close()

    def round(self) -> int:
        """Act on every blocked customer once; returns how many actions were taken."""
        try:
            app = build_app(self._settings, wait_for_quota=True)
        except redis.RedisError:
            return 0
        acted = 0
        try:
            refs = [str(r) for r in app.redis.zrange(app.keys.blocked, 0, -1)]
            truth: dict[str, list[Mapping[str, Any]]] | None = None
            for ref in refs:
                record = app.store.load(ref)
                if record is None:
                    continue
                retry = False
                for step, block in sorted(record.blocked.items()):
                    if block.manual and block.intent is not None and block.intent.kind is IntentKind.TRANSFER:
                        if truth is None:
                            truth = {}
                            for t in self._transfers():
                                truth.setdefault(str(t["clientOid"]), []).append(t)
                        asked = TransferIntent.of(block.intent).asked_about(block.intent.token)
                        acted += self._decide(app, ref, record.customer_id, step, asked, truth)
                    elif not block.manual and step.startswith(steps.fund("")) and "FAILED" in block.reason:
                        retry = True
                if retry:
                    acted += self._retry(app, ref)
        except StateLost as exc:
            self.refusals[f"state lost ({exc.kind})"] += 1
        except redis.RedisError:
            self.refusals["redis unavailable"] += 1
        finally:
            app.close()
        return acted

    def _decide(
        self,
        app: Any,
        ref: str,
        customer: str,
        step: str,
        asked: list[str],
        truth: Mapping[str, list[Mapping[str, Any]]],
    ) -> int:
        """Check every clientOid the block asks about with the exchange (as the on-call does with KuCoin) and
        answer: committed under the one that moved money, not committed when none did (refused when the customer
        is offboarded)."""
        found = [t for oid in asked for t in truth.get(oid, [])]
        if any(t["status"] == "PROCESSING" for t in found):
            return 0
        question = (ref, step, ",".join(asked))
        if self._asked[question] >= MAX_VERDICTS:
            self.given_up.add(f"{customer} {step}")
            return 0  # the same question again and again: a human stops answering and escalates
        done = [t for t in found if t["status"] == "SUCCESS"]
        client_oid: str | None = None
        if done:
            verdict, order_id, client_oid = (
                TransferVerdict.COMMITTED,
                str(done[0]["orderId"]),
                str(done[0]["clientOid"]),
            )
        elif self._offboarded(customer):
            verdict, order_id = TransferVerdict.REFUSED, None
        else:
            verdict, order_id = TransferVerdict.NOT_COMMITTED, None
        try:
            settle_transfer(
                app,
                ref,
                step,
                verdict=verdict,
                order_id=order_id,
                client_oid=client_oid,
                who="chaos on-call",
                note=f"the exchange shows {len(done)} successful transfer(s) under {', '.join(asked)}",
            )
        except OperatorError as exc:  # e.g. the customer is being reconciled right now: asked again next round
            self.refusals[str(exc)[:60]] += 1
            return 0
        self._asked[question] += 1  # only a verdict given counts towards escalating
        self.decisions[verdict.value] += 1
        self.decided.append({"customer": customer, "step": step, "client_oid": client_oid, "verdict": verdict.value})
        self._log(f"on-call: {customer} {step}: {verdict.value}")
        return 1

    def _retry(self, app: Any, ref: str) -> int:
        """``provisioner customer retry``: the blocked funding line goes out again under its next clientOid."""
        try:
            app.reconciler.run(ref, retry_blocked=True)
        except StateLost:
            raise
        except Exception as exc:  # as `customer retry`: the workers go on with the customer now
            self.refusals[f"retry: {type(exc).__name__}"] += 1
            app.due.schedule(ref, app.reconciler.services.now_ms())
        self.retries += 1
        return 1


def declare_republished(env: dict[str, str], log: Callable[[str], None], attempts: int = 20) -> bool:
    """``provisioner recover --republished --stamps-kept``, as the on-call runs it once the upstream says its
    re-publication is done (re-run while Redis or the workers' faults get in the way): the chaos upstream re-sends
    its events as they were, ``occurred_at`` included. Returns whether it got through."""
    argv = [sys.executable, "-m", "cli", "recover", "--republished", "--stamps-kept"]
    for attempt in range(1, attempts + 1):
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode == 0:
            log("on-call: the upstream's re-publication is declared complete")
            return True
        log(f"provisioner recover --republished failed (run {attempt}): {(done.stderr or done.stdout).strip()[-200:]}")
        time.sleep(1)
    return False


def recover(
    env: dict[str, str],
    adopt: Path | None,
    log: Callable[[str], None],
    attempts: int = 20,
    heard: Path | None = None,
) -> dict[str, Any]:
    """``provisioner recover --yes --json`` (with ``--adopt``, and ``--heard``: the events the upstream received,
    as an upstream would give them), re-run until the exchange's faults let it list every sub-account. Returns its
    JSON answer and how many runs it took."""
    argv = [sys.executable, "-m", "cli", "recover", "--yes", "--json"]
    if adopt is not None:
        argv += ["--adopt", str(adopt)]
    if heard is not None:
        argv += ["--heard", str(heard)]
    last = ""
    for attempt in range(1, attempts + 1):
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
        if done.returncode == 0:
            answer: dict[str, Any] = json.loads(done.stdout)
            answer["runs"] = attempt
            return answer
        last = (done.stderr or done.stdout).strip()[-300:]
        log(f"provisioner recover failed (run {attempt}): {last}")
        time.sleep(1)
    raise RuntimeError(f"provisioner recover did not get through in {attempts} runs: {last}")
