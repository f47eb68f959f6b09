"""``StateGuard.recover`` reads ``writes`` (HGETALL) and later writes it back in a separate MULTI: a running worker's
guarded write in between is undone. On a live deployment (``recover --adopt``, documented as carried on) every
worker that saw that write finds the operator's epoch behind its high-water mark, refuses to succeed into it
(``_succeeds``: ``writes >= hwm``) and halts the whole deployment."""

from __future__ import annotations

from typing import Any

from tests.core.harness import Rig, events_for
from tests.core.test_lost_state import second_host
from worker.recovery import Adoption, recover
from worker.runtime.state_watch import StateWatch


class WriteBeforeMulti:
    """The CLI's Redis client; a running worker commits between ``recover``'s read and its MULTI (a few ms apart)."""

    def __init__(self, inner: Any, during: Any) -> None:
        self._inner, self._during = inner, during

    def pipeline(self, *args: Any, **kwargs: Any) -> Any:
        if self._during is not None:
            during, self._during = self._during, None
            during()
        return self._inner.pipeline(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def test_an_adoption_racing_a_live_write_halts_the_deployment(redis_url: str, key_prefix: str) -> None:
    """The state epoch never halts a sound deployment: recover --adopt racing one live write halts every worker."""
    rig = Rig(redis_url, key_prefix)
    try:
        ev = events_for("busy-live", funding=())
        ref = rig.publish(ev["created"])[0]
        rig.settle(ref)
        watch = StateWatch(lambda: rig.app.state)
        watch.check()
        with rig.exchange.lock:
            legacy = rig.exchange.state.add_subaccount("legacyacct0003", rig.exchange.now_ms())
        cli = second_host(rig, same_host=True)
        try:
            # two events stored by the running worker's intake while the operator's recover is between its read and
            # its MULTI (the adoption's own commit adds one write back)
            cli.state._redis = WriteBeforeMulti(cli.state._redis, lambda: rig.publish(ev["kyc"], ev["ip"]))
            recover(cli, reason="migration", adoptions=[Adoption("migrated-busy", legacy.uid)])
        finally:
            cli.close()
        watch.check()  # the running worker's next scheduler tick
        assert not watch.halted, (
            f"the operator's recovery was halted: {rig.app.redis.hget(rig.app.keys.state, 'halted')}"
        )
    finally:
        rig.close()
