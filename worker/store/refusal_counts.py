"""All-time counts of refused events, by where they were refused and a bounded class of why, kept in Redis.

Events are refused in three places: ``provisioner publish`` (``stage=publish``) and the HTTP API
(``stage=api``) refuse them before any worker sees them, in processes of their own; a worker's intake
(``stage=worker``) refuses the rest (an id reused with other content, an event for a closed customer). Each
refusal increments one field of the ``{p}:refused:counts`` hash (``stage|reason|field``) in the same Redis call
that appends it to the refused stream, so the worker's exporter (``RedisCollector``) shows every refusal, whichever
process made it. Labels stay bounded whatever the input: the reason is one of ``REASONS``, the field is the
offending field's top-level name (one of ``FIELDS``, else ``other``); the full path and reason are in the refused
stream.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis

__all__ = ["FIELDS", "REASONS", "STAGES", "count_field", "read_counts", "refusal_class"]

STAGES = ("publish", "api", "worker")
"""Where an event was refused: ``provisioner publish``, the HTTP API, a worker's intake."""
REASONS = ("malformed", "invalid", "id_conflict", "customer_closed")
"""Why: not a JSON object; against the contract; its id already used for other content; its customer is closed."""
FIELDS = ("$", "id", "type", "customer_id", "occurred_at", "data")
"""The event's top-level fields (``$``: the event as a whole): the values of the ``field`` label, with ``other``."""


def refusal_class(field: str, *, conflict: bool = False, ignored: bool = False) -> tuple[str, str]:
    """The (reason, field) class of a refusal of ``field`` (a dotted path): ``conflict`` for an id used for other
    content, ``ignored`` for an event that reached a closed customer."""
    top = field.split(".", 1)[0]
    label = top if top in FIELDS else "other"
    if ignored:
        return "customer_closed", label
    if conflict:
        return "id_conflict", label
    return ("malformed" if top == "$" else "invalid"), label


def count_field(stage: str, field: str, *, conflict: bool = False, ignored: bool = False) -> str:
    """The hash field a refusal increments. Raises ``ValueError`` for a stage not in ``STAGES``."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {', '.join(STAGES)}, not {stage!r}")
    reason, label = refusal_class(field, conflict=conflict, ignored=ignored)
    return f"{stage}|{reason}|{label}"


def read_counts(client: redis.Redis, key: str) -> Mapping[tuple[str, str, str], int]:
    """Every count so far: (stage, reason, field) → refusals. Fields not of this module's shape are skipped."""
    counts: dict[tuple[str, str, str], int] = {}
    raw: Mapping[bytes | str, bytes | str] = client.hgetall(key)
    for name, value in raw.items():
        parts = (name.decode() if isinstance(name, bytes) else name).split("|")
        if len(parts) == 3:
            counts[(parts[0], parts[1], parts[2])] = int(value)
    return counts
