"""``provisioner publish FILE``: validate JSON Lines events and enqueue the good ones."""

from __future__ import annotations

import json
import sys
from typing import BinaryIO

import click

from cli.context import Context, pass_context
from worker.intake import Refused

__all__ = ["publish"]


@click.command()
@click.argument("source", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="One JSON result per line instead of text.")
@pass_context
def publish(ctx: Context, source: BinaryIO, as_json: bool) -> None:
    """Publish events from SOURCE (JSON Lines; - for stdin). Every line is validated; a refused line is reported
    with its reason and publishing goes on (a line that is not UTF-8 too: lines are read as bytes). Exits 1 if
    any line was refused."""
    runtime = ctx.runtime
    publisher = runtime.publisher()
    published = refused = 0
    for result in publisher.publish_file(source):
        outcome = result.outcome
        if isinstance(outcome, Refused):
            refused += 1
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "line": result.line,
                            "status": "refused",
                            "event_id": outcome.event_id,
                            "field": outcome.field,
                            "reason": outcome.reason,
                        }
                    )
                )
            else:
                click.echo(f"line {result.line}: refused: {outcome.field}: {outcome.reason}", err=True)
        else:
            published += 1
            if as_json:
                click.echo(
                    json.dumps(
                        {
                            "line": result.line,
                            "status": "published",
                            "event_id": outcome.event_id,
                            "customer_ref": outcome.customer_ref,
                            "queue": outcome.queue,
                            "message_id": outcome.message_id,
                        }
                    )
                )
    if not as_json:
        click.echo(f"published {published} event(s), refused {refused}", err=True)
    sys.exit(1 if refused else 0)
