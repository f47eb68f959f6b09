"""``provisioner recover``: after the workers halted on a lost or rolled-back state, rebuild from the exchange."""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from cli.context import JSON_HELP, Context, emit, pass_context
from handlers.naming import Naming

__all__ = ["recover"]


@click.command()
@click.option("--yes", is_flag=True, help="Do it (without: show what is wrong and what recovery would do).")
@click.option(
    "--adopt",
    "adopt_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV of customer_id,uid: sub-accounts an older system created, to be managed from now on.",
)
@click.option(
    "--heard",
    "heard_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The events the upstream received before the loss (JSON Lines or a JSON array, as received): its "
    "funding.completed and funding.refused are recorded. Without it, funding lines asked for before the loss that "
    "the exchange shows unpaid wait for an operator (they may have been refused).",
)
@click.option(
    "--heard-complete",
    is_flag=True,
    help="The --heard file holds every outcome written before the loss: nothing was waiting for delivery (the "
    "metric provisioner_webhook_undelivered was 0 at the loss, no stream reader lagged). A line it does not mention "
    "was then never decided and is sent where the exchange shows it unpaid; without this, such a line waits for an "
    "operator.",
)
@click.option(
    "--republished",
    is_flag=True,
    help="Declare that the upstream has re-published every event from before the last recovery (nothing else is "
    "done): new funding lines are then sent without being looked for first.",
)
@click.option(
    "--stamps-kept",
    is_flag=True,
    help="With --republished: the upstream re-published every event with its original occurred_at (not the time "
    "of re-publication), so a funding line stamped after the loss is new. Without it, such a line may be an old one "
    "and is decided like one: a transfer only elimination could tie to it then waits for an operator.",
)
@click.option("--force", is_flag=True, help="Start a recovered epoch even though the state looks sound.")
@click.option(
    "--replace-naming",
    is_flag=True,
    help="The naming fingerprint the state records was left by a stray recovery (a shell of another "
    "PROVISIONER_NAME_SECRET): replace it with this shell's. Only from a shell with the deployment's secret.",
)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def recover(
    ctx: Context,
    yes: bool,
    adopt_file: Path | None,
    heard_file: Path | None,
    heard_complete: bool,
    republished: bool,
    stamps_kept: bool,
    force: bool,
    replace_naming: bool,
    as_json: bool,
) -> None:
    """Rebuild from the exchange after the state in Redis was lost or rolled back, and lift the workers' halt.

    Lists every sub-account of the broker (so each customer's is found by the names we derive), records adopted
    sub-accounts, and starts a recovered state epoch: every customer is then audited against the exchange before
    anything is done for it, and funding lines are sent only where the exchange shows no earlier transfer.
    Re-publish the upstream's events afterwards (duplicates are harmless). Exit 0 when done or nothing to do."""
    from worker.heard import HeardError
    from worker.recovery import RecoveryError, check_recovery_naming, declare_republished, read_adoptions
    from worker.recovery import recover as run_recovery

    app = ctx.runtime.app
    if stamps_kept and not republished:
        raise click.UsageError("--stamps-kept qualifies the declaration: give --republished too")
    if republished:
        try:
            at = declare_republished(app, stamps_kept=stamps_kept)
        except RecoveryError as exc:
            raise click.ClickException(str(exc)) from None
        due = app.ledger.reseed_due()  # declared before the ledger lists every transfer sent before the loss
        if as_json:
            emit({"republished_at_ms": at, "stamps_kept": stamps_kept, "daily_caps_due_at_ms": due}, as_json=True)
        else:
            wait = _caps_wait(due).rstrip()
            click.echo(
                "re-publication declared complete: funding lines asked for from now on are sent as new"
                + (f"\n{wait}" if wait else "")
            )
        return
    if heard_complete and heard_file is None:
        raise click.UsageError("--heard-complete says the --heard file is complete: give the file")
    try:
        adoptions = read_adoptions(adopt_file) if adopt_file is not None else []
        heard, heard_keys, heard_refusals = _read_heard(heard_file, app.policy.naming) if heard_file else (None,) * 3
    except (RecoveryError, HeardError) as exc:
        raise click.ClickException(str(exc)) from None
    if not yes:  # what a recovery would do (with --yes, ``run_recovery`` checks the same)
        try:
            check_recovery_naming(app, replace_naming=replace_naming)
        except RecoveryError as exc:
            raise click.ClickException(str(exc)) from None
        problem = app.state.diagnose(check_names=False)
        status = "sound" if problem is None else f"{problem.kind}: {problem.reason}"
        click.echo(f"state: {status}")
        if problem is None and not force and not adoptions:
            click.echo("nothing to recover")
            return
        click.echo(
            "recovery would: list every sub-account of the broker on the exchange, "
            + (f"adopt {len(adoptions)} sub-account(s), " if adoptions else "")
            + (
                f"record {len(heard)} funding outcome(s) the upstream heard, "
                if heard is not None
                else "(no --heard: lines the exchange shows unpaid will wait for an operator) "
            )
            + "start a recovered state epoch and lift the halt. Run again with --yes."
        )
        sys.exit(1)
    try:
        report = run_recovery(
            app,
            reason=f"provisioner recover by {getpass.getuser()}",
            adoptions=adoptions,
            force=force,
            heard=heard,
            heard_complete=heard_complete,
            heard_keys=heard_keys,
            heard_refusals=heard_refusals,
            replace_naming=replace_naming,
        )
    except RecoveryError as exc:
        raise click.ClickException(str(exc)) from None
    result = {
        "state": report.detected,
        "sub_accounts_listed": report.sub_accounts,
        "named_like_ours": report.ours,
        "adopted": report.adopted,
        "daily_caps_seeded": report.seeded,
        "heard_outcomes": report.heard,
        "heard_complete": report.heard_complete,
        "epoch": report.epoch.id if report.epoch else None,
        "daily_caps_due_at_ms": report.caps_due_at_ms,
        "naming_replaced": report.naming_replaced,
    }
    if as_json:
        emit(result, as_json=True)
        return
    if report.epoch is None:
        click.echo(f"state: {report.detected}; nothing to recover")
        return
    click.echo(
        f"state was: {report.detected}\n"
        f"listed {report.sub_accounts} sub-account(s), {report.ours} named like ours; adopted {len(report.adopted)}\n"
        f"daily caps rebuilt from the Special Account's ledger: "
        f"{', '.join(f'{k} {v}' for k, v in sorted(report.seeded.items())) or 'nothing moved'}\n"
        + (
            f"funding outcomes the upstream heard: {report.heard} recorded"
            + (
                "; the file is complete: unpaid lines it does not mention will be sent\n"
                if report.heard_complete
                else "; unpaid lines it does not mention wait for an operator (not --heard-complete)\n"
            )
            if report.heard is not None
            else "funding outcomes the upstream heard: not given (lines the exchange shows unpaid wait for an "
            "operator: each is dead-lettered, `provisioner dlq list`)\n"
        )
        + _caps_wait(report.caps_due_at_ms)
        + (
            f"replaced the recorded naming fingerprint {report.naming_replaced} with this shell's: if this shell's "
            "PROVISIONER_NAME_SECRET is not the deployment's, run recover again from one that has it (workers of "
            "another secret are refused)\n"
            if report.naming_replaced
            else ""
        )
        + f"recovered epoch {report.epoch.id}: the halt is lifted. Start the workers, then re-publish the upstream's "
        "events (all of them, or since before the loss)."
    )


def _caps_wait(due_at_ms: int | None) -> str:
    """What the on-call is told of the wait for the ledger (``worker.provisioning.caps_steps``)."""
    if due_at_ms is None:
        return ""
    at = datetime.fromtimestamp(due_at_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"no funding line is sent, for any customer, until {at}: by then the ledger lists every transfer sent "
        "before the loss, and the daily caps are seeded again from it\n"
    )


def _read_heard(path: Path, naming: Naming) -> tuple[Any, Any, Any]:
    """The funding outcomes, live keys and final refusals of a ``--heard`` file. Raises ``HeardError`` for a
    malformed file and ``RecoveryError`` for one whose customers this shell's naming does not name (its refs, or
    its sub-accounts' names: another ``PROVISIONER_NAME_SECRET`` or account prefix)."""
    from worker.heard import (
        live_keys_from_events,
        misnamed_refs,
        outcomes_from_events,
        read_received,
        refusals_from_events,
    )
    from worker.recovery import RecoveryError

    received, where = read_received(path)
    misnamed = misnamed_refs(received, naming)
    if misnamed:
        raise RecoveryError(
            f"the --heard file's customers are not named with this shell's PROVISIONER_NAME_SECRET or account prefix "
            f"({len(misnamed)} of them, e.g. {misnamed[0]}): recover from a shell with the deployment's settings "
            "(this one would name every customer anew)"
        )
    return (
        outcomes_from_events(received, where=where),
        live_keys_from_events(received, where=where),
        refusals_from_events(received),
    )
