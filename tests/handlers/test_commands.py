"""Commands take keyword arguments only: a positional call, where two string fields could swap, is refused (pure)."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from handlers import commands as c

COMMANDS = typing.get_args(c.Command)


def test_every_command_of_the_union_is_listed() -> None:
    assert len(COMMANDS) == len([n for n in c.__all__ if n not in ("Command", "Step", "Idle")])


@pytest.mark.parametrize("command", COMMANDS, ids=lambda t: t.__name__)
def test_a_command_refuses_positional_arguments(command: type) -> None:
    fields = [f for f in dataclasses.fields(command) if f.default is dataclasses.MISSING]
    with pytest.raises(TypeError, match="positional argument"):
        command(*["x"] * len(fields))
    built = command(**{f.name: "x" for f in fields})
    assert all(getattr(built, f.name) == "x" for f in fields)


def test_idle_keeps_its_positional_reason() -> None:
    assert c.Idle("closed") == c.Idle(reason="closed", wake_at_ms=None)
