"""Journal actions: one type, written as the strings journals always held, and one set that settles an intent."""

from __future__ import annotations

import json
import re

import pytest

from handlers.journal import SETTLES_INTENT, JournalAction
from worker.store.customers import JournalEntry


def test_an_entry_is_written_as_before_the_type() -> None:
    entry = JournalEntry(5, JournalAction.BLOCKED, {"step": "fund:e#0", "reason": "no", "manual": False})
    assert entry.to_json() == (
        '{"at_ms":5,"actor":"worker","action":"blocked","step":"fund:e#0","reason":"no","manual":false}'
    )


def test_a_stored_journal_line_reads_back_as_its_action() -> None:
    line = json.loads('{"at_ms":7,"actor":"operator","action":"transfer.not_committed","step":"sweep"}')
    assert JournalAction(line["action"]) is JournalAction.TRANSFER_NOT_COMMITTED
    assert line["action"] in {JournalAction.TRANSFER_NOT_COMMITTED}


def test_an_unknown_action_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=re.escape("'transfer.lost' is not a valid JournalAction")):
        JournalAction("transfer.lost")


def test_a_refusal_does_not_settle_an_intent_its_resolution_does() -> None:
    assert JournalAction.REFUSED not in SETTLES_INTENT
    assert {JournalAction.OUTCOME_UNKNOWN, JournalAction.ORPHAN_KEYS_PENDING, JournalAction.DUPLICATE}.isdisjoint(
        SETTLES_INTENT
    )
    assert {JournalAction.NAME_UNAVAILABLE, JournalAction.NOT_COMMITTED, JournalAction.BLOCKED} <= SETTLES_INTENT
    assert JournalAction.INTENT not in SETTLES_INTENT
