"""``provisioner customer``: one customer's desired vs recorded state, pending intent and journal."""

from __future__ import annotations

import getpass
import time
from typing import Any

import click

from cli.context import JSON_HELP, Context, emit, pass_context, table
from cli.render import text, when
from handlers.desired import fold
from worker.provisioning.operator import OperatorError, TransferVerdict, settle_transfer

BUSY_POLL_S = 0.5
"""How often ``customer retry`` tries again while a worker's run holds the customer."""

__all__ = ["customer"]


@click.group()
def customer() -> None:
    """Look at one customer; record operator decisions."""


@customer.command()
@click.argument("customer_id")
@click.option("--ref", "is_ref", is_flag=True, help="CUSTOMER_ID is our customer reference, not the upstream id.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.option("--journal-lines", default=50, show_default=True, help="How many journal lines to show.")
@pass_context
def show(ctx: Context, customer_id: str, is_ref: bool, as_json: bool, journal_lines: int) -> None:
    """Desired vs recorded state, the pending intent, blocked steps and the journal (never a secret)."""
    app = ctx.runtime.app
    ref = customer_id if is_ref else app.policy.naming.customer_ref(customer_id)
    snapshot = app.store.snapshot(ref)
    if snapshot.record is None and not snapshot.events:
        raise click.ClickException(f"no customer {customer_id} (ref {ref})")
    desired = fold(snapshot.events, documents_held=snapshot.documents)
    record = snapshot.record
    journal = app.store.journal(ref, count=100_000)[-journal_lines:]
    data: dict[str, Any] = {
        "ref": ref,
        "desired": {
            "created": desired.created,
            "offboarded": desired.offboarded,
            "permissions": desired.access.permissions if desired.access else None,
            "ip_whitelist": desired.access.ip_whitelist if desired.access else None,
            "key_generation": desired.requested_rotations + (record.age_rotations if record else 0),
            "funding": [{"key": f.key, "currency": f.currency, "amount": str(f.amount)} for f in desired.funding],
        },
        "recorded": None
        if record is None
        else {
            "sub_account": record.sub_account.model_dump() if record.sub_account else None,
            "keys": [
                {
                    "generation": k.generation,
                    "api_key": k.api_key,
                    "label": k.label,
                    "permissions": k.permissions,
                    "ip_whitelist": k.ip_whitelist,
                    "live": k.live,
                    "secret_held": k.sealed is not None,
                    "created": when(k.created_at_ms),
                    "revoked": when(k.revoked_at_ms),
                    "revoke_reason": k.revoke_reason,
                }
                for k in record.keys
            ],
            "transfers": [t.model_dump(mode="json") for t in record.transfers.values()],
            "kyc": record.kyc.model_dump(mode="json") if record.kyc else None,
            "closed": when(record.closed_at_ms),
        },
        "pending_intent": record.pending.model_dump(mode="json") if record and record.pending else None,
        "blocked": {k: v.model_dump(mode="json") for k, v in record.blocked.items()} if record else {},
        "next_wake": when(app.due.next_due_ms(ref)),
        "journal": journal,
    }
    if as_json:
        emit(data, as_json=True)
        return
    click.echo(f"customer {customer_id}  (ref {ref})")
    for key, value in data["desired"].items():
        lines = [f"{f['currency']} {f['amount']} ({f['key']})" for f in value] if key == "funding" else value
        click.echo(f"  desired  {key:>15}: {text(lines)}")
    if record is not None:
        sub = record.sub_account
        click.echo(f"  recorded {'sub-account':>15}: {sub.account_name + ' uid ' + sub.uid if sub else None}")
        click.echo(f"  recorded {'closed':>15}: {data['recorded']['closed'] or 'no'}")
        table(
            "keys",
            ["api key", "gen", "permissions", "ip whitelist", "live", "secret held", "created", "revoked"],
            [
                (
                    k["api_key"],
                    k["generation"],
                    text(k["permissions"]),
                    text(k["ip_whitelist"]),
                    text(k["live"]),
                    text(k["secret_held"]),
                    k["created"],
                    k["revoked"],
                )
                for k in data["recorded"]["keys"]
            ],
        )
        table(
            "transfers",
            ["key", "purpose", "currency", "amount", "status", "order id", "note"],
            [
                (t["key"], t["purpose"], t["currency"], t["amount"], t["status"], t["order_id"], t["note"])
                for t in data["recorded"]["transfers"]
            ],
        )
    pending = data["pending_intent"]
    if pending is None:
        click.echo("  pending intent: none")
    else:
        first, latest = pending.get("first_at_ms", pending["started_at_ms"]), pending["started_at_ms"]
        again = f", last sent or found unanswered {when(latest)}" if latest != first else ""
        click.echo(f"  pending intent: {pending['kind']} {pending['token']} since {when(first)}{again}")
        click.echo(f"                  {text(pending['details'])}")
    if not data["blocked"]:
        click.echo("  blocked: nothing")
    for step, block in data["blocked"].items():
        manual = "; needs an operator's verdict (settle-transfer)" if block["manual"] else ""
        click.echo(f"  blocked  {step}  since {when(block['at_ms'])}{manual}")
        click.echo(f"           {block['reason']}")
    click.echo(f"  next wake-up: {data['next_wake'] or 'none'}")
    table(
        f"journal (last {len(journal)})",
        ["at", "actor", "action", "detail"],
        [
            (
                when(e.get("at_ms")),
                e.get("actor"),
                e.get("action"),
                text({k: v for k, v in e.items() if k not in ("at_ms", "actor", "action")}),
            )
            for e in journal
        ],
    )


@customer.command("settle-transfer")
@click.argument("customer_id")
@click.argument("step")
@click.option("--committed", "verdict", flag_value="committed", help="KuCoin shows the transfer: the money moved.")
@click.option(
    "--not-committed",
    "verdict",
    flag_value="not_committed",
    help="KuCoin shows no such transfer: send it again (same clientOid for a funding line).",
)
@click.option(
    "--refused",
    "verdict",
    flag_value="refused",
    help="Nothing moved and the line must not be sent: tell the upstream funding.refused.",
)
@click.option("--order-id", help="KuCoin's orderId, when known.")
@click.option(
    "--client-oid",
    help="With --committed, when the block asks about several clientOids: the one KuCoin shows moved money.",
)
@click.option("--note", default="", help="Why (kept in the journal and, for --refused, told upstream).")
@click.option(
    "--force",
    is_flag=True,
    help="The exchange's history does not show the order: take the verdict on KuCoin's word (journalled).",
)
@click.option("--ref", "is_ref", is_flag=True, help="CUSTOMER_ID is our customer reference.")
@pass_context
def settle_transfer_cmd(
    ctx: Context,
    customer_id: str,
    step: str,
    verdict: str | None,
    order_id: str | None,
    client_oid: str | None,
    note: str,
    force: bool,
    is_ref: bool,
) -> None:
    """Record the verdict on a transfer blocked for a manual decision (STEP as `customer show` lists it, e.g.
    fund:<event id>#0 or sweep). Exactly one of --committed, --not-committed, --refused. A block that lists several
    clientOids (a line after a state loss) is answered for all of them: --not-committed says none moved money.
    An order the block names, or --order-id, is read from the exchange first: the verdict must agree with its
    status and it must be this line's transfer. Once nothing of the customer is blocked, its dead letters the
    verdict made obsolete are dropped."""
    if verdict is None:
        raise click.UsageError("say what KuCoin shows: --committed, --not-committed or --refused")
    app = ctx.runtime.app
    ref = customer_id if is_ref else app.policy.naming.customer_ref(customer_id)
    try:
        action = settle_transfer(
            app,
            ref,
            step,
            verdict=TransferVerdict(verdict),
            order_id=order_id,
            client_oid=client_oid,
            who=getpass.getuser(),
            note=note,
            force=force,
        )
    except OperatorError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"recorded {action} for {step}; the customer will be reconciled")
    _drop_obsolete(ctx, ref, "this decision")


@customer.command()
@click.argument("customer_id")
@click.option("--ref", "is_ref", is_flag=True, help="CUSTOMER_ID is our customer reference.")
@click.option(
    "--wait",
    "wait_s",
    type=click.FloatRange(min=0),
    default=60.0,
    show_default=True,
    help="Seconds to wait for a worker's run on the customer to end before giving up (nothing retried then).",
)
@pass_context
def retry(ctx: Context, customer_id: str, is_ref: bool, wait_s: float) -> None:
    """Retry the customer's blocked steps now (after fixing their cause), with new clientOids where money moves.
    A transfer awaiting a manual decision is left to `settle-transfer`. Funding lines refused by a cap, or for want
    of one, are decided again (sent if the caps now allow it). Once nothing is blocked, the customer's
    dead letters the retry made obsolete are dropped (`dlq` then no longer lists them). Safe to repeat. The retry
    runs here, holding the customer: while a worker holds it, the command waits up to --wait seconds, then fails
    (exit 1) having retried nothing."""
    from worker.exchange import RetryableError
    from worker.provisioning.reconciler import StepsBlocked

    app = ctx.runtime.app
    ref = customer_id if is_ref else app.policy.naming.customer_ref(customer_id)
    if app.store.load(ref) is None:
        raise click.ClickException(f"no customer {customer_id} (ref {ref})")
    # due first: a retry interrupted after it unblocked (killed, or the exchange's answer lost) leaves the workers
    # to go on with the customer; the run's own finish replaces this wake-up
    app.due.schedule(ref, app.reconciler.services.now_ms())
    deadline = time.monotonic() + wait_s
    try:
        report = app.reconciler.run(ref, retry_blocked=True)
        while report.outcome == "busy" and time.monotonic() < deadline:
            time.sleep(BUSY_POLL_S)  # a worker's run holds the customer: the retry is this command's own run
            report = app.reconciler.run(ref, retry_blocked=True)
    except StepsBlocked as exc:
        raise click.ClickException(f"still blocked: {'; '.join(exc.reasons)}") from None
    except RetryableError as exc:
        # no message of ours retries this run: the workers take the customer up now, from what it recorded (a
        # transfer this retry sent is confirmed by them, not in a quarter of an hour by the failure backstop)
        app.due.schedule(ref, app.reconciler.services.now_ms())
        raise click.ClickException(
            f"interrupted by the exchange ({exc}): what the retry did is recorded and the workers go on with the "
            "customer now; `provisioner customer show` says whether anything is still blocked"
        ) from None
    if report.outcome == "busy":
        raise click.ClickException(
            f"a worker was reconciling the customer for all of {wait_s:g} s: nothing was retried; run "
            "`provisioner customer retry` again (a longer --wait), or once `provisioner customer show` shows it idle"
        )
    click.echo(f"{report.outcome}: {report.reason or 'done'} (steps: {', '.join(report.steps) or 'none'})")
    _drop_obsolete(ctx, ref, "this retry")


def _drop_obsolete(ctx: Context, ref: str, what: str) -> None:
    """Once nothing of customer ``ref`` is blocked, drop the dead letters that reported its blocks (and its failed
    reconciles): what the operator just did made them obsolete (``DeadLetters.drop_resolved``)."""
    app = ctx.runtime.app
    record = app.store.load(ref)
    if record is None or record.blocked:
        return
    dropped = ctx.runtime.dead_letters().drop_resolved(ref, customer_ref=app.policy.naming.customer_ref)
    if dropped:
        click.echo(f"cleared {len(dropped)} dead letter(s) {what} made obsolete: {', '.join(dropped)}")


@customer.command()
@click.argument("customer_id")
@click.option("--ref", "is_ref", is_flag=True, help="CUSTOMER_ID is our customer reference.")
@pass_context
def forget(ctx: Context, customer_id: str, is_ref: bool) -> None:
    """Erase a closed customer's personal data on an erasure request: its upstream id (in the record and every
    stored event, replaced by `erased:<ref>`), its KYC documents, and its dead letters' copies of its events. Keeps
    the customer reference and the financial audit trail (journal, transfers, keys, funding lines), and says so.
    Afterwards `customer show --ref REF` (or the upstream id, which still maps to the same ref) shows that trail.
    Refused for a customer not closed (offboard it first). Safe to repeat."""
    from handlers.erasure import ErasureRefused
    from worker.erasure import forget as erase

    app = ctx.runtime.app
    naming = app.policy.naming
    ref = customer_id if is_ref else naming.customer_ref(customer_id)
    try:
        done = erase(app.store, ref, now_ms=int(app.clock() * 1000), lock_ttl_ms=app.settings.lock_ttl_ms)
    except ErasureRefused as exc:
        raise click.ClickException(str(exc)) from None
    letters = [
        d
        for d in ctx.runtime.dead_letters().list()
        if any(isinstance(a, dict) and naming.customer_ref(str(a.get("customer_id", ""))) == ref for a in d.args)
    ]
    purged = ctx.runtime.dead_letters().purge(letters)
    click.echo(f"customer {ref}: " + ("personal data already erased" if done.already else "personal data erased"))
    click.echo(f"  upstream id replaced in the record and {done.events} stored event(s)")
    click.echo(f"  KYC documents: {'deleted' if done.documents_dropped else 'none held'}")
    click.echo(f"  dead letters carrying its events: {purged} purged")
    click.echo("kept, and why:")
    for kept in done.kept:
        click.echo(f"  - {kept}")
    click.echo(f"look it up from now on with `provisioner customer show --ref {ref}`")
