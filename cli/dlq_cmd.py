"""``provisioner dlq``: inspect, replay and purge dead letters."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import click

from cli.context import JSON_HELP, Context, emit, pass_context, table
from cli.ids import resolve_id, resolve_or_keep
from cli.render import field, when
from worker.runtime.deadletters import shown_args

__all__ = ["dlq"]


def _since(value: str | None) -> int | None:
    """``--since``: an ISO time (UTC) or a duration like 30m, 2h, 1d."""
    if not value:
        return None
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if value[-1] in units and value[:-1].isdigit():
        return int((time.time() - int(value[:-1]) * units[value[-1]]) * 1000)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter("use an ISO time or a duration such as 30m, 2h, 1d", param_hint="--since") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


@click.group()
def dlq() -> None:
    """Dead letters: messages that failed for good, with their final error."""


@dlq.command("list")
@click.option("--actor", help="Only this actor's dead letters.")
@click.option("--since", help="Only those failed since (ISO time or 30m/2h/1d).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def list_(ctx: Context, actor: str | None, since: str | None, as_json: bool) -> None:
    """List dead letters, oldest first (ids whole: `dlq show` takes any unique prefix of one)."""
    letters = ctx.runtime.dead_letters().list(actor=actor, since_ms=_since(since))
    if as_json:
        emit([d.summary() for d in letters], as_json=True)
        return
    table(
        f"{len(letters)} dead letter(s)",
        ["id", "failed", "actor", "kind", "subject", "reason"],
        [(d.message_id, when(d.failed_at_ms), d.actor, d.kind, d.subject, d.reason) for d in letters],
    )


@dlq.command()
@click.argument("message_id")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def show(ctx: Context, message_id: str, as_json: bool) -> None:
    """Show one dead letter (MESSAGE_ID: its id or a unique prefix): reason, final traceback, arguments."""
    letters = ctx.runtime.dead_letters().list()
    found = resolve_id(message_id, [d.message_id for d in letters], what="dead letter")
    letter = next(d for d in letters if d.message_id == found)
    args = shown_args(letter.args, ctx.runtime.app.policy.naming.customer_ref)
    if as_json:
        emit({**letter.summary(), "traceback": letter.traceback, "args": args}, as_json=True)
        return
    for key, value in letter.summary().items():
        label = key.removesuffix("_at_ms") if key.endswith("_at_ms") else key
        click.echo(f"{label:>8}: {field(key, value)}")
    click.echo("\nfinal traceback:\n" + (letter.traceback or "(none recorded)"))
    click.echo("arguments:\n" + json.dumps(args, indent=2, default=str))


@dlq.command()
@click.argument("message_id", required=False)
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter (with the filters).")
@click.option("--actor", help="With --all: only this actor's.")
@click.option("--since", help="With --all: only those failed since (ISO time or 30m/2h/1d).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def replay(
    ctx: Context, message_id: str | None, replay_all: bool, actor: str | None, since: str | None, as_json: bool
) -> None:
    """Replay MESSAGE_ID (its id or a unique prefix; or --all) with a fresh retry budget. Safe to run twice:
    handlers are idempotent and a replayed dead letter is gone. Fix the cause first (see `dlq show`)."""
    letters = ctx.runtime.dead_letters()
    if replay_all == (message_id is not None):
        raise click.UsageError("give a MESSAGE_ID or --all")
    if replay_all:
        ids = [d.message_id for d in letters.list(actor=actor, since_ms=_since(since))]
    else:
        ids = [resolve_or_keep(message_id or "", [d.message_id for d in letters.list()], what="dead letter")]
    results = {}
    for mid in ids:
        results[mid] = "replayed" if letters.replay(mid) else "not found (already replayed?)"
    if as_json:
        emit(results, as_json=True)
    else:
        for mid, result in results.items():
            click.echo(f"{mid}: {result}")
        click.echo(f"{sum(r == 'replayed' for r in results.values())} replayed")


@dlq.command()
@click.option("--actor", help="Only this actor's.")
@click.option("--since", help="Only those failed since (ISO time or 30m/2h/1d).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def purge(ctx: Context, actor: str | None, since: str | None, yes: bool) -> None:
    """Delete dead letters for good (after confirmation)."""
    letters = ctx.runtime.dead_letters()
    selected = letters.list(actor=actor, since_ms=_since(since))
    if not selected:
        click.echo("no dead letters match")
        return
    if not yes:
        click.confirm(f"Delete {len(selected)} dead letter(s) for good?", abort=True)
    click.echo(f"purged {letters.purge(selected)}")
