"""Signing webhook requests per Standard Webhooks (standardwebhooks.com), with the ``standardwebhooks`` library.

Every request carries ``webhook-id`` (the event's deterministic id: the receiver's idempotency key),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of
"<id>.<timestamp>.<body>">`` under each configured secret, space-separated. ``PROVISIONER_WEBHOOK_SECRET`` is one
``whsec_<base64>`` secret, or several separated by commas while rotating (the receiver accepts any of them).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from datetime import datetime

from standardwebhooks import Webhook

__all__ = ["SECRET_PREFIX", "Signer", "WebhookSecretError"]

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, no secret
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
"""Standard Webhooks: secrets of 24 to 64 random bytes."""


class WebhookSecretError(Exception):
    """``PROVISIONER_WEBHOOK_SECRET`` is not a comma-separated list of ``whsec_<base64 of 24-64 bytes>``."""


class Signer:
    """Signs a body for one attempt. Holds the secrets; its ``repr`` never shows them."""

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise WebhookSecretError("no webhook secret")
        self._hooks = [Webhook(s) for s in secrets]

    def __repr__(self) -> str:
        return f"Signer(secrets={len(self._hooks)})"

    @classmethod
    def parse(cls, spec: str, *, name: str = "PROVISIONER_WEBHOOK_SECRET") -> Signer:
        """Parse ``whsec_…[,whsec_…]``. Raises ``WebhookSecretError`` naming ``name`` (never echoing a value)."""
        secrets = [s.strip() for s in spec.split(",") if s.strip()]
        if not secrets:
            raise WebhookSecretError(f"{name}: no secret")
        for position, secret in enumerate(secrets, start=1):
            if not secret.startswith(SECRET_PREFIX):
                raise WebhookSecretError(f"{name}: secret {position} must start with {SECRET_PREFIX}")
            try:
                raw = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
            except (binascii.Error, ValueError):
                raise WebhookSecretError(f"{name}: secret {position} is not base64 after {SECRET_PREFIX}") from None
            if not MIN_SECRET_BYTES <= len(raw) <= MAX_SECRET_BYTES:
                raise WebhookSecretError(
                    f"{name}: secret {position} must be {MIN_SECRET_BYTES}-{MAX_SECRET_BYTES} random bytes, base64"
                )
        return cls(secrets)

    def headers(self, msg_id: str, body: str, at: datetime) -> dict[str, str]:
        """The Standard Webhooks headers of ``body`` sent at ``at`` (an aware UTC time)."""
        signatures = " ".join(hook.sign(msg_id=msg_id, timestamp=at, data=body) for hook in self._hooks)
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signatures,
            "content-type": "application/json",
        }
