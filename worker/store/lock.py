"""One reconcile at a time per customer: a Redis lock with expiry and a fencing token.

The token is ``<fence>:<uuid>`` where ``fence`` comes from a counter that only grows. Every write to the
customer's record checks, inside the same Lua script, that the lock still holds *our* token: a holder that
stalled past the expiry and lost the lock can no longer write (it gets ``CommitRejected``). The lock is renewed
by every commit (and before exchange reads); each step is bounded by the HTTP time-outs, which are far below the
lock's time-to-live.

A reconcile that finds the customer busy raises the customer's *dirty* flag; the holder sees it when it commits
or renews (both return it, cleared) and looks at the events again before it lets go.
"""

from __future__ import annotations

import uuid

import redis

from worker.store.keys import Keys

__all__ = ["CustomerLock", "LockLost"]

_ACQUIRE = """
local fence = redis.call('INCR', KEYS[2])
local token = fence .. ':' .. ARGV[1]
if redis.call('SET', KEYS[1], token, 'NX', 'PX', ARGV[2]) then return token end
return false
"""
_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] == '1' and redis.call('DEL', KEYS[2]) == 1 then return 1 end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LockLost(Exception):  # noqa: N818 - reads as what happened
    """Our lock expired or was taken over: stop writing for this customer."""


class CustomerLock:
    def __init__(self, client: redis.Redis, keys: Keys, ref: str, *, ttl_ms: int) -> None:
        self.ref = ref
        self._redis = client
        self._key = keys.lock(ref)
        self._dirty_key = keys.dirty(ref)
        self._fence_key = keys.fence
        self._ttl_ms = ttl_ms
        self.token: str | None = None
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @property
    def ttl_ms(self) -> int:
        return self._ttl_ms

    def acquire(self) -> bool:
        """Take the lock if free. Returns whether we hold it."""
        token = self._acquire(keys=[self._key, self._fence_key], args=[uuid.uuid4().hex, self._ttl_ms])
        if token:
            self.token = token.decode() if isinstance(token, bytes) else str(token)
            return True
        return False

    def adopt(self, token: str) -> None:
        """We hold the lock with ``token``: it was taken by a script that also did more (see
        ``CustomerStore.lock_and_snapshot``)."""
        self.token = token

    def released(self) -> None:
        """A script released the lock (see ``DueSchedule.finish_and_release``): nothing left to release."""
        self.token = None

    def renew(self, *, take_dirty: bool = True) -> bool:
        """Extend the lock to a full time-to-live. With ``take_dirty``, return whether the customer was marked
        dirty meanwhile, and clear the mark. Raises ``LockLost`` if the lock is no longer ours."""
        if self.token is None:
            raise LockLost(self._key)
        result = int(
            self._renew(keys=[self._key, self._dirty_key], args=[self.token, self._ttl_ms, "1" if take_dirty else "0"])
        )
        if result < 0:
            self.token = None
            raise LockLost(self._key)
        return result == 1

    def release(self) -> None:
        """Release the lock if it is still ours (never someone else's)."""
        if self.token is not None:
            self._release(keys=[self._key], args=[self.token])
            self.token = None
