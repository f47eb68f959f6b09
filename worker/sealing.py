"""Sealing KYC documents at the edge, to a public key whose private half only the worker holds.

The HTTP API (and ``provisioner publish``) must never hold anything that opens what is sealed at rest, yet KYC
documents must not sit in Redis in the clear between the edge and the worker. So the edge seals them with HPKE
(RFC 9180, base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM — ``cryptography``'s
``hazmat.primitives.hpke``) to the worker's *intake key*; the worker opens them on intake and re-seals them with
its Fernet keyring (``worker.crypto``) for storage.

Keys are configured like the keyrings: ``"id=<base64 of the 32-byte raw X25519 key>"``. The worker holds
``PROVISIONER_INTAKE_PRIVATE_KEYS`` (any listed key opens what was sealed to its public half: rotate by adding
the new key, then switching the edge's ``PROVISIONER_INTAKE_PUBLIC_KEY``, then removing the old key once nothing
sealed to it is in flight); the edge holds only ``PROVISIONER_INTAKE_PUBLIC_KEY``.

A sealed value is bound to its event: the HPKE ``info`` names the event id, so documents cut from one event and
pasted into another do not open.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from worker.crypto import CryptoError

__all__ = ["ALGORITHM", "Envelope", "IntakeKeys", "IntakeSealer", "generate_key_pair", "intake_key_problems"]

ALGORITHM = "HPKE-Base-X25519-SHA256-A256GCM"
"""The one suite we seal with (named in every envelope, so a future suite can be told apart)."""
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO = "kucoin-nd-provisioner/kyc-documents/v1:"


class Envelope(BaseModel):
    """KYC documents sealed to the worker's intake key: ``kid`` names the key, ``ct`` is base64 of the HPKE
    encapsulated key followed by the ciphertext."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alg: str = Field(pattern=f"^{ALGORITHM}$")
    kid: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9]+$")
    ct: str = Field(min_length=1)


def _info(event_id: str) -> bytes:
    return (_INFO + event_id).encode("utf-8")


def _raw(material: str, *, name: str, key_id: str) -> bytes:
    try:
        raw = base64.b64decode(material.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise CryptoError(f"{name}: key {key_id!r} is not base64 of a 32-byte X25519 key")
    return raw


def _pairs(spec: str, *, name: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        key_id, sep, material = part.partition("=")
        key_id = key_id.strip()
        if not sep or not key_id.isalnum() or len(key_id) > 32 or key_id in {k for k, _ in pairs}:
            raise CryptoError(f"{name}: expected unique KEY_ID=BASE64_KEY pairs (key ids alphanumeric)")
        pairs.append((key_id, material))
    if not pairs:
        raise CryptoError(f"{name}: no keys")
    return pairs


class IntakeSealer:
    """The edge's half: seals to one public key. Holds nothing that opens anything."""

    def __init__(self, key_id: str, public_key: X25519PublicKey) -> None:
        self.key_id = key_id
        self._public = public_key

    def __repr__(self) -> str:
        return f"IntakeSealer(kid={self.key_id!r})"

    @classmethod
    def parse(cls, spec: str, *, name: str) -> IntakeSealer:
        """Parse ``"id=<base64 public key>"`` (exactly one key). Raises ``CryptoError`` naming ``name``."""
        pairs = _pairs(spec, name=name)
        if len(pairs) != 1:
            raise CryptoError(f"{name}: expected exactly one KEY_ID=BASE64_PUBLIC_KEY")
        key_id, material = pairs[0]
        return cls(key_id, X25519PublicKey.from_public_bytes(_raw(material, name=name, key_id=key_id)))

    def public_bytes(self) -> bytes:
        return self._public.public_bytes_raw()

    def public_spec(self) -> str:
        """This key as ``PROVISIONER_INTAKE_PUBLIC_KEY`` is written."""
        return f"{self.key_id}={base64.b64encode(self._public.public_bytes_raw()).decode('ascii')}"

    def seal(self, documents: dict[str, Any], *, event_id: str) -> Envelope:
        """Seal a JSON-able mapping for the event ``event_id``."""
        plaintext = json.dumps(documents, separators=(",", ":")).encode("utf-8")
        sealed = _SUITE.encrypt(plaintext, self._public, info=_info(event_id))
        return Envelope(alg=ALGORITHM, kid=self.key_id, ct=base64.b64encode(sealed).decode("ascii"))


class IntakeKeys:
    """The worker's half: the private intake keys; the first one's public half is what the edge seals to."""

    def __init__(self, keys: dict[str, X25519PrivateKey], active: str) -> None:
        if active not in keys:
            raise CryptoError("the active intake key id is not among the keys")
        self._keys = keys
        self.active = active

    def __repr__(self) -> str:
        return f"IntakeKeys(ids={list(self._keys)}, active={self.active!r})"

    @classmethod
    def parse(cls, spec: str, *, name: str) -> IntakeKeys:
        """Parse ``"id=<base64 private key>,id2=…"``. Raises ``CryptoError`` naming ``name`` when malformed."""
        pairs = _pairs(spec, name=name)
        keys = {
            key_id: X25519PrivateKey.from_private_bytes(_raw(material, name=name, key_id=key_id))
            for key_id, material in pairs
        }
        return cls(keys, pairs[0][0])

    def sealer(self) -> IntakeSealer:
        """A sealer to the active key's public half (what ``provisioner publish`` uses in the worker's settings)."""
        return IntakeSealer(self.active, self._keys[self.active].public_key())

    def opens(self, sealer: IntakeSealer) -> bool:
        """Whether what ``sealer`` seals opens with these keys (same key id, same public half)."""
        key = self._keys.get(sealer.key_id)
        return key is not None and key.public_key().public_bytes_raw() == sealer.public_bytes()

    def open(self, envelope: Envelope, *, event_id: str) -> dict[str, Any]:
        """Open documents sealed for ``event_id``. Raises ``CryptoError`` for an unknown key id, a tampered
        envelope, or one sealed for another event."""
        key = self._keys.get(envelope.kid)
        if key is None:
            raise CryptoError(f"no intake key with id {envelope.kid!r}")
        try:
            plaintext = _SUITE.decrypt(base64.b64decode(envelope.ct, validate=True), key, info=_info(event_id))
            value = json.loads(plaintext)
        except (InvalidTag, binascii.Error, ValueError):
            raise CryptoError("sealed documents do not open (tampered, another key, or another event)") from None
        if not isinstance(value, dict):
            raise CryptoError("sealed documents are not a mapping")
        return value


def generate_key_pair(key_id: str = "k1") -> tuple[str, str]:
    """A fresh intake key pair as the two settings' values: (private keys spec, public key spec)."""
    private = X25519PrivateKey.generate()
    raw = base64.b64encode(private.private_bytes_raw()).decode("ascii")
    public = base64.b64encode(private.public_key().public_bytes_raw()).decode("ascii")
    return f"{key_id}={raw}", f"{key_id}={public}"


def intake_key_problems(private_spec: str | None, public_spec: str | None) -> list[str]:
    """What is wrong with the intake-key settings, naming them: either fails to parse, or a public key set beside
    the private ones is not the public half of one of them (what ``provisioner publish`` seals to must open)."""
    try:
        public = IntakeSealer.parse(public_spec, name="PROVISIONER_INTAKE_PUBLIC_KEY") if public_spec else None
        if private_spec is not None:
            keys = IntakeKeys.parse(private_spec, name="PROVISIONER_INTAKE_PRIVATE_KEYS")
            if public is not None and not keys.opens(public):
                return ["PROVISIONER_INTAKE_PUBLIC_KEY: is not the public half of any PROVISIONER_INTAKE_PRIVATE_KEYS"]
    except CryptoError as exc:
        return [str(exc)]
    return []
