"""What every ``provisioner`` command shares: settings read once, the runtime built on demand, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from worker.runtime.broker import Runtime
    from worker.settings import Settings

__all__ = ["JSON_HELP", "Context", "emit", "pass_context", "table", "warn_defaults"]

JSON_HELP = "Print JSON for scripts instead of text: every field, ids and texts whole."
"""The help of every command's ``--json`` option."""


class Context:
    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            from worker.settings import Settings, SettingsError

            try:
                self._settings, defaulted = Settings.from_env()
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
            warn_defaults(defaulted, self._settings.log_level)
        return self._settings

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from prometheus_client import CollectorRegistry

            from worker.runtime.broker import build_runtime

            # a command waits for the shared rate limit; a worker would re-schedule the customer instead
            self._runtime = build_runtime(self.settings, registry=CollectorRegistry(), wait_for_quota=True)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


def warn_defaults(defaulted: Sequence[str], log_level: str) -> None:
    """One short line on stderr when settings fell back to development defaults; nothing when there are none or
    when ``PROVISIONER_LOG_LEVEL`` is ERROR (the operator asked for errors only)."""
    if not defaulted or log_level == "ERROR":
        return
    first = defaulted[0] + (", …" if len(defaulted) > 1 else "")
    click.echo(
        f"warning: development defaults for {len(defaulted)} setting(s) ({first}); "
        "PROVISIONER_ENV=production refuses them",
        err=True,
    )


pass_context = click.make_pass_decorator(Context, ensure=True)


def emit(data: Any, *, as_json: bool) -> None:
    """Print ``data`` as JSON (for scripts)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table for a human, as wide as the terminal (``COLUMNS``; 80 without a terminal).

    No cell is ever cut: every column but the last keeps its values whole (ids are copied from here into the
    next command) and the last one wraps. When even that does not fit, each row is printed as a block instead,
    its first value on a line of its own and the others below it, wrapped.
    """
    from rich.console import Console
    from rich.table import Table

    cells = [["" if v is None else str(v) for v in row] for row in rows]
    console = Console(file=sys.stdout, highlight=False)
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    # borders and padding take 3 per column and 1; the last (wrapping) column gets at least _MIN_WRAPPED
    needed = sum(widths[:-1]) + 3 * len(columns) + 1 + min(widths[-1], _MIN_WRAPPED)
    if needed <= console.width:
        view = Table(title=title, show_lines=False)
        for i, column in enumerate(columns):
            last = i == len(columns) - 1
            view.add_column(column, no_wrap=not last, overflow="fold", min_width=None if last else widths[i])
        for row in cells:
            view.add_row(*row)
        console.print(view)
        return
    _blocks(title, columns, cells, console.width)


_MIN_WRAPPED = 24
"""The narrowest a table's wrapping last column may be before rows are printed as blocks instead."""


def _blocks(title: str, columns: Sequence[str], cells: list[list[str]], width: int) -> None:
    import textwrap

    click.echo(title)
    label = max(len(c) for c in columns[1:]) if len(columns) > 1 else 0
    indent = " " * (label + 4)
    for row in cells:
        click.echo("")
        click.echo(row[0])
        for column, value in zip(columns[1:], row[1:], strict=True):
            if not value:
                continue
            lines = textwrap.wrap(
                value,
                width=max(width, len(indent) + 20),
                initial_indent=f"  {column:>{label}}: ",
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            click.echo("\n".join(lines))
