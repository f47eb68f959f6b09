"""Each signed request id names one request: a captured signature cannot be sent again for anything else.

A POST's signature (Standard Webhooks) covers the request id, the timestamp and the body, not the method or the
path (a read signs its request line instead of a body: ``api.app._signed_read``). ``RequestIds`` remembers, for
longer than the timestamp tolerance on either side, which request each verified id was used for (a digest of the
method, the path with its query, and the body): the same request again (a client's retry after a lost answer, as
docs/integration.md asks for) passes; the id with anything else is refused. Redis holds only the digest.
"""

from __future__ import annotations

import hashlib

import redis

from worker.store.keys import Keys

__all__ = ["REMEMBERED_MS", "RequestIds", "request_digest"]

REMEMBERED_MS = 11 * 60_000
"""How long an id is remembered: longer than a timestamp may be off our clock in either direction (5 minutes)."""


def request_digest(method: str, target: bytes, body: bytes) -> str:
    """What a request id is bound to: ``METHOD target\\nbody`` hashed (``target``: the raw path and query)."""
    digest = hashlib.sha256()
    digest.update(method.upper().encode("ascii") + b" " + target + b"\n")
    digest.update(body)
    return digest.hexdigest()


class RequestIds:
    def __init__(self, client: redis.Redis, keys: Keys, *, remembered_ms: int = REMEMBERED_MS) -> None:
        self._redis = client
        self._keys = keys
        self._remembered_ms = remembered_ms

    def claim(self, request_id: str, digest: str) -> bool:
        """Whether ``request_id`` may stand for the request of ``digest``: it was not used yet (now it is, for this
        request), or it was used for this very request. Raises ``redis.RedisError``."""
        key = self._keys.api_request(request_id)
        if self._redis.set(key, digest, nx=True, px=self._remembered_ms):
            return True
        held = self._redis.get(key)
        if held is None:  # expired between the two calls: claim it again
            return bool(self._redis.set(key, digest, nx=True, px=self._remembered_ms))
        return (held.decode() if isinstance(held, bytes) else str(held)) == digest
