"""``provisioner top``: a live terminal view of queues, customers in flight, blocked steps, dead letters, the
rate-limit pools and the webhook backlog, refreshed every second (``--once``: one frame, for a pipe or a log)."""

from __future__ import annotations

import signal
import sys
import time

import click

from cli.context import Context, pass_context

__all__ = ["top"]


@click.command()
@click.option("--once", is_flag=True, help="Print one frame and exit (no terminal needed).")
@click.option(
    "--interval",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.2),
    help="Seconds between refreshes.",
)
@click.option("--limit", default=8, show_default=True, type=click.IntRange(min=1), help="Rows shown per list.")
@pass_context
def top(ctx: Context, once: bool, interval: float, limit: int) -> None:
    """A live view of queues, in-flight customers, blocked steps, dead letters, rate-limit pools and webhooks.

    Refreshes every --interval seconds until Ctrl-C (on a terminal, in place; into a pipe or a file, one frame after
    another); reads Redis only. Exits 69 when Redis does not answer."""
    from rich.console import Console
    from rich.live import Live

    from cli.top_view import render
    from worker.runtime.overview import Reader

    # Ctrl-C ends the view even when started by a parent that ignores SIGINT (a child inherits that, and Python
    # then installs no KeyboardInterrupt handler: a pytest-xdist worker, some supervisors)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    reader = Reader(ctx.runtime, limit=limit)
    console = Console(file=sys.stdout, highlight=False)
    if once:
        console.print(render(reader.read()))
        return
    try:
        if not console.is_terminal:
            while True:
                console.print(render(reader.read()))
                console.print()
                console.file.flush()
                time.sleep(interval)
        with Live(render(reader.read()), console=console, screen=True, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(reader.read()), refresh=True)
    except KeyboardInterrupt:
        pass
