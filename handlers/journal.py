"""The actions of a customer's audit journal: what each line says happened, and which of them settle an intent.

A journal line is ``{"at_ms", "actor", "action", ...detail}`` (``worker.store.customers.JournalEntry``); its
``action`` is one of ``JournalAction``, written as the member's string value, so journals written before this
type existed read the same.

Every exchange write is journalled as ``intent`` before it is sent. ``SETTLES_INTENT`` are the actions journalled
by the commit that clears that intent (``StepContext.settle`` and the two commits that drop a pending transfer
intent: a committed transfer, and an audit seeding an outcome the upstream heard). Not among them:

- ``refused``: the exchange refused the write, but the intent *stays*, marked refused (a refusal is not trusted
  to mean "not done"); the resolution that follows settles it (``name_unavailable``, ``not_committed``,
  ``blocked``, ``sub_account.created``, ...). Counting it would count such an intent twice.
- ``outcome_unknown``, ``orphan_keys_pending`` and ``duplicate``: the intent stays, restarted, until it is
  resolved.

Some settling actions are also journalled with no intent pending (``blocked`` of a held sweep, ``funding.refused``
of a line the caps refuse, ``transfer.committed`` found by a confirmation): a check that counts settlements can
tell that every intent was settled *at least* once, not pair each settlement with its intent.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["SETTLES_INTENT", "JournalAction"]


class JournalAction(StrEnum):
    INTENT = "intent"
    """An exchange write about to be sent (its kind, token and details, never a secret)."""
    RESENT = "resent"
    """A pending intent superseded by sending its whole-replacement write again."""
    REFUSED = "refused"
    OUTCOME_UNKNOWN = "outcome_unknown"
    NOT_SENT = "not_sent"
    NOT_COMMITTED = "not_committed"
    DUPLICATE = "duplicate"
    BLOCKED = "blocked"
    BLOCKS_REPORTED = "blocks.reported"
    REPLAYED = "replayed"
    AUDITED = "audited"
    ADOPTED = "adopted"
    CUSTOMER_OPENED = "customer.opened"
    CUSTOMER_CLOSED = "customer.closed"
    CUSTOMER_FORGOTTEN = "customer.forgotten"
    EVENTS_IGNORED = "events.ignored"
    SUB_ACCOUNT_CREATED = "sub_account.created"
    NAME_UNAVAILABLE = "name_unavailable"
    API_KEY_ISSUED = "api_key.issued"
    API_KEY_UPDATED = "api_key.updated"
    API_KEY_REVOKED = "api_key.revoked"
    ORPHAN_KEYS_DELETED = "orphan_keys_deleted"
    ORPHAN_KEYS_PENDING = "orphan_keys_pending"
    KEYS_LISTED = "keys_listed"
    KEYS_RESEALED = "keys.resealed"
    ROTATION_DUE_TO_AGE = "rotation_due_to_age"
    KYC_SUBMITTED = "kyc.submitted"
    KYC_CHECKED = "kyc.checked"
    KYC_PASSED = "kyc.passed"
    KYC_REJECTED = "kyc.rejected"
    KYC_DOCUMENTS_DELETED = "kyc.documents_deleted"
    """The customer was offboarded: the KYC documents still held (never submitted, and now never to be) deleted,
    before the close (``events``: the approvals they came with)."""
    BALANCES_READ = "balances_read"
    TRANSFER_ACCEPTED = "transfer.accepted"
    TRANSFER_PENDING = "transfer.pending"
    TRANSFER_COMMITTED = "transfer.committed"
    TRANSFER_NOT_COMMITTED = "transfer.not_committed"
    """An operator's verdict: the blocked transfer moved nothing."""
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_UNCONFIRMED = "transfer.unconfirmed"
    TRANSFER_NOT_FOUND = "transfer.not_found"
    TRANSFER_AWAITS_REPUBLICATION = "transfer.awaits_republication"
    TRANSFER_RECHECKED = "transfer.rechecked"
    CLIENTOID_SPENT = "clientoid.spent"
    FUNDING_REFUSED = "funding.refused"
    FUNDING_REDECIDED = "funding.redecided"
    DAILY_CAPS_SEEDED = "daily_caps.seeded"
    """After a loss of our state, once the Special Account's ledger lists every transfer sent before it: the day's
    caps seeded again from it (for every customer), before this customer's line was the first decided against
    them."""


SETTLES_INTENT: frozenset[JournalAction] = frozenset(
    {
        JournalAction.RESENT,
        JournalAction.NOT_SENT,
        JournalAction.NOT_COMMITTED,
        JournalAction.BLOCKED,
        JournalAction.SUB_ACCOUNT_CREATED,
        JournalAction.NAME_UNAVAILABLE,
        JournalAction.API_KEY_ISSUED,
        JournalAction.API_KEY_UPDATED,
        JournalAction.API_KEY_REVOKED,
        JournalAction.ORPHAN_KEYS_DELETED,
        JournalAction.KYC_SUBMITTED,
        JournalAction.TRANSFER_ACCEPTED,
        JournalAction.TRANSFER_COMMITTED,
        JournalAction.TRANSFER_UNCONFIRMED,
        JournalAction.CLIENTOID_SPENT,
        JournalAction.FUNDING_REFUSED,
    }
)
"""The actions that settle a pending intent (see the module docstring for those that do not)."""
