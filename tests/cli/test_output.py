"""How the command line prints for a human: ids are never cut (any unique prefix names one), long text wraps."""

from __future__ import annotations

import click
import pytest

from cli.context import table
from cli.ids import resolve_id, resolve_or_keep

UUID = "d11796b6-80e2-4836-9abc-0123456789ab"
REASON = "StepsBlocked: fund:ev-1#0: account.available.amount is too low for USDT 1000 " * 3


def printed(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, width: int) -> str:
    monkeypatch.setenv("COLUMNS", str(width))
    table(
        "1 dead letter(s)",
        ["id", "failed", "actor", "kind", "subject", "reason"],
        [(UUID, "2026-12-02 12:00:00Z", "reconcile_customer", "blocked", "cus-0123456789abcdef", REASON)],
    )
    return capsys.readouterr().out


@pytest.mark.parametrize("width", [60, 80, 120, 200])
def test_a_table_prints_every_id_whole_and_wraps_the_reason(capsys, monkeypatch, width: int) -> None:
    out = printed(capsys, monkeypatch, width)
    assert UUID in out and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= max(width, len(UUID) + 4)
    words = " ".join(out.replace("│", " ").split())
    for word in REASON.split():
        assert word in words, f"{word!r} lost at {width} columns"


def test_a_unique_prefix_names_an_id() -> None:
    ids = [UUID, "d2000000-0000-4000-8000-000000000000", "1733140000000-0", "1733140000000-1"]
    assert resolve_id("d11796b6", ids, what="dead letter") == UUID
    assert resolve_id(UUID, ids, what="dead letter") == UUID
    assert resolve_id("1733140000000-1", ids, what="x") == "1733140000000-1"


def test_an_ambiguous_or_unknown_prefix_is_refused_with_a_reason() -> None:
    ids = [UUID, "d2000000-0000-4000-8000-000000000000"]
    with pytest.raises(click.ClickException, match=r"'d' names 2 dead letters .*give more of it"):
        resolve_id("d", ids, what="dead letter")
    with pytest.raises(click.ClickException, match="no dead letter whose id starts with 'e1'"):
        resolve_id("e1", ids, what="dead letter")
    with pytest.raises(click.ClickException, match="empty"):
        resolve_id("", ids, what="dead letter")


def test_a_command_safe_to_repeat_keeps_an_id_nothing_starts_with_to_report_it_done() -> None:
    ids = [UUID, "d2000000-0000-4000-8000-000000000000"]
    assert resolve_or_keep("d1", ids, what="dead letter") == UUID
    assert resolve_or_keep("e1", ids, what="dead letter") == "e1"
    with pytest.raises(click.ClickException, match="names 2"):
        resolve_or_keep("d", ids, what="dead letter")
