"""What every ``provisioner`` command shares: settings read once, the runtime built on demand, output helpers."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from worker.runtime.broker import Runtime, build_runtime
from worker.settings import Settings, SettingsError

__all__ = ["Context", "emit", "pass_context", "table"]


class Context:
    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._runtime: Runtime | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings, defaulted = Settings.from_env()
            except SettingsError as exc:
                raise click.ClickException(str(exc)) from None
            if defaulted:
                click.echo(
                    f"warning: development defaults in use for {', '.join(defaulted)} "
                    "(set PROVISIONER_ENV=production to refuse them)",
                    err=True,
                )
        return self._settings

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            from prometheus_client import CollectorRegistry

            # a command waits for the shared rate limit; a worker would re-schedule the customer instead
            self._runtime = build_runtime(self.settings, registry=CollectorRegistry(), wait_for_quota=True)
        return self._runtime

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()


pass_context = click.make_pass_decorator(Context, ensure=True)


def emit(data: Any, *, as_json: bool) -> None:
    """Print ``data`` as JSON (for scripts)."""
    if as_json:
        click.echo(json.dumps(data, indent=2, default=str, sort_keys=True))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table for a human."""
    view = Table(title=title, show_lines=False)
    for column in columns:
        view.add_column(column)
    for row in rows:
        view.add_row(*("" if v is None else str(v) for v in row))
    Console(file=sys.stdout, width=max(120, Console().width)).print(view)
