"""What the last recovery after a loss of our state left in Redis, as the readers need it: whether the upstream's
re-publication is still undeclared (``provisioner recover --republished`` not run since the loss)."""

from __future__ import annotations

from typing import Any

from worker.store.keys import Keys

__all__ = ["undeclared_since"]


def undeclared_since(client: Any, keys: Keys) -> int | None:
    """When the last recovery after a loss recorded the loss (ms), while its re-publication is not declared
    complete; ``None`` when no recovery is open. One round trip. Raises ``redis.RedisError``."""
    lost_at, declared_at = client.mget([keys.recovery_lost_at, keys.recovery_republished_at])
    if not lost_at or (declared_at and int(declared_at) >= int(lost_at)):
        return None
    return int(lost_at)
