"""The frame of ``provisioner top``: a pure function from an ``Overview`` to a rich renderable (no I/O, no clock).

Ids and customer references are never cut (they are copied into the next command); a reason wraps under its
line instead. Everything fits 80 columns, the width of a terminal without a size (``kubectl exec`` without -t).
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from cli.render import when
from worker.runtime.overview import Overview

__all__ = ["render"]


def render(overview: Overview) -> RenderableType:
    """The whole frame for ``overview``: a status line, queues, rate-limit pools, webhook backlog, then the
    customers in flight, the blocked steps and the latest dead letters, each list with its whole count."""
    o = overview
    parts: list[RenderableType] = [_status(o), _queues(o), _pools(o)]
    if o.webhooks is not None:
        w = o.webhooks
        parts.append(
            Text.assemble(
                ("webhooks ", "bold"),
                f"undelivered {w.undelivered}, oldest {_age(w.oldest_age_s)}, dead letters ",
                (str(w.dead_letters), "red bold" if w.dead_letters else ""),
            )
        )
    parts.append(_heading("in flight (writes whose outcome is not yet known)", o.in_flight_count, len(o.in_flight)))
    parts.extend(
        Text(f"  {f.ref}  since {when(f.since_ms)} ({_age((o.taken_ms - f.since_ms) / 1000)})") for f in o.in_flight
    )
    parts.append(_heading("blocked customers (customer retry / settle-transfer)", o.blocked_count, len(o.blocked)))
    for b in o.blocked:
        manual = "  manual decision" if b.manual else ""
        parts.append(Padding(Text(f"{b.ref}  {b.step}  since {when(b.since_ms)}{manual}"), (0, 0, 0, 2), expand=False))
        parts.append(Padding(Text(b.reason, style="yellow"), (0, 0, 0, 6), expand=False))
    parts.append(_heading("dead letters (dlq show / replay)", o.dead_letter_count, len(o.dead_letters), "latest"))
    for d in o.dead_letters:
        parts.append(
            Padding(Text(f"{d.message_id}  {d.actor}  {d.kind}  {when(d.failed_at_ms)}"), (0, 0, 0, 2), expand=False)
        )
        parts.append(Padding(Text(d.reason, style="red"), (0, 0, 0, 6), expand=False))
    return Group(*parts)


def _status(o: Overview) -> Text:
    line = Text.assemble((o.prefix, "bold"), f"  {when(o.taken_ms)}  ")
    line.append(f"workers {o.workers_alive}", style="" if o.workers_alive else "red bold")
    line.append(f"  due {o.due_backlog}  unstored {o.unstored}")
    if o.halted:
        line.append("\nHALTED: the state in Redis was found lost (provisioner state show)", style="red bold")
    return line


def _queues(o: Overview) -> Table:
    table = Table(title="queues", title_justify="left", box=None, padding=(0, 2, 0, 0))
    for name in ("queue", "waiting", "oldest", "dead letters"):
        table.add_column(name, justify="left" if name == "queue" else "right", no_wrap=True)
    for q in o.queues:
        table.add_row(q.name, str(q.waiting), _age(q.oldest_age_s), Text(str(q.dead), "red bold" if q.dead else ""))
    return table


def _pools(o: Overview) -> Table:
    table = Table(title="rate-limit pools", title_justify="left", box=None, padding=(0, 2, 0, 0))
    for name in ("pool", "scheduled ahead", "blocked by the exchange for"):
        table.add_column(name, justify="left" if name == "pool" else "right", no_wrap=True)
    for p in o.pools:
        blocked = Text(_age(p.blocked_for_ms / 1000), "red bold" if p.blocked_for_ms else "")
        table.add_row(p.pool, _age(p.scheduled_ahead_ms / 1000), blocked)
    return table


def _heading(title: str, count: int, shown: int, which: str = "oldest") -> Text:
    more = f", the {which} {shown} shown" if count > shown else ""
    return Text.assemble(("\n" + title, "bold"), f": {count}{more}")


def _age(seconds: float) -> str:
    """``seconds`` as ``0s``, ``42s``, ``3m05s`` or ``2h07m``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"
