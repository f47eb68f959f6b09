"""What production refuses in a secret that is set: development defaults, blanks and weak or shared key material.

``Settings.from_env`` refuses a *missing* secret in production; this module judges the ones that are present, from
their plain values, and names each offending variable (and key id) without ever echoing a value:

=================================  ===========================================================================
secret                             refused in production when
=================================  ===========================================================================
every one (but the JWK, JSON)      it is a published development default (any of them, not only its own), or
                                   holds a control character, or starts or ends with whitespace
``KUCOIN_*`` credentials           they hold whitespace; a secret or broker key under 16 characters, a
                                   passphrase under 7 (KuCoin's own minimum)
``PROVISIONER_NAME_SECRET``        under 32 characters or fewer than 12 distinct ones; equal to another secret
keyrings (Fernet, X25519, HMAC)    a key has fewer than 16 distinct byte values (an all-zero key) or is all
                                   printable text (a password, not random bytes); the same key material in two
                                   places (the encryption and delivery keyrings, or twice in one)
``whsec_`` secrets                 the same, for each secret's bytes
``PROVISIONER_DELIVERY_JWK``,      the development key, whose private half is published
``PROVISIONER_INTAKE_PUBLIC_KEY``
=================================  ===========================================================================

Pure: it sees a mapping of variable name to plain value, and returns the problems as strings.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping

from worker.profiles import DEV_DEFAULT_API_SETTINGS, DEV_DEFAULT_SECRETS

__all__ = [
    "MIN_DISTINCT_KEY_BYTES",
    "MIN_NAME_SECRET_CHARS",
    "MIN_NAME_SECRET_DISTINCT",
    "published_defaults",
    "secret_problems",
]

MIN_NAME_SECRET_CHARS = 32
"""Shortest ``PROVISIONER_NAME_SECRET`` production accepts (names and customer refs are HMACs keyed by it)."""
MIN_NAME_SECRET_DISTINCT = 12
"""Fewest distinct characters in ``PROVISIONER_NAME_SECRET`` (refuses ``aaaa…`` and ``abab…``)."""
MIN_DISTINCT_KEY_BYTES = 16
"""Fewest distinct byte values in a key: 24 or more random bytes fall under it with odds below 10^-9."""

_EXCHANGE_MIN_CHARS: Mapping[str, int] = {
    "KUCOIN_API_KEY": 1,
    "KUCOIN_API_SECRET": 16,
    "KUCOIN_API_PASSPHRASE": 7,
    "KUCOIN_BROKER_PARTNER": 1,
    "KUCOIN_BROKER_KEY": 16,
    "KUCOIN_BROKER_NAME": 1,
    "KUCOIN_TRADING_API_KEY": 1,
    "KUCOIN_TRADING_API_SECRET": 16,
    "KUCOIN_TRADING_API_PASSPHRASE": 7,
}
_DEV_NAME_SECRETS = {DEV_DEFAULT_SECRETS["PROVISIONER_NAME_SECRET"]}
_FERNET_RINGS = ("PROVISIONER_ENCRYPTION_KEYS", "PROVISIONER_DELIVERY_KEYS")
_BASE64_RINGS = (  # standard base64 keys: X25519 (intake) and HMAC (event signing)
    "PROVISIONER_INTAKE_PRIVATE_KEYS",
    "PROVISIONER_INTAKE_PUBLIC_KEY",
    "PROVISIONER_EVENT_SIGNING_KEYS",
)
_WHSEC = ("PROVISIONER_API_SECRETS", "PROVISIONER_WEBHOOK_SECRET")


def secret_problems(values: Mapping[str, str], *, dev_values: Mapping[str, str]) -> list[str]:
    """Every reason production refuses the secrets in ``values`` (variable name → plain value; unset ones absent).

    ``dev_values`` are the published development defaults (variable name → value), each refused wherever it
    appears. The problems name the variable (and the key id or position within a list), never a value.
    """
    dev_text = set(dev_values.values())
    dev_material = {raw for name, spec in dev_values.items() for _, raw in _materials(name, spec)}
    dev_jwk = _jwk_identity(dev_values.get("PROVISIONER_DELIVERY_JWK", ""))
    problems: list[str] = []
    for name, value in values.items():
        if name == "PROVISIONER_DELIVERY_JWK":  # JSON, which may span lines: judged by its key below
            continue
        if any(not c.isprintable() for c in value):
            problems.append(f"{name}: holds a control character")
        elif value != value.strip():
            problems.append(f"{name}: starts or ends with whitespace")
        elif value in dev_text and name not in (*_FERNET_RINGS, *_BASE64_RINGS, *_WHSEC):
            problems.append(f"{name}: is a published development default")
    for name, minimum in _EXCHANGE_MIN_CHARS.items():
        credential = values.get(name)
        if credential is None:
            continue
        if any(c.isspace() for c in credential.strip()):
            problems.append(f"{name}: holds whitespace")
        if len(credential.strip()) < minimum:
            problems.append(f"{name}: shorter than {minimum} characters")
    problems += _name_secret_problems(values)
    seen: dict[bytes, str] = {}
    for name in (*_FERNET_RINGS, *_BASE64_RINGS, *_WHSEC):
        spec = values.get(name)
        if spec is None:
            continue
        for where, raw in _materials(name, spec):
            label = f"{name}: {where}"
            if raw in dev_material:
                problems.append(f"{label} is a published development default")
            elif name != "PROVISIONER_INTAKE_PUBLIC_KEY" and len(set(raw)) < MIN_DISTINCT_KEY_BYTES:
                problems.append(f"{label} has fewer than {MIN_DISTINCT_KEY_BYTES} distinct bytes (not random)")
            elif name != "PROVISIONER_INTAKE_PUBLIC_KEY" and all(0x20 <= b < 0x7F for b in raw):
                problems.append(f"{label} is printable text, not random bytes")
            if raw in seen and name != "PROVISIONER_INTAKE_PUBLIC_KEY":
                problems.append(f"{label} is the same key as {seen[raw]}")
            seen.setdefault(raw, label.replace(": ", " "))
    jwk = values.get("PROVISIONER_DELIVERY_JWK")
    if jwk is not None and dev_jwk is not None and _jwk_identity(jwk) == dev_jwk:
        problems.append("PROVISIONER_DELIVERY_JWK: is the development key (its private half is published)")
    return problems


def _name_secret_problems(values: Mapping[str, str]) -> list[str]:
    """The name secret and each later version (``PROVISIONER_NAME_SECRETS``): long and varied enough, and each
    unlike every other secret."""
    named: list[tuple[str, str]] = []
    if "PROVISIONER_NAME_SECRET" in values:
        named.append(("PROVISIONER_NAME_SECRET", values["PROVISIONER_NAME_SECRET"]))
    for part in values.get("PROVISIONER_NAME_SECRETS", "").split(","):
        number, sep, secret = part.strip().partition("=")
        if sep:
            named.append((f"PROVISIONER_NAME_SECRETS: version {number}", secret))
    problems = []
    for label, value in named:
        if len(value) < MIN_NAME_SECRET_CHARS or len(set(value)) < MIN_NAME_SECRET_DISTINCT:
            problems.append(
                f"{label}: needs at least {MIN_NAME_SECRET_CHARS} characters, {MIN_NAME_SECRET_DISTINCT} of them "
                "distinct"
            )
        others = sorted(n for n, v in values.items() if v == value and not n.startswith("PROVISIONER_NAME_SECRET"))
        others += [other for other, v in named if v == value and other != label]
        if others:
            problems.append(f"{label}: equals {', '.join(others)}")
        elif label != "PROVISIONER_NAME_SECRET" and value in _DEV_NAME_SECRETS:
            problems.append(f"{label}: is a published development default")
    return problems


def _materials(name: str, spec: str) -> Iterator[tuple[str, bytes]]:
    """The raw bytes of each key (or ``whsec_`` secret) of a keyring-like setting, with where it sits. Entries that
    do not decode are skipped: their format is the parsing module's to refuse."""
    if name in _WHSEC:
        for position, part in enumerate((p.strip() for p in spec.split(",") if p.strip()), start=1):
            raw = _b64(part.removeprefix("whsec_"), urlsafe=False)
            if raw:
                yield f"secret {position}", raw
        return
    if name not in _FERNET_RINGS and name not in _BASE64_RINGS:
        return
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        key_id, _, material = part.partition("=")
        raw = _b64(material.strip(), urlsafe=name in _FERNET_RINGS)
        if raw:
            yield f"key {key_id.strip()!r}", raw


def _b64(text: str, *, urlsafe: bool) -> bytes:
    try:
        if urlsafe:
            return base64.urlsafe_b64decode(text.encode("ascii"))
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return b""


def _jwk_identity(text: str) -> tuple[object, ...] | None:
    """What makes a public JWK the key it is (its type and public numbers), or None when it is not a JWK."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return tuple(data.get(member) for member in ("kty", "crv", "x", "y", "n", "e"))


def published_defaults(*extra: tuple[str, str]) -> dict[str, str]:
    """Every published development default by variable name: the worker's, the API's, and ``extra`` pairs."""
    return {**DEV_DEFAULT_SECRETS, **DEV_DEFAULT_API_SETTINGS, **dict(extra)}
