"""``provisioner webhooks``: what waits to be delivered, the delivery dead letters (list, show, retry), and
switching delivery tracking off and on (disable, enable)."""

from __future__ import annotations

import json
import time

import click

from cli.context import JSON_HELP, Context, emit, pass_context, table
from cli.dlq_cmd import _since
from cli.ids import resolve_id, resolve_or_keep
from cli.render import field, when
from worker.webhooks.store import DeliveryStore

__all__ = ["webhooks"]


def _store(ctx: Context) -> DeliveryStore:
    app = ctx.runtime.app
    return DeliveryStore(app.redis, app.keys)


@click.group()
def webhooks() -> None:
    """Webhook deliveries (PROVISIONER_WEBHOOK_URL): the backlog and the dead letters."""


@webhooks.command("list")
@click.option("--since", help="Only dead letters given up since (ISO time or 30m/2h/1d).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def list_(ctx: Context, since: str | None, as_json: bool) -> None:
    """The backlog, then the dead letters (deliveries given up after the retry horizon), oldest first."""
    store = _store(ctx)
    status = store.status(count_new=True)
    letters = store.dead_letters(since_ms=_since(since))
    age_s = (time.time() * 1000 - status.oldest_ms) / 1000 if status.oldest_ms is not None else None
    if as_json:
        emit(
            {
                "webhook_url": ctx.settings.webhook_url,
                "undelivered": status.undelivered,
                "not_admitted": status.not_admitted,
                "oldest_undelivered_age_s": age_s,
                "gone": status.gone,
                "dead_letters": [d.summary() for d in letters],
            },
            as_json=True,
        )
        return
    if ctx.settings.webhook_url is None:
        click.echo("PROVISIONER_WEBHOOK_URL is not set: no webhooks are sent (the outbound stream only)")
    click.echo(
        f"undelivered: {status.undelivered} admitted, {status.not_admitted} not yet admitted; oldest waits "
        f"{'-' if age_s is None else f'{age_s:.0f} s'}; trimmed before delivery: {status.gone}"
    )
    table(
        f"{len(letters)} delivery dead letter(s)",
        ["id", "given up", "event", "type", "attempts", "last error"],
        [(d.entry_id, when(d.dead_ms), d.event_id, d.event_type, d.attempts, d.last_error) for d in letters],
    )


@webhooks.command()
@click.argument("entry_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def show(ctx: Context, entry_id: str, as_json: bool) -> None:
    """One dead letter (ENTRY_ID: its stream id from `webhooks list`, or a unique prefix): why it was given up,
    and the event."""
    store = _store(ctx)
    entry_id = resolve_id(entry_id, [d.entry_id for d in store.dead_letters()], what="delivery dead letter")
    letter = store.dead_letter(entry_id)
    if letter is None:
        raise click.ClickException(f"no delivery dead letter {entry_id} (retried meanwhile?)")
    body = store.body(entry_id)
    event = json.loads(body) if body else None
    if as_json:
        emit({**letter.summary(), "event": event}, as_json=True)
        return
    for key, value in letter.summary().items():
        shown = field(key, value)
        click.echo(f"{key:>12}: {shown}")
    click.echo("event (as sent; credentials are encrypted):")
    click.echo(json.dumps(event, indent=2) if event is not None else "  (trimmed from the stream)")


@webhooks.command()
@click.argument("entry_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead letter (with --since).")
@click.option("--since", help="With --all: only those given up since (ISO time or 30m/2h/1d).")
@pass_context
def retry(ctx: Context, entry_id: str | None, retry_all: bool, since: str | None) -> None:
    """Deliver ENTRY_ID (its stream id or a unique prefix; or --all) again, with a fresh retry horizon, after
    its customer's waiting events. Safe to run twice. Fix the receiver first (see `webhooks show`)."""
    if retry_all == (entry_id is not None):
        raise click.UsageError("give an ENTRY_ID or --all")
    store = _store(ctx)
    if retry_all:
        ids = [d.entry_id for d in store.dead_letters(since_ms=_since(since))]
    else:
        known = [d.entry_id for d in store.dead_letters()]
        ids = [resolve_or_keep(entry_id or "", known, what="delivery dead letter")]
    now = int(time.time() * 1000)
    done = 0
    for target in ids:
        ok = store.retry_dead(target, now)
        done += ok
        click.echo(f"{target}: {'queued again' if ok else 'not a dead letter (already retried?)'}")
    click.echo(f"{done} queued again")


@webhooks.command()
@click.option("--yes", is_flag=True, help="Go ahead although events are still waiting to be delivered.")
@pass_context
def disable(ctx: Context, yes: bool) -> None:
    """Stop tracking deliveries, after switching webhooks off for good (PROVISIONER_WEBHOOK_URL removed from every
    worker): a rotated-out key is then revoked a grace after its successor's issuance, no longer after its
    delivery. While deliveries are tracked, every process — one without the URL too — waits for them. Events
    still waiting are left in the stream for its other readers. Run once; safe to repeat."""
    store = _store(ctx)
    waiting = store.undelivered()
    if waiting and not yes:
        raise click.ClickException(
            f"{waiting} event(s) still wait to be delivered (an api_key.issued among them keeps its predecessor "
            "live): deliver them first (`webhooks list`), or run again with --yes"
        )
    store.disable()
    click.echo(f"deliveries no longer tracked ({waiting} left undelivered); rotations wait for issuance only")


@webhooks.command()
@pass_context
def enable(ctx: Context) -> None:
    """Undo `webhooks disable`, after switching webhooks on again (PROVISIONER_WEBHOOK_URL on the workers): the next
    dispatcher pass records deliveries again, and rotations wait for them from then on."""
    was = _store(ctx).enable()
    click.echo("deliveries are tracked from the next dispatcher pass" if was else "deliveries were not disabled")
