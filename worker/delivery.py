"""Credentials delivered to the upstream: a JWE (RFC 7516, compact serialization) encrypted to the upstream's
public key, which any language's JOSE library opens. The worker holds only the public half.

``PROVISIONER_DELIVERY_JWK`` is a public JWK (RFC 7517):

==========================  ==================  =========  ==========================================
key                         ``alg``             ``enc``    notes
==========================  ==================  =========  ==========================================
``kty: EC``, ``crv: P-256``  ``ECDH-ES+A256KW``  ``A256GCM``  recommended (small, fast)
``kty: RSA`` (≥ 2048 bits)   ``RSA-OAEP-256``    ``A256GCM``
==========================  ==================  =========  ==========================================

The protected header names ``alg``, ``enc``, ``cty: application/json`` and ``kid`` (the JWK's own ``kid``, or its
RFC 7638 thumbprint), so the upstream can rotate keys: publish the new public key here, keep the old private key
until every event sealed with it has been read. The plaintext is ``{"api_key", "secret", "passphrase"}``.

Migration from the Fernet keyring (``PROVISIONER_DELIVERY_KEYS``), expand then contract:

- only ``PROVISIONER_DELIVERY_KEYS`` set: ``credentials`` is ``{"key_id", "token"}`` (Fernet) as before — a warning
  at start-up says to move;
- both set: ``credentials`` carries ``"jwe"`` *and* ``"key_id"``/``"token"``, so a consumer can switch whenever it is
  ready;
- only ``PROVISIONER_DELIVERY_JWK`` set (the target): ``credentials`` is ``{"jwe"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey, import_key

from worker.crypto import Keyring

__all__ = ["ENC", "CredentialSealer", "DeliveryKeyError", "RecipientKey"]

ENC = "A256GCM"
"""Content encryption of every delivered JWE."""
EC_ALG = "ECDH-ES+A256KW"
RSA_ALG = "RSA-OAEP-256"
MIN_RSA_BITS = 2048
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_REGISTRY = jwe.JWERegistry(algorithms=[EC_ALG, RSA_ALG, ENC])


class DeliveryKeyError(Exception):
    """``PROVISIONER_DELIVERY_JWK`` is not a public EC P-256 or RSA (≥ 2048 bits) key fit for encryption."""


@dataclass(frozen=True)
class RecipientKey:
    """The upstream's public key and the algorithms used with it."""

    key: ECKey | RSAKey
    alg: str
    kid: str

    def __repr__(self) -> str:
        return f"RecipientKey(alg={self.alg!r}, kid={self.kid!r})"

    @classmethod
    def parse(cls, text: str, *, name: str = "PROVISIONER_DELIVERY_JWK") -> RecipientKey:
        """Parse a public JWK (JSON). Raises ``DeliveryKeyError`` naming ``name`` when it is not JSON, holds a
        private member (the worker must never hold the private half), is of another type or curve, is an RSA key
        under 2048 bits, or says it is for another use or algorithm."""
        try:
            data = json.loads(text)
        except ValueError:
            raise DeliveryKeyError(f"{name}: not JSON (expected a public JWK object)") from None
        if not isinstance(data, dict):
            raise DeliveryKeyError(f"{name}: expected a JWK object")
        private = sorted(_PRIVATE_MEMBERS & set(data))
        if private:
            raise DeliveryKeyError(
                f"{name}: holds private members ({', '.join(private)}): give the public half only; the private key "
                "stays with the upstream"
            )
        kty, crv = data.get("kty"), data.get("crv")
        if kty == "EC" and crv == "P-256":
            alg = EC_ALG
        elif kty == "RSA":
            alg = RSA_ALG
        else:
            raise DeliveryKeyError(f"{name}: expected kty EC with crv P-256, or kty RSA (got kty={kty!r})")
        if data.get("use", "enc") != "enc":
            raise DeliveryKeyError(f'{name}: "use" must be "enc"')
        if data.get("alg", alg) != alg:
            raise DeliveryKeyError(f'{name}: "alg" must be {alg!r} for this key type')
        try:
            key = import_key(data)
        except (JoseError, ValueError, TypeError) as exc:
            raise DeliveryKeyError(f"{name}: not a valid {kty} key: {exc}") from None
        if not isinstance(key, ECKey | RSAKey):  # pragma: no cover - kty checked above
            raise DeliveryKeyError(f"{name}: unsupported key type")
        if isinstance(key, RSAKey) and key.raw_value.key_size < MIN_RSA_BITS:
            raise DeliveryKeyError(f"{name}: an RSA key must have at least {MIN_RSA_BITS} bits")
        kid = data.get("kid")
        if kid is not None and not (isinstance(kid, str) and kid):
            raise DeliveryKeyError(f'{name}: "kid" must be a non-empty string')
        return cls(key=key, alg=alg, kid=kid or key.thumbprint())

    def encrypt(self, plaintext: bytes) -> str:
        """The JWE compact serialization of ``plaintext`` for this key (a fresh content key every time)."""
        header = {"alg": self.alg, "enc": ENC, "cty": "application/json", "kid": self.kid}
        return jwe.encrypt_compact(header, plaintext, self.key, registry=_REGISTRY)


class CredentialSealer:
    """Builds the ``credentials`` object of ``api_key.issued`` (see the module docstring for the migration)."""

    def __init__(self, recipient: RecipientKey | None, legacy: Keyring | None = None) -> None:
        if recipient is None and legacy is None:
            raise DeliveryKeyError("set PROVISIONER_DELIVERY_JWK (or, while migrating, PROVISIONER_DELIVERY_KEYS)")
        self.recipient = recipient
        self.legacy = legacy

    def __repr__(self) -> str:
        return f"CredentialSealer(mode={self.mode!r})"

    @property
    def mode(self) -> str:
        """``jwe``, ``jwe+fernet`` (migrating) or ``fernet`` (legacy)."""
        if self.recipient is not None:
            return "jwe+fernet" if self.legacy is not None else "jwe"
        return "fernet"

    def seal(self, credentials: Mapping[str, str]) -> dict[str, Any]:
        """``{"jwe": …}`` and/or ``{"key_id": …, "token": …}``: ``credentials`` (``api_key``, ``secret``,
        ``passphrase``) encrypted, never in the clear."""
        plaintext = json.dumps(dict(credentials), separators=(",", ":"), sort_keys=True).encode("utf-8")
        sealed: dict[str, Any] = {}
        if self.recipient is not None:
            sealed["jwe"] = self.recipient.encrypt(plaintext)
        if self.legacy is not None:
            token = self.legacy.seal(dict(credentials))
            sealed |= {"key_id": token.key_id, "token": token.token}
        return sealed
