"""Encryption at rest and in delivery: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) with key ids.

A keyring is configured as ``"id1=<fernet key>,id2=<fernet key>"``: the first key seals, any listed key opens
what it sealed. Every sealed value records the id of its key, so keys can be rotated: put the new key first (it seals
from then on), re-seal what is held (``provisioner keys reseal``, ``worker.reseal``), then drop the old key.
"""

from __future__ import annotations

import binascii
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from handlers.records import SealedSecret

__all__ = ["CryptoError", "Keyring"]


class CryptoError(Exception):
    """A keyring is malformed, or a sealed value cannot be opened (unknown key id, tampered token)."""


class Keyring:
    """Named Fernet keys; the first one seals."""

    def __init__(self, keys: dict[str, Fernet], active: str) -> None:
        if active not in keys:
            raise CryptoError("the active key id is not in the keyring")
        self._keys = keys
        self.active = active

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self._keys)}, active={self.active!r})"

    @classmethod
    def parse(cls, spec: str, *, name: str) -> Keyring:
        """Parse ``"id=key,id=key"``. Raises ``CryptoError`` naming the setting ``name`` when malformed."""
        keys: dict[str, Fernet] = {}
        order: list[str] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            key_id, sep, material = part.partition("=")
            key_id = key_id.strip()
            if not sep or not key_id.isalnum() or key_id in keys:
                raise CryptoError(f"{name}: expected unique KEY_ID=FERNET_KEY pairs (key ids alphanumeric)")
            try:
                keys[key_id] = Fernet(material.strip().encode("ascii"))
            except (ValueError, binascii.Error, UnicodeEncodeError):
                raise CryptoError(f"{name}: key {key_id!r} is not a Fernet key (32 url-safe base64 bytes)") from None
            order.append(key_id)
        if not order:
            raise CryptoError(f"{name}: no keys")
        return cls(keys, order[0])

    def seal(self, value: dict[str, Any]) -> SealedSecret:
        """Encrypt a JSON-able mapping with the active key."""
        token = self._keys[self.active].encrypt(json.dumps(value, separators=(",", ":")).encode("utf-8"))
        return SealedSecret(key_id=self.active, token=token.decode("ascii"))

    def holds(self, key_id: str) -> bool:
        """Whether the keyring has the key ``key_id`` (opens what it sealed)."""
        return key_id in self._keys

    def reseal(self, sealed: SealedSecret) -> SealedSecret:
        """The same value sealed with the active key (``sealed`` itself when it already is). Raises
        ``CryptoError`` like ``open``."""
        if sealed.key_id == self.active:
            return sealed
        return self.seal(self.open(sealed))

    def open(self, sealed: SealedSecret) -> dict[str, Any]:
        """Decrypt a sealed mapping. Raises ``CryptoError`` for an unknown key id or a tampered token."""
        key = self._keys.get(sealed.key_id)
        if key is None:
            raise CryptoError(f"no key with id {sealed.key_id!r} in the keyring")
        try:
            value = json.loads(key.decrypt(sealed.token.encode("ascii")))
        except InvalidToken:
            raise CryptoError("sealed value does not decrypt (tampered, or sealed with another key)") from None
        if not isinstance(value, dict):
            raise CryptoError("sealed value is not a mapping")
        return value
