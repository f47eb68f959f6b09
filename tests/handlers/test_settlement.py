"""Judging a lost transfer from the Special Account's ledger: only an entry nothing else can produce is evidence."""

from __future__ import annotations

from decimal import Decimal

from handlers.settlement import LedgerRow, Verdict, count_second_payments, judge_by_ledger

UID = "226383154"
OID = "f-our-client-oid"


def row(entry: str, *, order: str | None = None, oid: str | None = None, to: str | None = UID) -> LedgerRow:
    return LedgerRow(entry, Decimal(600), 1_000, order_id=order, client_oid=oid, counterparty=to if order else None)


def judge(rows: list[LedgerRow], known: set[str] = frozenset(), unexplained: int = 0, siblings: int = 0):  # type: ignore[assignment]
    return judge_by_ledger(
        client_oids={OID, "f-an-earlier-attempt"},
        uid=UID,
        rows=rows,
        known_order_ids=known,
        unexplained_commits=unexplained,
        siblings_in_doubt=siblings,
    )


def test_an_entry_naming_our_client_oid_is_our_transfer() -> None:
    result = judge([row("e1", order="o1", oid="someone-else"), row("e2", order="o2", oid=OID)])
    assert (result.verdict, result.order_id) == (Verdict.COMMITTED, "o2")


def test_entries_of_other_client_oids_prove_ours_did_not_happen() -> None:
    assert judge([row("e1", order="o1", oid="someone-else")]).verdict is Verdict.NOT_COMMITTED


def test_no_entry_at_all_means_nothing_moved() -> None:
    assert judge([]).verdict is Verdict.NOT_COMMITTED


def test_one_unexplained_transfer_to_our_sub_account_is_ours() -> None:
    """Without clientOids: the entry's transfer went to this customer's sub-account, and no other transfer of ours
    explains it."""
    result = judge(
        [row("e1", order="o-known"), row("e2", order="o-new"), row("e3", order="o-other", to="999")], {"o-known"}
    )
    assert (result.verdict, result.order_id) == (Verdict.COMMITTED, "o-new")


def test_an_entry_explained_by_a_line_committed_without_its_order_id_is_not_ours() -> None:
    """A line of the same amount committed on a "clientOid duplicated" answer has an entry we cannot name: it
    explains the one unknown entry, so ours did not happen."""
    assert judge([row("e1", order="o-new")], unexplained=1).verdict is Verdict.NOT_COMMITTED


def test_two_unexplained_transfers_cannot_be_told_apart() -> None:
    result = judge([row("e1", order="o-a"), row("e2", order="o-b")])
    assert result.verdict is Verdict.UNDECIDED
    assert "o-a" in result.reason and "o-b" in result.reason


def test_an_entry_without_any_id_leaves_it_to_an_operator() -> None:
    """A ledger without context cannot tell our 600 from anyone's: the operator sees the entries."""
    result = judge([LedgerRow("e1", Decimal(600), 1_234)])
    assert result.verdict is Verdict.UNDECIDED and "e1" in result.reason


def test_a_transfer_that_could_not_be_read_is_no_evidence_either_way() -> None:
    result = judge([LedgerRow("e1", Decimal(600), 1, order_id="o-unread", counterparty=None)])
    assert result.verdict is Verdict.UNDECIDED


def test_an_entry_naming_an_earlier_attempt_of_the_line_is_ours() -> None:
    result = judge([row("e1", order="o1", oid="f-an-earlier-attempt")])
    assert (result.verdict, result.order_id) == (Verdict.COMMITTED, "o1")


def test_an_unexplained_transfer_is_nobody_s_while_a_sibling_of_the_same_amount_is_in_doubt() -> None:
    """Two lines of 100, one in doubt for an operator: the one unexplained entry could be either line's."""
    result = judge([row("e1", order="o-new")], siblings=1)
    assert result.verdict is Verdict.UNDECIDED and "in doubt" in result.reason


def count(rows: list[LedgerRow], known: set[str], siblings: int = 0) -> int | None:
    return count_second_payments(
        client_oids={OID}, uid=UID, rows=rows, known_order_ids=known, unexplained_commits=0, siblings_in_doubt=siblings
    )


def test_a_second_transfer_under_our_client_oid_is_a_second_payment() -> None:
    """The exchange executed our repeated clientOid: two orders name it, we know one."""
    assert count([row("e1", order="o1", oid=OID), row("e2", order="o2", oid=OID)], {"o2"}) == 1


def test_an_unexplained_transfer_to_the_sub_account_is_a_second_payment() -> None:
    assert count([row("e1", order="o1"), row("e2", order="o2")], {"o2"}) == 1


def test_only_the_transfer_we_know_is_no_second_payment() -> None:
    assert count([row("e2", order="o2")], {"o2"}) == 0


def test_a_ledger_without_ids_cannot_tell_a_second_payment() -> None:
    assert count([LedgerRow("e1", Decimal(600), 1), row("e2", order="o2")], {"o2"}) is None


def test_a_line_committed_without_its_order_counts_its_own_entry_once() -> None:
    """An operator's --committed named no order (or the ledger found the line by its clientOid alone): the one
    entry naming the line's clientOid is its own payment, not a second one; a second entry is one more."""

    def own(rows: list[LedgerRow], siblings: int = 0) -> int | None:
        return count_second_payments(
            client_oids={OID},
            uid=UID,
            rows=rows,
            known_order_ids=set(),
            siblings_in_doubt=siblings,
            own_order_unknown=True,
        )

    assert own([row("e1", oid=OID)]) == 0
    assert own([row("e1", order="o1")]) == 0
    assert own([row("e1", oid=OID), row("e2", oid=OID)]) == 1
    assert own([row("e1", oid=OID), row("e2", order="o2")], siblings=1) is None
