"""``provisioner``: the command line of the KuCoin ND-broker provisioning worker."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click

__all__ = ["UNAVAILABLE_EXIT", "main"]

UNAVAILABLE_EXIT = 69
"""Exit status when a service the command needs (Redis) does not answer (sysexits' ``EX_UNAVAILABLE``)."""


class Unavailable(click.ClickException):
    """A service the command needs does not answer: one line, the cause and what to do, exit 69."""

    exit_code = UNAVAILABLE_EXIT


LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "api": (
        "cli.api_cmd",
        "api_command",
        "Serve the HTTP API: signed events in (POST /v1/events), the customer view out, /healthz and /readyz.",
    ),
    "customer": ("cli.customer_cmd", "customer", "Look at one customer; record operator decisions."),
    "demo": (
        "cli.demo_cmd",
        "demo",
        "Run the worker's main job end to end on an embedded default and show the end state.",
    ),
    "dlq": ("cli.dlq_cmd", "dlq", "Dead letters: messages that failed for good, with their final error."),
    "exchange": (
        "cli.exchange_cmd",
        "exchange",
        "Read the exchange (broker info, sub-accounts, keys, transfers, KYC, rebates).",
    ),
    "keys": ("cli.keys_cmd", "keys", "The encryption keyring (PROVISIONER_ENCRYPTION_KEYS)."),
    "keygen": (
        "cli.api_cmd",
        "keygen_command",
        "Print a new intake key pair, a new request-signing secret and a new event-signing key, as environment lines.",
    ),
    "publish": ("cli.publish_cmd", "publish", "Publish events from SOURCE (JSON Lines; - for stdin)."),
    "recover": (
        "cli.recover_cmd",
        "recover",
        "Rebuild from the exchange after the state in Redis was lost or rolled back, and lift the workers' halt.",
    ),
    "sandbox": (
        "cli.sandbox_cmd",
        "sandbox_command",
        "Serve a simulated KuCoin ND-broker API (broker + spot paths + /sandbox admin) until SIGINT/SIGTERM.",
    ),
    "state": (
        "cli.state_cmd",
        "state",
        "Look at the state epoch; trust the exchange again after a contradiction was dealt with.",
    ),
    "top": (
        "cli.top_cmd",
        "top",
        "A live view of queues, in-flight customers, blocked steps, dead letters, rate-limit pools and webhooks.",
    ),
    "unstored": (
        "cli.unstored_cmd",
        "unstored",
        "Events published that no worker has stored yet (alert EventsNotStored).",
    ),
    "verify": (
        "cli.verify_cmd",
        "verify",
        "Check every customer's end state against its events; print the violations; exit 1 on any (2 when the "
        "exchange's records left part of the money unattributable).",
    ),
    "webhooks": (
        "cli.webhooks_cmd",
        "webhooks",
        "Webhook deliveries (PROVISIONER_WEBHOOK_URL): the backlog and the dead letters.",
    ),
    "worker": (
        "cli.worker_cmd",
        "worker",
        "Run the worker (foreground; SIGTERM finishes the messages in hand and requeues the rest).",
    ),
}
"""Every subcommand: its module, the command's name there, and the first sentence of its help. A command's
module is imported only when that command runs (or its own --help is asked for), so ``provisioner --help`` and a
command that needs little do not pay for dramatiq, httpx, FastAPI and pydantic (a test keeps these lines equal
to each command's own help)."""


class _Main(click.Group):
    """The command group: loads each subcommand's module on first use (``LAZY_COMMANDS``), and turns a Redis
    outage or a naming mismatch anywhere below it into one sentence instead of a traceback."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in LAZY_COMMANDS:
            module, attribute, _ = LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from ``LAZY_COMMANDS`` (no module imported to print it)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, _shorten(LAZY_COMMANDS[name][2], limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            problem = _unavailable(exc) or _naming_refused(exc)
            if problem is None:
                raise
            raise problem from None


def _shorten(text: str, limit: int) -> str:
    """Click's way of cutting a short help to ``limit`` characters (the first sentence, then an ellipsis), through its
    public ``Command.get_short_help_str`` (``click.utils.make_default_short_help`` is deprecated since Click 8.2)."""
    return click.Command(None, help=text).get_short_help_str(limit)


def _naming_refused(exc: BaseException) -> click.ClickException | None:
    """The sentence (exit 1) for a state made with another name secret or account prefix, wherever below a command
    it was found (``None`` for anything else): a recovery racing a stray process that recorded its naming between
    the recovery's check and its write finds it in its own script. The message names the setting, never a secret."""
    epoch = sys.modules.get("worker.store.epoch")  # not imported yet: the naming was never compared
    if epoch is None or not isinstance(exc, epoch.NamingMismatch):
        return None
    return click.ClickException(str(exc))


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
    from cli.context import Context

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
