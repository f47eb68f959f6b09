"""The dramatiq queue names, defined once: the actors declare on them, the runtime declares and consumes them, the
exporter and ``provisioner top`` read their depth.

Why three: ``urgent`` carries offboarding (revocations, money back) so it never waits behind a campaign's backlog of
sign-ups in ``events``; ``reconcile`` carries scheduled follow-ups (grace ends, settle waits, KYC checks, rate-limit
waits, customers found busy).
"""

from __future__ import annotations

__all__ = ["EVENT_QUEUES", "QUEUES", "QUEUE_EVENTS", "QUEUE_RECONCILE", "QUEUE_URGENT"]

QUEUE_EVENTS = "events"
"""Inbound events other than offboarding (``handle_event``)."""
QUEUE_URGENT = "urgent"
"""Offboarding events (``handle_urgent_event``)."""
QUEUE_RECONCILE = "reconcile"
"""Scheduled reconciles of one customer (``reconcile_customer``)."""
QUEUES = (QUEUE_URGENT, QUEUE_EVENTS, QUEUE_RECONCILE)
"""Every queue a worker consumes, in the order it declares them."""
EVENT_QUEUES = (QUEUE_URGENT, QUEUE_EVENTS)
"""The queues whose messages carry an event, sent through the hand-off (``worker.runtime.handoff``)."""
