"""Waits of our own: a step that cannot go on yet for a reason that is not the exchange's quota ends the run as
rate limited (``RateLimitedError``: the customer is due again after the wait), reported under its own name
instead of an exchange pool's (``RunReport.waited_pool``, the ``provisioner_ratelimit_waits_total`` label)."""

from __future__ import annotations

from worker.exchange import RateLimitedError

__all__ = ["DAILY_CAP_WAIT", "KEY_ROLLOUT_WAIT", "LISTING_WAIT", "OWN_WAITS", "own_wait"]

DAILY_CAP_WAIT = "daily_cap"
"""A funding send near UTC midnight whose other possible day's cap is full (``money_steps``)."""
LISTING_WAIT = "listing"
"""A recovery's audit that finds a key unlisted that the exchange may not list yet (``audit_steps``)."""
KEY_ROLLOUT_WAIT = "key_rollout"
"""KYC documents sealed under an encryption key this process does not hold yet, soon after they came: a rollout of
``PROVISIONER_ENCRYPTION_KEYS`` in progress (``kyc_steps``)."""
OWN_WAITS = frozenset({DAILY_CAP_WAIT, KEY_ROLLOUT_WAIT, LISTING_WAIT})


def own_wait(name: str, message: str, wait_ms: int) -> RateLimitedError:
    """The error that ends the run for ``wait_ms`` (at least 1) under the wait's ``name``."""
    return RateLimitedError(message, endpoint=name, retry_after_ms=max(wait_ms, 1))
