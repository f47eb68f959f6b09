"""``provisioner unstored``: events published that no worker has stored yet (see ``worker.runtime.handoff``)."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from cli.context import Context, emit, pass_context, table

__all__ = ["unstored"]


def _when(ms: int | None) -> str:
    return "given up" if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@click.group()
def unstored() -> None:
    """Events published that no worker has stored yet (alert EventsNotStored)."""


@unstored.command("list")
@click.option("--json", "as_json", is_flag=True)
@pass_context
def list_(ctx: Context, as_json: bool) -> None:
    """List them, oldest first. Normal while a backlog drains; the stale scan re-sends lost ones (up to 5 times)."""
    rows = ctx.runtime.handoff.list()
    if as_json:
        emit([u.summary() for u in rows], as_json=True)
        return
    table(
        f"{len(rows)} event(s) not stored yet",
        ["id", "queue", "type", "event id", "last sent", "re-sent"],
        [(u.message_id, u.queue, u.event_type, u.event_id, _when(u.last_sent_ms), u.resends) for u in rows],
    )


@unstored.command()
@click.argument("message_id", required=False)
@click.option("--all", "resend_all", is_flag=True, help="Send every unstored event again (not those given up).")
@click.option("--include-given-up", is_flag=True, help="With --all: those given up after 5 re-sends too.")
@pass_context
def resend(ctx: Context, message_id: str | None, resend_all: bool, include_given_up: bool) -> None:
    """Send MESSAGE_ID (or --all) again now, with a fresh re-send budget. Safe: an event is stored once. Look at
    the worker's logs first for those given up: they may be what crashes the worker."""
    if resend_all == (message_id is not None):
        raise click.UsageError("give a MESSAGE_ID or --all")
    handoff = ctx.runtime.handoff
    ids = (
        [u.message_id for u in handoff.list() if include_given_up or u.last_sent_ms is not None]
        if resend_all
        else [message_id or ""]
    )
    sent = 0
    for mid in ids:
        ok = handoff.resend(mid)
        sent += ok
        click.echo(f"{mid}: {'sent again' if ok else 'not waiting (already stored?)'}")
    click.echo(f"{sent} sent again")
