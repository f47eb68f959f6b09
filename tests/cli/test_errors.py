"""When the command line cannot do what it was asked, it says so in one sentence (the cause and what to do) and
exits with a status a script can test, instead of printing a traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import UNAVAILABLE_EXIT, main


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [["dlq", "list"], ["dlq", "show", "abc"], ["customer", "show", "c-1"], ["webhooks", "list"], ["top", "--once"]],
)
def test_a_command_with_redis_down_says_so_in_one_line(args: list[str]) -> None:
    env = {"REDIS_URL": f"redis://:hunter2-password@127.0.0.1:{closed_port()}/0"}
    result = CliRunner().invoke(main, args, env=env)
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert result.exit_code == UNAVAILABLE_EXIT == 69, result.output
    assert len(lines) == 1 and "Traceback" not in result.output, result.stderr
    assert "Redis" in lines[0] and "REDIS_URL" in lines[0] and "refused" in lines[0].lower()
    assert "hunter2" not in result.output


def test_schema_write_outside_the_repository_names_the_directory_and_what_to_do(tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["schema", "--write"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--dir" in result.stderr and "schema" in result.stderr and "does not exist" in result.stderr
    out = tmp_path / "out"
    out.mkdir()
    result = runner.invoke(main, ["schema", "--write", "--dir", str(out)], catch_exceptions=False)
    assert result.exit_code == 0
    assert json.loads((out / "events.schema.json").read_text())["title"]
    assert json.loads((out / "openapi.json").read_text())["openapi"]
