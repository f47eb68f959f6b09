"""``provisioner --help`` stays quick: the command module imports nothing heavy until a command runs, and the
command list it prints (kept beside the lazy loader) says what each command's own help says."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from cli.main import LAZY_COMMANDS, main

HEAVY = ("dramatiq", "httpx", "fastapi", "pydantic", "redis", "rich", "prometheus_client", "structlog", "worker")


def loaded_after(code: str) -> list[str]:
    probe = f"import sys\n{code}\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stderr.split()


def test_importing_the_command_line_and_printing_its_help_imports_nothing_heavy() -> None:
    assert loaded_after("import cli.main") == []
    assert loaded_after("from cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass") == []


def test_a_command_context_reads_no_settings_until_asked() -> None:
    assert loaded_after("from cli.context import Context\nContext()") == []


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_the_listed_help_is_each_commands_own(name: str) -> None:
    command = main.get_command(click.Context(main), name)
    assert command is not None and command.name == name
    assert LAZY_COMMANDS[name][2] == command.get_short_help_str(limit=1000)


def test_every_command_is_listed_and_runs_its_own_help() -> None:
    result = CliRunner().invoke(main, ["--help"], catch_exceptions=False)
    listed = result.stdout.split("Commands:")[1]
    assert {line.split()[0] for line in listed.strip().splitlines()} == {*LAZY_COMMANDS, "schema"}
    result = CliRunner().invoke(main, ["dlq", "--help"], catch_exceptions=False)
    assert result.exit_code == 0 and "replay" in result.stdout


def test_the_development_defaults_warning_is_one_short_line_and_silent_at_error_level(
    redis_url: str, key_prefix: str
) -> None:
    env = {"REDIS_URL": redis_url, "PROVISIONER_REDIS_PREFIX": key_prefix}
    result = CliRunner().invoke(main, ["dlq", "list", "--json"], env=env, catch_exceptions=False)
    warnings = [line for line in result.stderr.splitlines() if "development defaults" in line]
    assert result.exit_code == 0 and len(warnings) == 1 and len(warnings[0]) <= 120, warnings
    assert "PROVISIONER_ENV=production" in warnings[0]
    quiet = CliRunner().invoke(
        main, ["dlq", "list", "--json"], env={**env, "PROVISIONER_LOG_LEVEL": "ERROR"}, catch_exceptions=False
    )
    assert quiet.exit_code == 0 and quiet.stderr == ""
