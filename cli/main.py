"""``provisioner``: the command line of the KuCoin ND-broker provisioning worker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from cli.api_cmd import api_command, keygen_command
from cli.context import Context
from cli.customer_cmd import customer
from cli.demo_cmd import demo
from cli.dlq_cmd import dlq
from cli.exchange_cmd import exchange
from cli.publish_cmd import publish
from cli.recover_cmd import recover
from cli.sandbox_cmd import sandbox_command
from cli.state_cmd import state
from cli.unstored_cmd import unstored
from cli.verify_cmd import verify
from cli.webhooks_cmd import webhooks
from cli.worker_cmd import worker

__all__ = ["UNAVAILABLE_EXIT", "main"]

UNAVAILABLE_EXIT = 69
"""Exit status when a service the command needs (Redis) does not answer (sysexits' ``EX_UNAVAILABLE``)."""


class Unavailable(click.ClickException):
    """A service the command needs does not answer: one line, the cause and what to do, exit 69."""

    exit_code = UNAVAILABLE_EXIT


class _Main(click.Group):
    """The command group; turns a Redis outage anywhere below it into one sentence instead of a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            problem = _unavailable(exc)
            if problem is None:
                raise
            raise problem from None


def _unavailable(exc: BaseException) -> Unavailable | None:
    """The sentence for a Redis connection failure or time-out (``None`` for anything else). redis-py's message
    names the host and port only, never the URL's password."""
    redis = sys.modules.get("redis")  # not imported yet: the failure cannot be Redis'
    if redis is None or not isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return None
    cause = str(exc).rstrip(".") or type(exc).__name__
    return Unavailable(
        f"Redis is not answering ({cause}): check that it runs and that REDIS_URL points at it, then run the "
        "command again"
    )


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"]})
@click.pass_context
def main(ctx: click.Context) -> None:
    """Provision KuCoin ND-broker sub-accounts, keys and funding from onboarding events, exactly once.

    Settings come from the environment (see the README's table); with none set, everything runs on development
    defaults against a local Redis and the simulator.
    """
    ctx.obj = Context()
    ctx.call_on_close(ctx.obj.close)


@main.command()
@click.option("--write", is_flag=True, help="Write events.schema.json and openapi.json into --dir.")
@click.option(
    "--dir",
    "directory",
    default="schema",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where --write writes (the repository's schema/ directory when run from its root).",
)
def schema(write: bool, directory: Path) -> None:
    """The JSON Schema of inbound events, generated from the models (with --write, also the API's OpenAPI).

    Raises ``click.BadParameter`` (exit 2) when --dir is not an existing directory."""
    from api.openapi import published_document
    from handlers.events import schema as event_schema

    text = json.dumps(event_schema(), indent=2, sort_keys=True) + "\n"
    if not write:
        click.echo(text, nl=False)
        return
    if not directory.is_dir():
        raise click.BadParameter(
            f"{str(directory)!r} does not exist in {Path.cwd()}: run this from the repository root, or pass "
            "--dir DIRECTORY",
            param_hint="--dir",
        )
    events, openapi = directory / "events.schema.json", directory / "openapi.json"
    events.write_text(text)
    openapi.write_text(json.dumps(published_document(), indent=2, sort_keys=True) + "\n")
    click.echo(f"wrote {events} and {openapi}")


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
    demo,
    sandbox_command,
    verify,
    recover,
    state,
):
    main.add_command(command)
