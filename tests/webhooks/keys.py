"""Private keys that exist only in the tests: the development default's private half, and fresh key pairs. The
worker is only ever given the public halves."""

from __future__ import annotations

import json
from typing import Any

from joserfc import jwe
from joserfc.jwk import ECKey, RSAKey

from worker.settings import DEV_DELIVERY_JWK

DEV_PRIVATE_JWK: dict[str, Any] = {
    **json.loads(DEV_DELIVERY_JWK),
    "d": "FM1rCV3kIYHH14s6ZSmX2XY401loKo6xmRhI_5vG1-A",
}
"""The private half of ``worker.settings.DEV_DELIVERY_JWK`` (development only: it protects nothing)."""

_REGISTRY = jwe.JWERegistry(algorithms=["ECDH-ES+A256KW", "RSA-OAEP-256", "A256GCM"])


def key_pair(kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(private JWK, public JWK) of a fresh ``ec`` (P-256) or ``rsa`` (2048-bit) key."""
    key = ECKey.generate_key("P-256") if kind == "ec" else RSAKey.generate_key(2048)
    return dict(key.as_dict(private=True)), dict(key.as_dict(private=False))


def open_jwe(token: str, private_jwk: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decrypt a delivered JWE as the upstream would: (protected header, plaintext as JSON)."""
    key = ECKey.import_key(private_jwk) if private_jwk["kty"] == "EC" else RSAKey.import_key(private_jwk)
    opened = jwe.decrypt_compact(token, key, registry=_REGISTRY)
    assert opened.plaintext is not None
    return dict(opened.protected), json.loads(opened.plaintext)
