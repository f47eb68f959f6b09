"""``provisioner``: the command line of the KuCoin ND-broker provisioning worker."""

from __future__ import annotations

import json

import click

from cli.api_cmd import api_command, keygen_command
from cli.context import Context
from cli.customer_cmd import customer
from cli.demo_cmd import demo
from cli.dlq_cmd import dlq
from cli.exchange_cmd import exchange
from cli.keys_cmd import keys
from cli.publish_cmd import publish
from cli.recover_cmd import recover
from cli.sandbox_cmd import sandbox_command
from cli.state_cmd import state
from cli.unstored_cmd import unstored
from cli.verify_cmd import verify
from cli.webhooks_cmd import webhooks
from cli.worker_cmd import worker

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Provision KuCoin ND-broker sub-accounts, keys and funding from onboarding events, exactly once.

    Settings come from the environment (see the README's table); with none set, everything runs on development
    defaults against a local Redis and the simulator.
    """
    ctx.obj = Context()
    ctx.call_on_close(ctx.obj.close)


@main.command()
@click.option("--write", is_flag=True, help="Write schema/events.schema.json and schema/openapi.json.")
def schema(write: bool) -> None:
    """The JSON Schema of inbound events, generated from the models (with --write, also the API's OpenAPI)."""
    from pathlib import Path

    from api.openapi import published_document
    from handlers.events import schema as event_schema

    text = json.dumps(event_schema(), indent=2, sort_keys=True) + "\n"
    if write:
        Path("schema/events.schema.json").write_text(text)
        Path("schema/openapi.json").write_text(json.dumps(published_document(), indent=2, sort_keys=True) + "\n")
        click.echo("wrote schema/events.schema.json and schema/openapi.json")
    else:
        click.echo(text, nl=False)


for command in (
    api_command,
    keygen_command,
    publish,
    worker,
    dlq,
    unstored,
    webhooks,
    customer,
    exchange,
    keys,
    demo,
    sandbox_command,
    verify,
    recover,
    state,
):
    main.add_command(command)
