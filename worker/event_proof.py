"""Proof that an event message comes from an authenticated publisher: an HMAC-SHA256 the worker checks first.

Anyone who can write to Redis can put a message on the event queues; only a holder of
``PROVISIONER_EVENT_SIGNING_KEYS`` (the HTTP API, ``provisioner publish``, the worker) can put one there that the
worker takes. The key is never stored in Redis. The proof travels in the dramatiq message's options
(``PROOF_OPTION``), beside the event it covers, so dead-letter replays, hand-off re-sends and retries carry the
original proof unchanged, and an edited event no longer matches it.

==============================  ====================================================================
what the worker sees            verdict (``EventProofs.check`` returns the reason, ``None`` when valid)
==============================  ====================================================================
no proof option                 refused: unsigned (put on the queue by something else)
a proof that does not parse     refused: malformed
a key id we do not hold         refused: unknown key id (a retired key, or a forgery)
a MAC that does not match       refused: the event was altered after signing, or another key signed it
==============================  ====================================================================

The MAC covers ``DOMAIN`` and the event's canonical JSON (``canonical``: keys sorted, no spaces, ASCII), i.e. the
event exactly as it was enqueued — KYC documents in their sealed envelope. The keyring rotates: the first key
signs, every listed key verifies (add the new key first everywhere, then drop the old one once no message signed
with it can still be queued or dead-lettered).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json

from worker.crypto import CryptoError

__all__ = [
    "DOMAIN",
    "MIN_KEY_BYTES",
    "PROOF_OPTION",
    "REPLAY_PROOF_OPTION",
    "EventProofs",
    "canonical",
    "replay_claim",
]

PROOF_OPTION = "event_proof"
"""The dramatiq message option that carries the proof: ``"<key id>:<hex HMAC-SHA256>"``."""
REPLAY_PROOF_OPTION = "replay_proof"
"""The option that proves a message's ``replayed_at`` mark was set by ``provisioner dlq replay`` (an operator's
retry of blocked steps), over ``replay_claim``: without it the mark is ignored."""
DOMAIN = b"provisioner-event-v1\n"
"""Prefixed to the canonical event before it is MACed, so the key's MACs mean nothing anywhere else."""
MIN_KEY_BYTES = 32
"""Shortest signing key accepted (raw bytes, after base64): the HMAC-SHA256 block of security."""
_MAX_KEY_BYTES = 64


def canonical(event: object) -> bytes:
    """The event's canonical JSON: sorted keys, no spaces, ASCII only (NaN as dramatiq's encoder writes it). Raises
    ``ValueError`` or ``TypeError`` for what JSON cannot carry."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


class EventProofs:
    """The signing keyring: ``sign`` with the first key, ``check`` against any. Holds raw key bytes; its ``repr``
    names key ids only."""

    def __init__(self, keys: dict[str, bytes], active: str) -> None:
        if active not in keys:
            raise CryptoError("the active signing key id is not among the keys")
        self._keys = keys
        self.active = active

    def __repr__(self) -> str:
        return f"EventProofs(ids={list(self._keys)}, active={self.active!r})"

    @classmethod
    def parse(cls, spec: str, *, name: str) -> EventProofs:
        """Parse ``"id=<base64 of 32-64 random bytes>,id2=…"`` (first signs). Raises ``CryptoError`` naming ``name``
        and the key id at fault, never a key."""
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key_id, sep, material = part.partition("=")
            key_id = key_id.strip()
            if not sep or not key_id.isalnum() or not key_id.isascii() or len(key_id) > 32 or key_id in keys:
                raise CryptoError(f"{name}: expected unique KEY_ID=BASE64_KEY pairs (key ids alphanumeric)")
            try:
                raw = base64.b64decode(material.strip(), validate=True)
            except (binascii.Error, ValueError):
                raise CryptoError(f"{name}: key {key_id!r} is not base64") from None
            if not MIN_KEY_BYTES <= len(raw) <= _MAX_KEY_BYTES:
                raise CryptoError(f"{name}: key {key_id!r} must be {MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes")
            keys[key_id] = raw
            order.append(key_id)
        if not order:
            raise CryptoError(f"{name}: no keys")
        return cls(keys, order[0])

    def sign(self, event: object) -> str:
        """The proof of ``event`` (what the contract will judge: any JSON value) under the active key. Raises
        ``ValueError``/``TypeError`` for a value JSON cannot carry."""
        return f"{self.active}:{_mac(self._keys[self.active], event)}"

    def check(self, event: object, proof: object) -> str | None:
        """Why ``proof`` does not prove ``event``, or ``None`` when it does. The reason names no key and no MAC."""
        if proof is None:
            return "unsigned: no proof of an authenticated publisher (publish through the API or `provisioner publish`)"
        if not isinstance(proof, str) or proof.count(":") != 1:
            return "malformed proof of publisher"
        key_id, given = proof.split(":")
        key = self._keys.get(key_id)
        if key is None:
            shown = key_id if key_id.isalnum() and key_id.isascii() and len(key_id) <= 32 else "?"
            return f"proof signed with an unknown key id {shown!r}"
        try:
            expected = _mac(key, event)
        except (ValueError, TypeError, RecursionError):
            return "not JSON: no proof can cover it"
        if not hmac.compare_digest(expected.encode(), given.encode()):
            return "proof does not match the event (altered after signing, or signed with another key)"
        return None


def replay_claim(message_id: str, replayed_at: object) -> dict[str, object]:
    """What a replay proof covers: the message replayed and the time of the replay (a mark copied onto another
    message, or re-dated, proves nothing)."""
    return {"replay_of": message_id, "replayed_at": replayed_at}


def _mac(key: bytes, event: object) -> str:
    return hmac.new(key, DOMAIN + canonical(event), hashlib.sha256).hexdigest()
