"""``provisioner publish FILE``: validate JSON Lines events and enqueue the good ones.

Exit status: 0 every line published; 1 some line refused (each reported, the others published); 3 Redis became
unavailable: publishing stopped at the line it names (that line and the ones after it may not have been sent, the
ones before it were), and publishing the same file again is safe (a worker stores an event id once)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import BinaryIO

import click
import redis

from cli.context import Context, pass_context
from worker.intake import Refused
from worker.store.epoch import NamingMismatch

__all__ = ["publish"]


@click.command()
@click.argument("source", type=click.File("rb"))
@click.option("--json", "as_json", is_flag=True, help="One JSON result per line instead of text.")
@pass_context
def publish(ctx: Context, source: BinaryIO, as_json: bool) -> None:
    """Publish events from SOURCE (JSON Lines; - for stdin). Every line is validated; a refused line is reported
    with its reason and publishing goes on (a line that is not UTF-8 too: lines are read as bytes). Exits 1 if any
    line was refused, 3 if Redis failed (run it again)."""
    published = refused = 0
    reading = _Numbered(source)
    try:
        for result in ctx.runtime.publisher().publish_lines(reading):
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
    except NamingMismatch as exc:  # checked when the publisher is made, and again with each refusal
        raise click.ClickException(str(exc)) from None
    except redis.RedisError as exc:
        line = max(reading.count, 1)
        if as_json:
            click.echo(json.dumps({"status": "stopped", "line": line, "error": type(exc).__name__}))
        click.echo(
            f"Redis unavailable ({type(exc).__name__}): stopped at line {line} after {published} published and "
            f"{refused} refused; line {line} and the lines after it may not have been sent. Once Redis answers, "
            "publishing the same file again is safe: a worker stores each event id once.",
            err=True,
        )
        sys.exit(3)
    if not as_json:
        click.echo(f"published {published} event(s), refused {refused}", err=True)
    sys.exit(1 if refused else 0)


class _Numbered:
    """The lines of ``source``, counting how many were read: the one being published when Redis failed."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self.count = 0

    def __iter__(self) -> Iterator[bytes]:
        for line in self._source:
            self.count += 1
            yield line
