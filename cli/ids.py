"""Naming a record by its id, or by any unique prefix of it, the way ``git`` names a commit."""

from __future__ import annotations

from collections.abc import Iterable

import click

__all__ = ["resolve_id", "resolve_or_keep"]

_SHOWN = 5
"""How many of the candidates an ambiguous prefix lists."""


def resolve_id(given: str, known: Iterable[str], *, what: str) -> str:
    """The id in ``known`` that equals ``given``, else the only one that starts with it.

    Raises ``click.ClickException`` (exit 1) naming the prefix and the reason: empty, no id starts with it, or
    several do (listing a few of them, so the operator can type more).
    """
    if not given.strip():
        raise click.ClickException(f"the {what} id is empty: give the id (or a unique prefix) as listed")
    ids = list(dict.fromkeys(known))
    if given in ids:
        return given
    matches = [i for i in ids if i.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise click.ClickException(f"no {what} whose id starts with {given!r}")
    shown = ", ".join(matches[:_SHOWN]) + (", …" if len(matches) > _SHOWN else "")
    raise click.ClickException(f"{given!r} names {len(matches)} {what}s ({shown}): give more of it")


def resolve_or_keep(given: str, known: Iterable[str], *, what: str) -> str:
    """For a command that is safe to run twice (replay, retry, resend): the id ``given`` names among ``known``,
    or ``given`` unchanged when no id starts with it, so the command can report it as already done.

    Raises ``click.ClickException`` when ``given`` is empty or names several ids.
    """
    ids = list(known)
    if given.strip() and not any(i.startswith(given) for i in ids):
        return given
    return resolve_id(given, ids, what=what)
