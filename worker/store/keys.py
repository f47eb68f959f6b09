"""The Redis key layout, in one place. Every key starts with the configured prefix (default ``prov``).

==================================  ======  ==================================================================
key                                 type    content
==================================  ======  ==================================================================
``{p}:c:{ref}``                     string  the customer's record (JSON), written only by the lock holder
``{p}:c:{ref}:events``              hash    event id → accepted event (JSON, KYC documents removed)
``{p}:c:{ref}:log``                 list    the same events in the order they were stored (read incrementally)
``{p}:c:{ref}:docs``                hash    event id → KYC documents, sealed; dropped at submit, PASS, offboard
``{p}:c:{ref}:docs_received``       set     ids of approvals that came with documents (kept after submission)
``{p}:c:{ref}:docs_digest``         hash    event id → keyed digest of its KYC documents (a re-send must match)
``{p}:c:{ref}:admitted``            hash    event id → fingerprint, message id, queue: API-admitted, not yet stored
``{p}:c:{ref}:refusals``            hash    event id → ``field\nreason`` of a refusal told upstream (final for the id;
                                            kept ``REFUSALS_TTL_S`` from the customer's last refusal)
``{p}:c:{ref}:journal``             stream  audit journal: every state change, no secrets
``{p}:c:{ref}:lock``                string  ``<fence>:<uuid>`` of the reconcile holding the customer
``{p}:c:{ref}:closed``              string  set when the customer is closed; intake refuses later events
``{p}:c:{ref}:dirty``               string  set by a reconcile that found the customer busy: the holder looks again
``{p}:c:{ref}:seq``                 string  how many events intake has stored for the customer (what a run saw)
``{p}:c:{ref}:outseq``              string  the customer's last outbound sequence number (``worker.store.outbound``)
``{p}:fence``                       string  fencing counter
``{p}:reseal``                      hash    a re-seal pass in progress: active key id, scan cursor, counts
``{p}:reseal:busy``                 set     refs a re-seal pass found busy, tried again at its end
``{p}:customers``                   zset    ref → first event time (ms)
``{p}:due``                         zset    ref → when the customer must be reconciled next (ms)
``{p}:inbox``                       zset    ref → when its newest event not yet seen by a finished reconcile arrived
``{p}:outbound``                    stream  outcome events, numbered per customer (``worker.store.outbound``)
``{p}:refused``                     stream  refused events with their reason (no payload)
``{p}:refused:counts``              hash    stage|reason|field → refusals so far (``worker.store.refusal_counts``)
``{p}:handoff:{queue}``             zset    event message id → when last sent (Redis' clock), until its event is stored
``{p}:handoff:msgs``                hash    event message id → the encoded message (KYC documents sealed)
``{p}:handoff:resent``              hash    event message id → how many times the stale scan re-sent it
``{p}:pending``                     zset    ref → start (ms) of its exchange write whose outcome is not yet known
``{p}:stats``                       hash    exact shared counters kept by commits (e.g. ``keys_active``)
``{p}:blocked``                     zset    ref → since when it has a step blocked for an operator (ms)
``{p}:backstops``                   hash    ref → the wake-up a failed run left (``DueSchedule.backstop``)
``{p}:workers``                     zset    worker process (host:pid) → last heartbeat of its scheduler (ms)
``{p}:funding:{YYYYMMDD}``          hash    daily funding ledger: used units per currency, reservations
``{p}:dlq:{message id}``            hash    dead-letter metadata: final error, reason, time
``{p}:c:{ref}:keys:delivered``      hash    api key → when its ``api_key.issued`` reached the upstream's webhook (ms)
``{p}:wh:cursor``                   string  the last outbound stream entry the webhook dispatcher admitted
``{p}:wh:recording_since``          string  when the dispatcher first ran (ms; 0: set by ``recover`` after a loss);
                                            absent: deliveries not tracked (none yet, ``webhooks disable``)
``{p}:wh:seen``                     string  a dispatcher has passed since the last loss (deliveries are recorded)
``{p}:wh:disabled``                 string  ``webhooks disable``'s tombstone: dispatchers record nothing
``{p}:wh:lane:{lane}``              list    stream ids of a customer's undelivered events, oldest first
``{p}:wh:due``                      zset    lane → when its head may be tried next (ms), or its lease's end
``{p}:wh:lease``                    hash    lane → token of the attempt in flight
``{p}:wh:heads``                    zset    lane → stream time (ms) of its head, the oldest undelivered event
``{p}:wh:tries``                    hash    stream id → attempts so far of a head (JSON)
``{p}:wh:dead``                     zset    stream id → when its delivery was given up (ms)
``{p}:wh:dead:info``                hash    stream id → the dead letter: lane, event, attempts, last error (JSON)
``{p}:wh:stats``                    hash    ``undelivered`` (admitted, not yet delivered or given up), ``gone``
``{p}:state``                       hash    state epoch: id, mode, write counter, halt, naming fingerprint
                                            (``worker.store.epoch``)
``{p}:state:evictions``             string  ``<Redis run_id>:<evicted_keys>`` last seen by any worker's state check
``{p}:order:{orderId}``             string  a final transfer's status and uids (``worker.store.transfer_facts``)
``{p}:recovery:accounts``           hash    sub-account name → uid and creation time, listed by ``recover``
``{p}:recovery:caps_due_at``        string  after a loss: from when the ledger lists every transfer sent before it (ms)
``{p}:recovery:caps_seeded_at``     string  when the day's caps were last seeded from a ledger read made since (ms)
==================================  ======  ==================================================================
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Keys"]


@dataclass(frozen=True)
class Keys:
    prefix: str = "prov"

    def record(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}"

    def events(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:events"

    def events_log(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:log"

    def docs(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:docs"

    def docs_digests(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:docs_digest"

    def keys_delivered(self, ref: str) -> str:
        """Api key → when its ``api_key.issued`` reached the upstream's webhook (``worker.webhooks.store``)."""
        return f"{self.prefix}:c:{ref}:keys:delivered"

    def admitted(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:admitted"

    REFUSALS_TTL_S = 30 * 86_400
    """How long a customer's final refusals are kept after its last one: well past dramatiq's dead-letter retention
    (7 days) and a recovery's re-publication; bounded so that a flood of refused events for invented customers
    leaves no key behind for good."""

    def refusals(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:refusals"

    def docs_received(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:docs_received"

    def journal(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:journal"

    def lock(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:lock"

    def seq(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:seq"

    def outbound_seq(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:outseq"

    def dirty(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:dirty"

    def closed(self, ref: str) -> str:
        return f"{self.prefix}:c:{ref}:closed"

    @property
    def fence(self) -> str:
        return f"{self.prefix}:fence"

    @property
    def reseal(self) -> str:
        return f"{self.prefix}:reseal"

    @property
    def reseal_busy(self) -> str:
        return f"{self.prefix}:reseal:busy"

    @property
    def customers(self) -> str:
        return f"{self.prefix}:customers"

    @property
    def due(self) -> str:
        return f"{self.prefix}:due"

    @property
    def outbound(self) -> str:
        return f"{self.prefix}:outbound"

    @property
    def pending(self) -> str:
        return f"{self.prefix}:pending"

    @property
    def blocked(self) -> str:
        return f"{self.prefix}:blocked"

    @property
    def stats(self) -> str:
        return f"{self.prefix}:stats"

    @property
    def inbox(self) -> str:
        return f"{self.prefix}:inbox"

    def api_request(self, request_id: str) -> str:
        """The request a signed API request id was used for (``api.request_ids``)."""
        return f"{self.prefix}:api:request:{request_id}"

    def handoff(self, queue: str) -> str:
        return f"{self.prefix}:handoff:{queue}"

    @property
    def handoff_resends(self) -> str:
        return f"{self.prefix}:handoff:resent"

    @property
    def handoff_bodies(self) -> str:
        return f"{self.prefix}:handoff:msgs"

    @property
    def backstops(self) -> str:
        return f"{self.prefix}:backstops"

    @property
    def workers(self) -> str:
        return f"{self.prefix}:workers"

    @property
    def refused(self) -> str:
        return f"{self.prefix}:refused"

    @property
    def refused_counts(self) -> str:
        return f"{self.prefix}:refused:counts"

    def funding_day(self, day: str) -> str:
        return f"{self.prefix}:funding:{day}"

    def dead_letter(self, message_id: str) -> str:
        return f"{self.prefix}:dlq:{message_id}"

    @property
    def webhook_cursor(self) -> str:
        return f"{self.prefix}:wh:cursor"

    @property
    def webhook_recording_since(self) -> str:
        """When this release's dispatcher first ran (ms; ``0`` after a loss: ``recover``): every delivery since is
        recorded in ``keys_delivered``."""
        return f"{self.prefix}:wh:recording_since"

    @property
    def webhook_seen(self) -> str:
        """Set by every dispatcher pass: this deployment delivers webhooks (lost with a loss of our state)."""
        return f"{self.prefix}:wh:seen"

    @property
    def webhook_disabled(self) -> str:
        """``provisioner webhooks disable``'s tombstone: no dispatcher pass records anything while it exists."""
        return f"{self.prefix}:wh:disabled"

    @property
    def webhook_lane_prefix(self) -> str:
        """A lane's list is this prefix and the lane's name (our customer ref, or ``~<event id>``)."""
        return f"{self.prefix}:wh:lane:"

    @property
    def webhook_due(self) -> str:
        return f"{self.prefix}:wh:due"

    @property
    def webhook_leases(self) -> str:
        return f"{self.prefix}:wh:lease"

    @property
    def webhook_heads(self) -> str:
        return f"{self.prefix}:wh:heads"

    @property
    def webhook_tries(self) -> str:
        return f"{self.prefix}:wh:tries"

    @property
    def webhook_dead(self) -> str:
        return f"{self.prefix}:wh:dead"

    @property
    def webhook_dead_info(self) -> str:
        return f"{self.prefix}:wh:dead:info"

    @property
    def webhook_stats(self) -> str:
        return f"{self.prefix}:wh:stats"

    @property
    def state(self) -> str:
        return f"{self.prefix}:state"

    @property
    def state_evictions(self) -> str:
        """Redis' ``run_id`` and ``evicted_keys`` as the workers' state checks last saw them: an eviction while no
        worker ran is caught by the next one."""
        return f"{self.prefix}:state:evictions"

    @property
    def recovery_accounts(self) -> str:
        return f"{self.prefix}:recovery:accounts"

    @property
    def recovery_accounts_at(self) -> str:
        """When the listing behind ``recovery_accounts`` was read (ms)."""
        return f"{self.prefix}:recovery:accounts_at"

    @property
    def recovery_heard(self) -> str:
        """Customer reference → the funding outcomes the upstream heard before the loss (``worker.heard``)."""
        return f"{self.prefix}:recovery:heard"

    @property
    def recovery_heard_keys(self) -> str:
        """Customer reference → the API keys the upstream was told issued and not revoked before the loss
        (``worker.heard``): one the exchange no longer lists is told revoked by the customer's audit."""
        return f"{self.prefix}:recovery:heard_keys"

    @property
    def recovery_lost_at(self) -> str:
        """When the last recovery after a loss of our state ran (ms): what was sent before may be unrecorded."""
        return f"{self.prefix}:recovery:lost_at"

    @property
    def recovery_republished_at(self) -> str:
        """When the on-call declared the upstream's re-publication after the last recovery complete (ms)."""
        return f"{self.prefix}:recovery:republished_at"

    @property
    def recovery_stamps_kept(self) -> str:
        """``1`` when the on-call declared too that the re-publication kept every event's ``occurred_at``."""
        return f"{self.prefix}:recovery:stamps_kept"

    @property
    def recovery_heard_given(self) -> str:
        """``1`` when every funding outcome the upstream heard is known to the last recovery (a complete file, or
        nothing was lost), ``0`` when a recovery after a loss was given none or an incomplete file; absent before
        any recovery."""
        return f"{self.prefix}:recovery:heard_given"

    @property
    def recovery_caps_due_at(self) -> str:
        """After a recovery after a loss: from when (ms) the Special Account's ledger lists every transfer sent
        before the loss (the recovery's time plus the transfer settle delay, the ledger's lag included). No funding
        line is decided against the daily cap until the day's caps were seeded from a ledger read made since."""
        return f"{self.prefix}:recovery:caps_due_at"

    @property
    def recovery_caps_seeded_at(self) -> str:
        """When (ms) the day's caps were last seeded from a ledger read made at or after ``recovery_caps_due_at``;
        absent until then."""
        return f"{self.prefix}:recovery:caps_seeded_at"
