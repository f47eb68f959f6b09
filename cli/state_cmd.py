"""``provisioner state``: the state epoch and the flags that stop or restrain the workers, for on-call."""

from __future__ import annotations

import getpass

import click

from cli.context import JSON_HELP, Context, emit, pass_context

__all__ = ["state"]


@click.group()
def state() -> None:
    """Look at the state epoch; trust the exchange again after a contradiction was dealt with."""


@state.command()
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@pass_context
def show(ctx: Context, as_json: bool) -> None:
    """The state epoch in Redis, this host's mirror, and whether the workers are halted or distrust the exchange."""
    app = ctx.runtime.app
    status = app.state.status()
    problem = app.state.diagnose()
    data = {
        "state": "sound" if problem is None else f"{problem.kind}: {problem.reason}",
        "redis": {k: v for k, v in status["redis"].items()},
        "mirror": status["mirror"],
        "mirror_path": status["mirror_path"],
        "distrust": app.state.distrust_reason(),
    }
    if as_json:
        emit(data, as_json=True)
        return
    click.echo(f"state: {data['state']}")
    redis_view = data["redis"]
    click.echo(
        f"epoch {redis_view.get('epoch', '-')} ({redis_view.get('mode', '-')}), writes {redis_view.get('writes', '-')}"
    )
    click.echo(f"this host's mirror ({data['mirror_path']}): {data['mirror']}")
    if data["distrust"]:
        click.echo(f"the exchange is distrusted: {data['distrust']}")


@state.command()
@click.option("--yes", is_flag=True, help="The contradiction was dealt with (money back, setting fixed).")
@pass_context
def trust(ctx: Context, yes: bool) -> None:
    """Trust the exchange's behaviour as the settings describe it again: re-sends settle lost transfers and the
    ledger's silence counts, once more. Only after the double payment that raised the distrust was dealt with."""
    app = ctx.runtime.app
    reason = app.state.distrust_reason()
    if reason is None:
        click.echo("the exchange is not distrusted")
        return
    if not yes:
        raise click.ClickException(f"distrusted because: {reason}\nrun again with --yes once it is dealt with")
    app.state.trust()
    click.echo(f"trusted again (by {getpass.getuser()}); settled transfers as the settings say from now on")
