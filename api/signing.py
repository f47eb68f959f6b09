"""Request signatures: every signed request follows the Standard Webhooks spec, verified by its library.

Headers ``webhook-id``, ``webhook-timestamp`` (Unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of
"id.timestamp.body">``, several separated by spaces); secrets ``whsec_<base64>`` from ``PROVISIONER_API_SECRETS``,
any of which verifies (rotation: add the new secret, move the upstream to it, remove the old one). A timestamp
more than 5 minutes from our clock is refused (the library's tolerance); signatures are compared in constant time
(``hmac.compare_digest``, inside the library).

``SignatureVerifier.verify`` answers yes or no and never raises: malformed headers, a body that is not UTF-8 or a
signature that is not base64 are a no like any other, and the caller's 401 says nothing about which it was.
"""

from __future__ import annotations

from collections.abc import Mapping

from standardwebhooks.webhooks import Webhook

__all__ = ["HEADERS", "SignatureVerifier"]

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
MAX_HEADER_LENGTH = 1024
"""Longer signature headers are refused unread (a list of a few signatures fits many times over)."""


class SignatureVerifier:
    """Verifies requests against any of the configured secrets."""

    def __init__(self, secrets: list[str]) -> None:
        if not secrets:
            raise ValueError("at least one signing secret is needed")
        self._hooks = [Webhook(secret) for secret in secrets]

    def __repr__(self) -> str:
        return f"SignatureVerifier(secrets={len(self._hooks)})"

    @classmethod
    def parse(cls, spec: str) -> SignatureVerifier:
        """From ``PROVISIONER_API_SECRETS`` (comma-separated ``whsec_…``; its format is checked by the settings)."""
        return cls([s.strip() for s in spec.split(",") if s.strip()])

    def verify(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """Whether ``body`` with these headers is signed by one of our secrets within the time tolerance."""
        wanted = {name: headers.get(name, "") for name in HEADERS}
        if not all(wanted.values()) or any(len(v) > MAX_HEADER_LENGTH for v in wanted.values()):
            return False
        for hook in self._hooks:
            try:
                hook.verify(body, wanted, json_parse=False)
            except Exception:  # noqa: S112 - the library raises several kinds for a bad header: all are a no
                continue
            return True
        return False
