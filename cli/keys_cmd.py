"""``provisioner keys``: the encryption keyring's upkeep (re-sealing what is held under an older key)."""

from __future__ import annotations

import click

from cli.context import Context, emit, pass_context
from worker.reseal import ResealProgress, reseal

__all__ = ["keys"]


@click.group()
def keys() -> None:
    """The encryption keyring (PROVISIONER_ENCRYPTION_KEYS)."""


@keys.command("reseal")
@click.option("--batch", default=100, show_default=True, type=click.IntRange(1, 10_000), help="Customers per step.")
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON.")
@pass_context
def reseal_command(ctx: Context, batch: int, as_json: bool) -> None:
    """Re-seal every held secret and KYC document under the first (active) encryption key.

    Rotate by putting the new key first in PROVISIONER_ENCRYPTION_KEYS on every worker, then run this; remove the
    old key only once it reports nothing left. Safe while workers run (each customer is re-sealed under its lock)
    and resumable: stopped, it continues where it was. Exits 1 while customers were busy or hold values under a
    key the keyring no longer has (listed by customer ref and key id, never a secret)."""
    app = ctx.runtime.app

    def show(progress: ResealProgress) -> None:
        if not as_json:
            click.echo(progress.line(), err=True)

    progress = reseal(app, batch=batch, on_progress=show)
    emit(
        {
            "active": progress.active,
            "customers": progress.scanned,
            "records": progress.records,
            "keys": progress.keys,
            "documents": progress.documents,
            "busy": progress.busy,
            "unopenable": progress.unopenable,
        },
        as_json=as_json,
    )
    for ref, key_ids in sorted(progress.unopenable.items()):
        click.echo(f"customer {ref}: values sealed under {', '.join(key_ids)}, not in the keyring", err=True)
    if progress.busy:
        click.echo(f"{len(progress.busy)} customers stayed busy: run `provisioner keys reseal` again", err=True)
    if progress.busy or progress.unopenable:
        raise SystemExit(1)
    if not as_json:
        click.echo(f"done: nothing held is sealed under another key than {progress.active!r}")
