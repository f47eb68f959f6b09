"""Deterministic, pseudonymous names: derived from the customer id with a secret, revealing nothing of it.

- ``customer_ref``: our key for a customer in Redis, logs and metrics (the upstream id may be personal).
- ``account_name``: the sub-account's name, unique exchange-wide; valid under KuCoin's ordinary sub-account rule
  (7–32 characters, letters and digits, at least one of each): ``<prefix><attempt><16 base32 chars>``. A name
  taken by someone else moves to the next attempt.
- ``key_label``: one label per key generation of a customer (4–32 characters).
- ``funding_client_oid`` / ``sweep_client_oid``: one clientOid per funding line or sweep, per attempt.

**Versions.** The secret (version 1) can never change: every customer's ref, sub-account names and clientOids
derive from it, and a changed name would create a second sub-account. After a leak, later *versions* (``versions``,
``PROVISIONER_NAME_SECRETS``) give new customers sub-account names from a new secret: a customer's record keeps the
version it was created with (``CustomerRecord.name_version``; a record from before versions is version 1), so
existing names never change. Refs, clientOids and digests stay on version 1 for everyone (a ref is how a customer
id is found, before any record is read).

What a leaked secret exposes (it opens nothing: no credential, key or document derives from it): who is behind a
ref or sub-account name, for anyone who can guess customer ids (logs, metrics and the exchange's sub-account list
are then no longer pseudonymous); and the names of customers still to come, which could be registered first to
push their creation through all ``MAX_NAME_ATTEMPTS`` and block it. A new version ends the second for new
customers; the first stays for the customers the leaked version named.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["MAX_NAME_ATTEMPTS", "Naming", "NamingError"]

MAX_NAME_ATTEMPTS = 10
"""Sub-account names tried per customer (and per version) before creation is blocked for an operator."""


class NamingError(ValueError):
    """A name was asked of a secret version this deployment does not have."""


class Naming:
    """All derived names of one deployment; ``secret`` must stay the same for the deployment's lifetime."""

    def __init__(self, secret: str, *, prefix: str = "nd", versions: Mapping[int, str] | None = None) -> None:
        """``secret`` is version 1; ``versions`` maps later version numbers (2 and up) to their secrets. Raises
        ``ValueError`` for a malformed prefix or version number."""
        if not prefix.isalnum() or not prefix[:1].isalpha() or not 1 <= len(prefix) <= 8:
            raise ValueError("prefix must be 1-8 letters or digits, starting with a letter")
        if any(v < 2 for v in (versions or {})):
            raise ValueError("name-secret versions start at 2 (version 1 is the secret itself)")
        self._secret = secret.encode("utf-8")
        self._secrets = {1: self._secret, **{v: s.encode("utf-8") for v, s in (versions or {}).items()}}
        self._prefix = prefix.lower()
        self.current_version = max(self._secrets)
        """The version new customers' records are created with."""

    def __repr__(self) -> str:
        return f"Naming(prefix={self._prefix!r}, versions={sorted(self._secrets)})"

    def _mac(self, *parts: str, version: int = 1) -> bytes:
        secret = self._secrets.get(version)
        if secret is None:
            raise NamingError(
                f"name-secret version {version} is not configured (PROVISIONER_NAME_SECRETS): a version that named "
                "customers must never be removed"
            )
        return hmac.new(secret, "\x00".join(parts).encode("utf-8"), hashlib.sha256).digest()

    def fingerprint(self) -> str:
        """A keyed fingerprint of the naming (version 1's secret and the account prefix): equal in every process of
        one deployment, different where the secret differs, and telling nothing of the secret. Kept with the state
        (``worker.store.epoch``) so that a process started with another secret is refused before it names anyone."""
        return f"{self._mac('fingerprint').hex()[:16]}:{self._prefix}"

    def customer_ref(self, customer_id: str) -> str:
        """A 21-character pseudonym for ``customer_id``, stable for the deployment."""
        return "c" + self._mac("ref", customer_id).hex()[:20]

    def account_name(self, customer_id: str, attempt: int, *, version: int = 1) -> str:
        """The sub-account name for ``attempt`` (0–9) under name-secret ``version`` (the customer record's
        ``name_version``). Raises ``NamingError`` for a version this deployment does not have."""
        if not 0 <= attempt < MAX_NAME_ATTEMPTS:
            raise ValueError(f"attempt must be 0-{MAX_NAME_ATTEMPTS - 1}")
        mac = self._mac("account", customer_id, str(attempt), version=version)
        digest = base64.b32encode(mac).decode("ascii").lower()
        return f"{self._prefix}{attempt}{digest[:16]}"

    def named_otherwise(self, customer_id: str, name: str) -> bool:
        """Whether ``name`` is one of ``customer_id``'s sub-account names derived by this secret under another
        account prefix (a name an older system chose, adopted, is not)."""
        ours = self.account_names(customer_id)
        tails = {n[len(self._prefix) :] for n in ours}
        return name not in ours and any(name.endswith(tail) and len(name) > len(tail) for tail in tails)

    def account_names(self, customer_id: str) -> set[str]:
        """Every name ``customer_id``'s sub-account can have: each attempt under each configured version."""
        return {
            self.account_name(customer_id, attempt, version=version)
            for version in self._secrets
            for attempt in range(MAX_NAME_ATTEMPTS)
        }

    def name_candidates(self, customer_id: str) -> list[tuple[int, int, str]]:
        """``(version, attempt, name)`` for every name ``account_names`` lists, oldest version first."""
        return [
            (version, attempt, self.account_name(customer_id, attempt, version=version))
            for version in sorted(self._secrets)
            for attempt in range(MAX_NAME_ATTEMPTS)
        ]

    @staticmethod
    def key_label(generation: int) -> str:
        """The label of a customer's key of ``generation`` (0 for the first key)."""
        return f"prov-g{generation:04d}"

    @staticmethod
    def generation_of(label: str) -> int:
        """The key generation a label of ours names; -1 for a label we never give (a key an older system issued)."""
        if len(label) == 10 and label.startswith("prov-g") and label[6:].isdigit():
            return int(label[6:])
        return -1

    def refusal_digest(self, text: str) -> str:
        """A keyed digest of refused input that has no readable event id (the id of its ``event.refused``): the
        same input always gives the same digest, and nothing of the input can be learnt from it."""
        return self._mac("refused", text).hex()[:24]

    def funding_client_oid(self, ref: str, line_key: str, attempt: int) -> str:
        return "f" + self._mac("fund", ref, line_key, str(attempt)).hex()[:40]

    def sweep_client_oid(self, ref: str, sweep_round: int, attempt: int) -> str:
        return "s" + self._mac("sweep", ref, str(sweep_round), str(attempt)).hex()[:40]

    def probe_account_name(self) -> str:
        """The sub-account ``provisioner exchange probe-client-oid`` uses: ``<prefix>probe0<10 base32 chars>``, one
        character shorter than a customer's name, so never taken for one."""
        digest = base64.b32encode(self._mac("probe")).decode("ascii").lower()
        return f"{self._prefix}probe0{digest[:10]}"

    def documents_digest(self, canonical_json: str) -> str:
        """A keyed digest of KYC documents (their canonical JSON): compares two sets of documents without keeping
        them, and reveals nothing of them without the secret."""
        return "d" + self._mac("documents", canonical_json).hex()[:40]

    def is_account_name(self, name: str) -> bool:
        """Whether ``name`` has the shape of a sub-account name this deployment derives (prefix, attempt digit,
        16 base32 characters); the exchange lists only our broker's sub-accounts, so such a name is ours."""
        body = name[len(self._prefix) :]
        return (
            name.startswith(self._prefix)
            and len(body) == 17
            and body[0].isdigit()
            and all(c in "abcdefghijklmnopqrstuvwxyz234567" for c in body[1:])
        )
